"""Early stopping of hopeless candidates (issue 13 part 3): the pruner's name is checked, the fine-tune
reports its checkpoints without changing its result, hopeless candidates end PRUNED with their partial
score, the strategies learn from them, a pruned trial never wins, a resume is exact, and
``--pruner none`` prunes nothing.

The searches run on the Fashion-MNIST ResNet-20 with a graded evaluator: no training, its final score
grows with the weights a candidate keeps, and its checkpoint scores are set by the test."""

from __future__ import annotations

import csv
import json
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from nn2hw.cli import main
from nn2hw.errors import ConfigError
from nn2hw.evaluate.evaluator import Checkpoints
from nn2hw.search import SearchSettings, Spec, loop, run_search
from nn2hw.search import context as context_module
from nn2hw.search.finalize import ranked_candidates
from nn2hw.search.pruning import PRUNERS, build_pruner, check_pruner, checkpoint_steps
from nn2hw.search.strategies import Observation, Strategy
from nn2hw.search.strategies.sampler import SamplerContext, StrategySampler
from nn2hw.search.trial import observe
from nn2hw.testing.strategies import REWARD

optuna.logging.set_verbosity(optuna.logging.WARNING)
BASE = {"model": "resnet20", "dataset": "fashion-mnist"}


# --- the pruner's name -------------------------------------------------------------------------
def test_an_unknown_pruner_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError) as info:
        SearchSettings(**BASE, spec=Spec(latency_ms=0.3), pruner="medain")
    text = str(info.value)
    assert "medain" in text and all(name in text for name in PRUNERS)
    check_pruner("halving")  # a known one passes


def test_the_cli_refuses_an_unknown_pruner_with_exit_2(tmp_path, capsys):
    code = main(["search", *("--model", "resnet20", "--dataset", "fashion-mnist", "--latency-ms", "0.3"),
                 "--pruner", "hyperband", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "hyperband" in err and "median" in err and "none" in err and "Traceback" not in err


def test_checkpoints_are_evenly_spaced_inside_the_fine_tune():
    assert checkpoint_steps(100, 3) == (25, 50, 75)
    assert checkpoint_steps(100, 1) == (50,)
    assert checkpoint_steps(1, 3) == ()  # too short: no checkpoint, no pruning
    assert build_pruner("none", (25,), 5) is None and build_pruner("median", (), 5) is None


# --- the fine-tune's checkpoints ----------------------------------------------------------------
def test_checkpoints_leave_the_fine_tune_unchanged_and_a_report_can_stop_it():
    from nn2hw import zoo
    from nn2hw.evaluate import FinetuneEvaluator, FinetuneSettings
    from tests.data.helpers import real_fmnist

    train = zoo.prepare(real_fmnist("train"), "resnet20").take(512)
    test = zoo.prepare(real_fmnist("test"), "resnet20").take(128)

    def evaluator():
        return FinetuneEvaluator("fashion-mnist", settings=FinetuneSettings(batches=8, lr=0.003),
                                 train_data=train, test_data=test, progress=False, threads=1)

    plain = evaluator()(zoo.build("resnet20", "fashion-mnist", pretrained=True))
    reports: list[tuple[int, float]] = []
    checked = evaluator()(zoo.build("resnet20", "fashion-mnist", pretrained=True),
                          checkpoints=Checkpoints((2, 4, 6), 64, lambda step, m: reports.append((step, m["n_images"]))))
    assert checked == plain  # scored in eval mode without gradients: the same weights, the same score
    assert reports == [(2, 64.0), (4, 64.0), (6, 64.0)]

    class Stop(Exception):
        pass

    def stop_at_4(step, metrics):
        if step == 4:
            raise Stop

    model = zoo.build("resnet20", "fashion-mnist", pretrained=True).eval()
    with pytest.raises(Stop):
        evaluator()(model, checkpoints=Checkpoints((2, 4, 6), 64, stop_at_4))
    assert not model.training  # stopped: the model is left in the mode it came in


# --- searches with a graded evaluator -----------------------------------------------------------
class Graded:
    """Scores a candidate without training: the final score grows with the share of the base model's
    nonzero weights it keeps; each checkpoint's score is ``partial(final, step)``. Counts its calls;
    ``interrupt_at`` raises a KeyboardInterrupt in that call right after its first checkpoint was
    reported (an interrupt in the middle of a fine-tune; a call pruned there passes it on to the next)."""

    reports_checkpoints = True

    def __init__(self, partial=lambda final, step: final - 8.0 * (1 - step / 100)) -> None:
        self.partial = partial
        self.calls: list[bool] = []  # whether each call got checkpoints
        self.interrupt_at: int | None = None
        self.base_weights = 1

    @staticmethod
    def weights(model: torch.nn.Module) -> int:
        return sum(int((p != 0).sum()) for n, p in model.named_parameters() if "weight" in n)

    def __call__(self, model: torch.nn.Module, checkpoints: Checkpoints | None = None) -> dict[str, float]:
        self.calls.append(checkpoints is not None)
        final = 50.0 + 45.0 * self.weights(model) / self.base_weights
        for step in checkpoints.steps if checkpoints is not None else ():
            try:
                checkpoints.report(step, {"top1": self.partial(final, step), "top5": 99.0})
            except optuna.TrialPruned:
                if self.interrupt_at == len(self.calls):
                    self.interrupt_at += 1
                raise
            if self.interrupt_at == len(self.calls):
                raise KeyboardInterrupt
        return {"top1": final, "top5": 99.0, "n_images": 100.0, "partial": 1.0}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The search context, prepared once (the network, its costs, the space) and handed to every
    search of this module with its own settings, so that each search takes seconds."""
    graded = Graded()
    settings = SearchSettings(**BASE, spec=Spec(latency_ms=0.3), out=str(tmp_path_factory.mktemp("p")))
    ctx = context_module.prepare(settings, graded)
    graded.base_weights = Graded.weights(ctx.members[0].model)
    return ctx, graded


def search(prepared, tmp_path, monkeypatch, **kw: Any):
    ctx, graded = prepared
    settings = SearchSettings(**BASE, **{"spec": Spec(latency_ms=0.3), "strategy": "evolution", "trials": 14,
                                         "out": str(tmp_path / "run"), "prune_warmup": 3, "threads": 1, **kw})
    monkeypatch.setattr(loop, "prepare", lambda s, evaluator=None: replace(
        ctx, settings=s, assessments=OrderedDict(), reward=None, base_metric=None))
    return run_search(settings, graded, progress=False, log=lambda _: None)


def trials_of(tmp_path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    return study.get_trials(deepcopy=False)


@pytest.mark.data
def test_hopeless_candidates_are_pruned_recorded_and_never_stored(prepared, tmp_path, monkeypatch):
    result = search(prepared, tmp_path, monkeypatch)
    trials = trials_of(tmp_path)
    pruned = [t for t in trials if t.state is TrialState.PRUNED]
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert pruned and len(pruned) + len(complete) == 14 == result.trials["pruned"] + result.trials["complete"]
    for t in pruned:
        a = t.user_attrs
        assert a["feasible"] is True and a["pruned_at"] in (25, 50, 75) and "top1" not in a
        assert a["top1_partial"] == t.intermediate_values[a["pruned_at"]] == t.value
    # pruning starts after the warm-up: the first 3 fine-tunes ran to the end
    trained = sorted((t for t in trials if t.user_attrs.get("feasible")), key=lambda t: t.number)
    assert all(t.state is TrialState.COMPLETE for t in trained[:3])
    # the store keeps the complete evaluations only (and the base model's): a pruned one stores nothing
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    with engine.connect() as conn:
        done = conn.execute(sa.text("select count(*) from nn2hw_measurements where status = 'done'")).scalar()
    keys = {t.user_attrs["plan_key"] for t in complete if t.user_attrs["feasible"]}
    assert done == len(keys) + 2  # + the base model's measurement and the finalization's record
    rows = list(csv.DictReader((tmp_path / "run" / "trials.csv").open()))
    assert {r["state"] for r in rows} >= {"PRUNED", "COMPLETE"}
    assert all(r["pruned_at"] and r["partial_score"] for r in rows if r["state"] == "PRUNED")
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["trials"]["pruned"] == len(pruned)


@pytest.mark.data
def test_a_pruned_trial_never_wins_even_when_it_would_have_scored_best(prepared, tmp_path, monkeypatch):
    # late bloomers: the lower a candidate's checkpoint scores, the higher its final score
    _, graded = prepared
    monkeypatch.setattr(graded, "partial", lambda final, step: 150.0 - final)
    result = search(prepared, tmp_path, monkeypatch)
    trials = trials_of(tmp_path)
    pruned = [t for t in trials if t.state is TrialState.PRUNED]
    assert pruned
    winner = trials[result.solution.trial]
    assert winner.state is TrialState.COMPLETE and winner.user_attrs["top1"] is not None  # a full score
    assert all(t.number != result.solution.trial for t in pruned)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert all(t.state is TrialState.COMPLETE for t in ranked_candidates(study, "top1"))


@pytest.mark.data
def test_pruner_none_prunes_nothing_and_reports_no_checkpoints(prepared, tmp_path, monkeypatch):
    _, graded = prepared
    graded.calls.clear()
    result = search(prepared, tmp_path, monkeypatch, pruner="none")
    assert result.trials["pruned"] == 0 and not any(graded.calls)
    assert all(t.state is not TrialState.PRUNED for t in trials_of(tmp_path))


@pytest.mark.data
@pytest.mark.parametrize(("strategy", "pruner"), [("reinforce", "median"), ("tpe", "halving")])
def test_a_resumed_study_with_pruned_trials_equals_an_uninterrupted_one(prepared, tmp_path, monkeypatch, strategy,
                                                                      pruner):
    _, graded = prepared

    def finished(folder):
        trials = [t for t in trials_of(folder) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        return [(t.state, t.params, t.user_attrs.get("top1"), t.user_attrs.get("pruned_at"))
                for t in sorted(trials, key=lambda t: t.user_attrs["slot"])]

    straight = search(prepared, tmp_path / "a", monkeypatch, strategy=strategy, pruner=pruner)
    graded.interrupt_at = len(graded.calls) + 6  # the 6th evaluation (the base model's is the first)
    with pytest.raises(KeyboardInterrupt):
        search(prepared, tmp_path / "b", monkeypatch, strategy=strategy, pruner=pruner)
    graded.interrupt_at = None
    resumed = search(prepared, tmp_path / "b", monkeypatch, strategy=strategy, pruner=pruner, resume=True)
    assert finished(tmp_path / "b") == finished(tmp_path / "a")
    assert any(state is TrialState.PRUNED for state, *_ in finished(tmp_path / "a"))
    assert resumed.solution.plan.network_key == straight.solution.plan.network_key
    assert resumed.trials["failed"] == 1  # the interrupted trial; its candidate ran again


@pytest.mark.data
def test_resuming_with_another_pruner_is_refused_naming_the_difference(prepared, tmp_path, monkeypatch):
    from nn2hw.errors import StudyError

    search(prepared, tmp_path, monkeypatch, trials=2)
    with pytest.raises(StudyError, match="pruner"):
        search(prepared, tmp_path, monkeypatch, trials=3, pruner="halving", resume=True)


# --- the strategies learn from pruned trials ----------------------------------------------------
class Recorder(Strategy):
    name = "recorder"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.told: list[Observation] = []

    def ask(self, number: int, attempt: int = 0) -> tuple[int, ...]:
        return self.random_indices(self.rng(number, attempt))

    def tell(self, obs: Observation) -> None:
        self.told.append(obs)


def test_strategies_replay_pruned_trials_with_their_partial_score():
    names, counts = ("d0", "d1"), (3, 3)
    dists = {n: CategoricalDistribution((0, 1, 2)) for n in names}
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(params={"d0": 1, "d1": 2}, distributions=dists, value=91.0,
                                 user_attrs={"slot": 0, "feasible": True, "top1": 91.0, "latency_ms": 0.2}))
    study.add_trial(create_trial(params={"d0": 2, "d1": 0}, distributions=dists, state=TrialState.PRUNED,
                                 intermediate_values={25: 80.5}, user_attrs={
                                     "slot": 1, "feasible": True, "top1_partial": 80.5, "pruned_at": 25,
                                     "latency_ms": 0.25}))
    ctx = SamplerContext(names, counts, REWARD, 0, observe(names, "top1"))
    strategy = Recorder(counts, REWARD)
    StrategySampler(strategy, ctx).catch_up(study)
    assert [(o.number, o.indices, o.feasible, o.metric) for o in strategy.told] == \
        [(0, (1, 2), True, 91.0), (1, (2, 0), True, 80.5)]


def test_ranked_candidates_take_complete_trials_only():
    dists = {"d0": CategoricalDistribution((0, 1))}
    study = optuna.create_study(direction="maximize")
    for number, (state, top1) in enumerate([(TrialState.COMPLETE, 90.0), (TrialState.PRUNED, 99.0)]):
        study.add_trial(create_trial(params={"d0": number}, distributions=dists, state=state,
                                     value=top1 if state is TrialState.COMPLETE else None,
                                     intermediate_values={25: top1},
                                     user_attrs={"feasible": True, "top1": top1, "latency_ms": 0.2,
                                                 "plan_key": str(number)}))
    assert [t.number for t in ranked_candidates(study, "top1")] == [0]


def test_a_pruned_candidate_proposed_again_is_pruned_at_once_with_its_partial_score():
    from nn2hw.search.pruning import pruned_before
    from nn2hw.search.trial import _pruned_as

    dists = {"d0": CategoricalDistribution((0, 1))}
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(params={"d0": 1}, distributions=dists, state=TrialState.PRUNED,
                                 intermediate_values={25: 80.5}, user_attrs={
                                     "plan_key": "k", "feasible": True, "pruned_at": 25, "top1_partial": 80.5}))
    assert pruned_before(study, "other") is None
    earlier = pruned_before(study, "k")
    again = study.ask()
    _pruned_as(study, again, earlier, "top1")
    t = study.trials[-1]
    assert t.state is TrialState.PRUNED and t.value == 80.5 and t.intermediate_values == {25: 80.5}
    assert t.user_attrs == {"pruned_at": 25, "top1_partial": 80.5, "pruned_as": 0, "trained_here": False}
