"""The single-bit-width baseline (``--strategy uniform``): its proposals are uniform (one bit width on
every quantize dimension, one width multiplier on every channel cut), distinct, cover the grid,
respect the latency-first prefilter and stop the search once the grid is spent; and a tiny real
search with it meets its spec."""

from __future__ import annotations

from dataclasses import replace

import optuna
import pytest
from optuna.trial import TrialState

from nn2hw.cli import main
from nn2hw.errors import ConfigError
from nn2hw.search import SearchSettings, Spec, run_search
from nn2hw.search.strategies import RewardConfig, build_sampler
from nn2hw.search.strategies.sampler import SamplerContext, exhausted
from nn2hw.search.strategies.uniform import uniform_grid
from nn2hw.space import Dimension
from nn2hw.space.dimensions import knob_dimension

optuna.logging.set_verbosity(optuna.logging.WARNING)
REWARD = RewardConfig(spec_ms=1.0, acc_band=(0.0, 100.0), lat_band=(0.5, 1.0))


def quantize(name: str, widths=(12, 8, 6), base: int = 16) -> Dimension:
    return Dimension(f"quantize:{name}", "quantize", (name,), (None, *({"weight_bits": w} for w in widths)),
                     (f"{base}-bit", *(f"{w}-bit" for w in widths)), leanest=len(widths),
                     unchanged={"weight_bits": base})


def cut(name: str, channels: int, keeps=(0.75, 0.5)) -> Dimension:
    widths = sorted({max(1, round(channels * k)) for k in keeps} - {channels}, reverse=True)
    return Dimension(f"channel_cut:{name}", "channel_cut", (name,), (None, *({"out_channels": w} for w in widths)),
                     (f"{channels} ch", *(f"{w} ch" for w in widths)), leanest=len(widths),
                     unchanged={"out_channels": channels})


PATTERN = Dimension("kernel_pattern:c", "kernel_pattern", ("c",), (None, {"pattern_zeros": 3}), ("dense", "6/9"), 1)
SPACE = (quantize("a"), cut("a", 16), PATTERN, quantize("b"), cut("b", 32), knob_dimension("Tr", [4, 8]),
         quantize("c", widths=(8,), base=16))


def meaning(dims, indices):
    """(bits of every quantize dimension, kept fraction of every channel cut, the other indices)."""
    bits = {d.choices[i]["weight_bits"] if i else None for d, i in zip(dims, indices) if d.technique == "quantize"}
    keeps = {round(d.choices[i]["out_channels"] / d.unchanged["out_channels"], 4) if i else 1.0
             for d, i in zip(dims, indices) if d.technique == "channel_cut"}
    others = [i for d, i in zip(dims, indices) if d.technique not in ("quantize", "channel_cut")]
    return bits, keeps, others


def test_the_grid_is_uniform_distinct_largest_first_and_covers_every_bit_width_and_multiplier():
    grid = uniform_grid(SPACE)
    assert len({p.indices for p in grid}) == len(grid) == 4 * 3  # (unchanged, 12, 8, 6) x (1, 0.75, 0.5)
    for point in grid:
        bits, keeps, others = meaning(SPACE, point.indices)
        assert keeps == {point.keep} and not any(others)  # patterns untouched, hardware left to the DSE
        expected = point.bits[0] if point.bits else None
        # the 8-bit-only dimension takes 8 bits where the grid says 8, else stays as it is
        assert bits == ({expected} if expected in (None, 8) else {expected, None})
    assert {(p.bits, p.keep) for p in grid} == {(b, k) for b in (None, (12, None), (8, None), (6, None))
                                               for k in (1.0, 0.75, 0.5)}
    sizes = [(16 if p.bits is None else p.bits[0]) * p.keep ** 2 for p in grid]
    assert sizes == sorted(sizes, reverse=True) and grid[0].indices == (0,) * len(SPACE)


def test_groups_of_other_widths_take_the_nearest_width_they_offer():
    dims = (cut("odd", 10, keeps=(0.75, 0.5)), cut("even", 16, keeps=(0.75, 0.5)))  # 10 -> 8 (0.8), 5
    widths = [[10, 8, 5], [16, 12, 8]]
    for point in uniform_grid(dims):
        chosen = [w[i] for w, i in zip(widths, point.indices)]
        targets = [point.keep * w[0] for w in widths]
        assert all(abs(c - t) == min(abs(x - t) for x in w) for c, t, w in zip(chosen, targets, widths))
    assert (1, 1) in {p.indices for p in uniform_grid(dims)}  # 0.8 and 0.75: one point, not two


def test_a_space_with_one_technique_sweeps_it_and_one_with_neither_is_refused():
    grid = uniform_grid((quantize("a"), PATTERN))
    assert [p.bits for p in grid] == [None, (12, None), (8, None), (6, None)]
    assert [p.keep for p in uniform_grid((cut("a", 16), PATTERN))] == [1.0, 0.75, 0.5]
    with pytest.raises(ConfigError, match="no quantize or channel_cut dimension.*kernel_pattern") as info:
        uniform_grid((PATTERN, knob_dimension("Tr", [4])))
    assert "--space" in info.value.fix


def latency(indices) -> float:
    """A toy cost: each quantized or cut dimension saves a little, by how far it moves."""
    return 1.0 - 0.02 * sum(indices)


def drive(study, trials: int) -> None:
    """The search loop's shape: stop when the budget is spent or the sampler has nothing new."""
    for _ in range(trials):
        if exhausted(study):
            return
        trial = study.ask()
        idx = tuple(trial.suggest_categorical(n, list(range(len(d.choices)))) for n, d in zip(NAMES, SPACE))
        trial.set_user_attr("feasible", latency(idx) <= SPEC)
        trial.set_user_attr("latency_ms", latency(idx))
        study.tell(trial, 1.0 if latency(idx) <= SPEC else 0.0)


NAMES = tuple(d.name for d in SPACE)
SPEC = 0.93


def observe(trial):
    from nn2hw.search.strategies import Observation

    return Observation(trial.number, tuple(trial.params[n] for n in NAMES), trial.user_attrs["feasible"],
                       None, trial.user_attrs["latency_ms"])


def uniform_study(attempts: int = 32):
    ctx = SamplerContext(NAMES, tuple(len(d.choices) for d in SPACE), REWARD, 0, observe,
                         check=lambda i: (latency(i) <= SPEC, latency(i)), attempts=attempts, dimensions=SPACE)
    return optuna.create_study(sampler=build_sampler("uniform", ctx)[0])


@pytest.mark.parametrize("attempts", [32, 3])
def test_the_prefilter_skips_points_that_miss_the_spec_and_the_grid_is_proposed_once(attempts, capsys):
    study = uniform_study(attempts)
    drive(study, 100)
    grid = [p.indices for p in uniform_grid(SPACE)]
    trials = [tuple(t.params[n] for n in NAMES) for t in study.trials]
    rejected = [tuple(i) for t in study.trials for i, _ in t.user_attrs.get("rejected", [])]
    assert sorted(trials + rejected) == sorted(grid)  # every point once: as a trial or as a rejection
    assert all(latency(i) > SPEC for i in rejected)
    for t, indices in zip(study.trials[:-1], trials):  # a trial misses the spec only when its walk ran out
        assert latency(indices) <= SPEC or len(t.user_attrs["rejected"]) == attempts - 1
    assert len(study.trials) < len(grid) and "all 12 points of the grid" in capsys.readouterr().out
    assert exhausted(study) and all(t.state is TrialState.COMPLETE for t in study.trials)


def test_options_are_refused_with_the_fix():
    ctx = SamplerContext(NAMES, tuple(len(d.choices) for d in SPACE), REWARD, 0, observe, {"order": "size"},
                         dimensions=SPACE)
    with pytest.raises(ConfigError, match="'uniform' has no options"):
        build_sampler("uniform", ctx)


SEARCH = ["search", "--model", "resnet20", "--dataset", "cifar10", "--split", "test-partial", "--select-on-test",
          "--finetune-batches", "0", "--final-batches", "0", "--search-images", "64", "--quiet",
          "--strategy", "uniform"]


@pytest.mark.data
def test_a_space_without_either_technique_is_a_cli_error(shared_data, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("techniques: {quantize: false, channel_cut: false}\n")
    code = main([*SEARCH, "--latency-ms", "0.45", "--space", str(space), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "no quantize or channel_cut dimension" in err and "Traceback" not in err


@pytest.mark.data
def test_a_tiny_uniform_search_meets_its_spec_and_stops_when_the_grid_is_spent(partial_cifar_scorer, tmp_path):
    """About 20 s: the CIFAR-10 ResNet-20 on the partial test split, scored on 64 images without
    training (preparing the space takes most of it); the strategy's one run through the search
    loop, finalize and the bundle."""
    settings = SearchSettings(model="resnet20", dataset="cifar10", split="test-partial", select_on_test=True,
                              spec=Spec(latency_ms=0.44), strategy="uniform", trials=100, minimize=False,
                              out=str(tmp_path / "o"))
    said: list[str] = []
    result = run_search(settings, evaluator=partial_cifar_scorer, progress=False, log=said.append)
    assert result.solution.cost.latency_ms <= 0.44 < result.baseline.cost.latency_ms
    assert any("points of the grid" in line for line in said)  # the strategy speaks through the search's log
    study = optuna.load_study(study_name=None, storage=settings.storage_url)
    vectors = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(vectors) == len(set(vectors)) < 100  # distinct, and the grid ran out before the budget
    plans = [next(iter(t.user_attrs["plans"].values()))["layers"] for t in study.trials if t.user_attrs["feasible"]]
    winner = next(iter(result.solution.plans.values())).to_dict()["layers"]
    assert winner in plans  # the winner is one of the uniform candidates, whole (no minimization)
    for layers in plans:  # every quantized layer at one width
        assert len({c["weight_bits"] for c in layers.values() if "weight_bits" in c}) <= 1


def test_a_channel_cut_that_does_not_say_its_width_is_refused_with_the_fix():
    bare = replace(cut("a", 16), unchanged=None)
    with pytest.raises(ConfigError, match="unchanged width of channel_cut dimension 'channel_cut:a'"):
        uniform_grid((bare,))


def test_the_transforms_offers_say_what_choice_0_keeps():
    from nn2hw.api import zoo_workload
    from nn2hw.compress import TRANSFORMS, SpaceContext

    workload = zoo_workload("resnet20", "fashion-mnist")
    cut_, quant = TRANSFORMS.get("channel_cut"), TRANSFORMS.get("quantize")
    offers = [(o, "out_channels") for layer in workload.compute_layers
              if (o := cut_.offer(workload, layer, (0.5,), SpaceContext())) is not None]
    offers += [(o, "weight_bits") for layer in workload.compute_layers
               if (o := quant.offer(workload, layer, (4,), SpaceContext())) is not None]
    assert {f for _, f in offers} == {"out_channels", "weight_bits"}
    for offer, field in offers:
        kept = workload.layer(offer.layers[0])
        assert offer.unchanged == {field: getattr(kept, field)} != offer.choices[1]
