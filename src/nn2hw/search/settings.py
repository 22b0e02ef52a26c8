"""Everything one search needs, as one validated, picklable record (workers receive a copy)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nn2hw._json import jsonable
from nn2hw.compress.crossbar import DEFAULT_CLIP, NoiseChoice
from nn2hw.errors import ConfigError, PlanError
from nn2hw.evaluate.settings import OPTIMIZERS, FinetuneSettings, check_calibration_images
from nn2hw.search.pruning import check_pruner
from nn2hw.spec import Spec
from nn2hw.splits import FIT, VALIDATION, Holdout

SEARCH_FINETUNE_LR = 0.003
"""The search fine-tunes pretrained candidates at lr 0.003, not HotNAS's 0.1: on the converged
Fashion-MNIST ResNet-20 (94.46 %; batch 32, momentum 0.9) 100 batches at lr 0.1 drop even the
unmodified model to 66.7 % top-1 and at lr 0.01 to 90.1 %. On three searched candidates (first
2,000 test images after 100 batches) lr 0.01 / 0.003 / 0.001 score 91.4 / 93.0 / 93.0,
85.4 / 90.9 / 91.3 and 89.6 / 92.05 / 91.8 (docs/search.md)."""


COSINE = "cosine"
"""The label-free metric of sentence encoders (``EmbeddingFidelityEvaluator``), in percent."""
METRICS = ("top1", "top5", COSINE)
DIFFERENTIABLE = "differentiable"
"""The strategy that trains a supernet (``epochs``, ``space_kind``)."""
SPACE_KINDS = ("hotstart", "fbnet", "nb201")
"""What ``--space-kind`` may name; the differentiable strategy searches ``hotstart`` for now."""
"""What a search may maximize; all in percent."""


def cosine_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Search keywords with the fine-tunes defaulting to 0 batches when ``metric`` is 'cosine'
    (label-free: candidates are scored as compressed); given fine-tunes are kept, and checked."""
    if settings.get("metric") != COSINE:
        return dict(settings)
    return {"finetune": FinetuneSettings(batches=0, lr=SEARCH_FINETUNE_LR),
            "final_finetune": replace(FINAL_FINETUNE, batches=0), **settings}


FINAL_FINETUNE = FinetuneSettings(batches=2000, lr=SEARCH_FINETUNE_LR, schedule="cosine", distill=0.5)
"""How the winner recovers: 2000 batches, cosine decay from lr 0.003, distilled from the unmodified
model (weight 0.5, T = 4). Measured on the Fashion-MNIST ResNet-20 (94.46 % unmodified): with every
3x3 conv at 4/9 kept weights, 500 constant-lr batches (lr 0.01) give 84.17 %, 2000 cosine batches
93.04 %, the same distilled 93.46 %; on a searched 0.226 ms candidate, 2000 distilled cosine
batches from lr 0.01 / 0.003 / 0.001 give 93.95 / 94.22 / 93.94 % (full test set)."""

SCRATCH_FINETUNE_LR = 0.05
"""A built-in space searched from scratch (``--space-kind fbnet|nb201``) fine-tunes its derived
networks at lr 0.05: they inherit a briefly trained supernet's weights (its loss stays near 2.3 for
its first few hundred random-path batches here), not a converged model's, so their fine-tunes train
rather than recover (measured: one fixed 0.25-width FBNet path at 0.05, batch 32, momentum 0.9 falls
from loss 2.35 to 1.56 in 80 batches)."""

SCRATCH_CLIP_GRAD_NORM = 5.0
"""Their fine-tunes clip the gradients' norm to 5: unclipped, all four final fine-tunes of a measured
FBNet search (lr 0.05, cosine over 1500 batches, 4- and 8-bit blocks) diverged within 68-252 batches."""


def scratch_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Search keywords with the fine-tunes defaulting to ``SCRATCH_FINETUNE_LR`` and
    ``SCRATCH_CLIP_GRAD_NORM`` (the final one undistilled: there is no unmodified model) when
    ``space_kind`` is a built-in space; given fine-tunes are kept."""
    if settings.get("space_kind", "hotstart") == "hotstart":
        return dict(settings)
    return {"finetune": FinetuneSettings(lr=SCRATCH_FINETUNE_LR, clip_grad_norm=SCRATCH_CLIP_GRAD_NORM),
            "final_finetune": replace(FINAL_FINETUNE, lr=SCRATCH_FINETUNE_LR, distill=0.0,
                                      clip_grad_norm=SCRATCH_CLIP_GRAD_NORM), **settings}


def default_finetune_lr(space_kind: str) -> float:
    """The fine-tunes' learning rate when none is given: 0.003 from a pretrained model (hot start),
    0.05 for a built-in space's networks trained from scratch."""
    return SEARCH_FINETUNE_LR if space_kind == "hotstart" else SCRATCH_FINETUNE_LR


@dataclass(frozen=True)
class Recipe:
    """The fine-tunes' optimizer and learning rate, and where they come from (for the user to read;
    ``from_model``: the zoo entry's measured recovery recipe)."""

    optimizer: str
    lr: float
    source: str
    from_model: bool = False


def finetune_recipe(model: str, space_kind: str = "hotstart", *, optimizer: str | None = None,
                    lr: float | None = None) -> Recipe:
    """The fine-tunes' recipe: what the user gave wins; from a pretrained model (hot start) the zoo
    entry's measured ``recovery`` fills the rest (its rate only with its own optimizer); otherwise
    SGD at ``default_finetune_lr``."""
    from nn2hw import zoo

    recovery = zoo.entry(model).recovery if space_kind == "hotstart" else None
    chosen = optimizer or (recovery.optimizer if recovery is not None else OPTIMIZERS[0])
    if lr is None and recovery is not None and chosen == recovery.optimizer:
        return Recipe(chosen, recovery.lr, f"{model}'s measured recovery recipe: {recovery.evidence}", from_model=True)
    rate = default_finetune_lr(space_kind) if lr is None else lr
    return Recipe(chosen, rate, "the search's default" if optimizer is None and lr is None else "as given")


def recipe_settings(model: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Search keywords with each fine-tune not given taking ``model``'s measured recovery recipe
    (``finetune_recipe``) when it has one and starts from its pretrained weights (hot start)."""
    from nn2hw import zoo

    if settings.get("space_kind", "hotstart") != "hotstart" or zoo.entry(model).recovery is None:
        return dict(settings)
    recipe = finetune_recipe(model)
    return {"finetune": FinetuneSettings(lr=recipe.lr, optimizer=recipe.optimizer),
            "final_finetune": replace(FINAL_FINETUNE, lr=recipe.lr, optimizer=recipe.optimizer), **settings}


@dataclass(frozen=True)
class Member:
    """A network of a joint search: a zoo model on a dataset (split, optional own weights; the
    token count of a sequence model, None for its default)."""

    model: str
    dataset: str
    split: str = "test"
    checkpoint: str | None = None
    seq_len: int | None = field(default=None, kw_only=True)

    @classmethod
    def parse(cls, text: str) -> Member:
        """'mobilenetv2_fmnist:fashion-mnist[:split]' from the command line."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ConfigError(f"--with {text!r} is not MODEL:DATASET[:SPLIT].",
                              "Write e.g. --with mobilenetv2_fmnist:fashion-mnist.")
        return cls(*parts)


FAMILY_WEIGHTS = ("joint", "separate")
"""How a family's variants are fine-tuned (``SearchSettings.family_weights``)."""


@dataclass(frozen=True)
class SearchSettings:
    """A co-search: model, data, hardware, specs, strategy, budget, fine-tuning, storage, output.

    - ``trials``/``minutes``: the budget (either or both; the first reached stops the search).
      A trial is a candidate the study records, including one that misses a spec (never trained);
      the proposals the prefilter rejects within a trial (``proposals``) are not trials.
    - ``finetune``: the short fine-tune of each candidate that meets the specs (HotNAS: 100
      batches of 32; learning rate ``SEARCH_FINETUNE_LR``) on the ``fit`` split; ``search_images``:
      the first N images of the ``validation`` split score candidates (None: all); ``final_finetune``:
      the longer fine-tune of the winner (default 2000 batches, cosine decay from lr 0.003,
      distilled from the unmodified model), then tested once on all of ``split`` (the test split),
      as the base model is; ``report_images``: on its first N images only (a quick run: the report's
      accuracies are then marked partial). ``validation_size``: images (or a fraction) of the training split set
      aside as the validation split (None: the dataset's own split, or its default holdout, e.g.
      5,000 Fashion-MNIST images). ``select_on_test``: score candidates on ``split`` itself, for a
      dataset with no training data here; every accuracy is then marked selected-on-test.
    - ``storage``: an SQLAlchemy URL (default: ``study.db`` in ``out``); ``study``: its name
      (default from model, dataset, hardware and specs); ``resume`` continues it.
    - ``metric``: the accuracy the search maximizes ('top1' or 'top5', in percent); with
      ``companions`` (further networks sharing one heterogeneous chip, NASAIC-style) the mean of
      every network's metric. 'cosine': label-free fidelity of a sentence encoder (the model's
      embedding variant, ``--model minilm_l6``): 100 x the mean cosine similarity of a candidate's
      embeddings to the unmodified encoder's on the dataset's texts, in percent like top-1 (so the
      reward bands read it alike); candidates are scored as compressed, so both fine-tunes must
      have 0 batches (``cosine_settings``).
    - reward: ``alpha``, ``acc_band`` (default: base metric - 10 .. base metric),
      ``lat_band`` (default: 0.7 x spec .. spec), as HotNAS, and ``lat_penalty`` ('scaled' or
      HotNAS's 'hotnas', see ``RewardConfig.r_lat``).
    - ``seq_len``: the token count of a sequence model such as ``minilm_l6`` (None: the model's
      default, 128): its workload is costed and its data tokenized at that length; an image model
      refuses it.
    - ``proposals``: latency first for nn2hw's own strategies: a trial may go through up to this
      many proposals, those the cost model shows to miss a spec being recorded on the trial and
      learned from without training (1: every proposal becomes a trial).
    - early stopping (``nn2hw.search.pruning``): ``pruner`` ('median', 'halving' or 'none') judges
      each candidate at ``prune_checkpoints`` evenly spaced points of its fine-tune (3: at 25, 50
      and 75 %), scored on the first ``prune_images`` images of the scoring split, once
      ``prune_warmup`` candidates were fine-tuned to the end.
    - ``minimize``: before the final fine-tune, remove from the winner every change whose removal
      keeps every spec met (``nn2hw.search.minimize``); False returns the searched candidate whole.
    - ``min_accuracy_under_variation``: on a computing-in-memory template, a spec on top-1 (percent)
      under device variation (``nn2hw.search.variation``): each fine-tuned candidate is tested over
      ``variation_draws`` Monte-Carlo draws of its own design's crossbars on the images it is scored on,
      and misses the spec when their mean is below it; the winner is re-checked after its final
      fine-tune on ``final_variation_draws`` fresh draws over the whole selection split.
      ``variation_aware_training``: candidates and the winner are fine-tuned with weight noise at
      their design's spread (NACIM's variation-aware training); False fine-tunes them clean.
      ``variation_clip``: with that training, each crossbar layer's weights are also clipped to ±
      this many standard deviations of the layer's weights (aihwkit's LayerGaussian clipping), which
      lowers every cell's noise as the crossbar's range follows max|w|; None clips nothing.
      ``bn_calibration``: each draw's batch norms are re-estimated on the first this many images of
      the fine-tune split before it is tested (a chip whose batch norms are digital, AdaBS-style);
      0 keeps the trained statistics.
    - ``latency_levels_ms``: RT3-style run-time reconfiguration (``nn2hw.search.family``): a family of
      variants, one per latency level (two or more, distinct; kept sorted, tightest first). The
      search targets ``spec.latency_ms``, which must be one of them (``api.search`` sets it to the
      tightest level the space can reach); finalize derives each looser level's variant from the
      tighter one by removing the changes that level does not need (nested plans).
      ``family_weights``: 'joint' (default) fine-tunes the variants together as slices of one set of
      weights; 'separate' fine-tunes each on its own (a weight set per variant; 0.1-0.3 points more
      accurate in the run ``benchmarks/family_weights.py`` measured).
    - ``epochs`` (default 1) and ``space_kind`` ('hotstart'): the supernet of ``strategy='differentiable'``
      (``nn2hw.search.differentiable``): its training epochs over the ``fit`` split (a fraction is
      allowed) and the space it relaxes; other strategies refuse them.
    """

    model: str
    dataset: str
    spec: Spec
    hardware: str = "fpga:zcu102"
    hw_options: Mapping[str, Any] = field(default_factory=dict)
    hw_grid: Mapping[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    split: str = "test"
    checkpoint: str | None = None
    seq_len: int | None = None
    strategy: str = "reinforce"
    strategy_options: Mapping[str, Any] = field(default_factory=dict)
    trials: int | None = 40
    minutes: float | None = None
    finetune: FinetuneSettings = field(default_factory=lambda: FinetuneSettings(lr=SEARCH_FINETUNE_LR))
    search_images: int | None = 2000
    report_images: int | None = None
    final_finetune: FinetuneSettings = field(default_factory=lambda: FINAL_FINETUNE)
    top_k: int = 3
    storage: str | None = None
    study: str | None = None
    resume: bool = False
    workers: int = 1
    seed: int = 0
    out: str | None = None
    space_config: str | None = None
    metric: str = "top1"
    alpha: float = 0.7
    acc_band: tuple[float, float] | None = None
    lat_band: tuple[float, float] | None = None
    threads: int | None = None
    companions: tuple[Member, ...] = ()
    proposals: int = 32
    lat_penalty: str = "scaled"
    select_on_test: bool = False
    validation_size: int | float | None = None
    pruner: str = "median"
    prune_checkpoints: int = 3
    prune_images: int = 500
    prune_warmup: int = 5
    minimize: bool = True
    min_accuracy_under_variation: float | None = None
    variation_draws: int = 3
    final_variation_draws: int = 10
    variation_aware_training: bool = True
    variation_clip: float | None = DEFAULT_CLIP
    bn_calibration: int = 0
    latency_levels_ms: tuple[float, ...] = ()
    family_weights: str = "joint"
    epochs: float | None = None
    space_kind: str = "hotstart"

    def __post_init__(self) -> None:
        self._check_levels()
        self.spec.require()
        if self.trials is None and self.minutes is None:
            raise ConfigError("The search has no budget.", "Give --trials N or --minutes M (or both).")
        if self.trials is not None and (not isinstance(self.trials, int) or self.trials < 1):
            raise ConfigError(f"--trials must be a positive integer, got {self.trials!r}.", "Give e.g. --trials 40.")
        if self.minutes is not None and (not math.isfinite(self.minutes) or self.minutes <= 0):
            raise ConfigError(f"--minutes must be a positive number, got {self.minutes!r}.", "Give e.g. --minutes 10.")
        check_pruner(self.pruner)
        for name, low in (("workers", 1), ("top_k", 1), ("proposals", 1), ("prune_checkpoints", 1),
                          ("prune_images", 1), ("prune_warmup", 0), ("variation_draws", 1),
                          ("final_variation_draws", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}.", f"Fix {name}.")
        for name in ("search_images", "report_images"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.",
                                  f"Give e.g. --{name.replace('_', '-')} 2000, or leave it unset to score on the "
                                  "whole split.")
        if self.seq_len is not None and (isinstance(self.seq_len, bool) or not isinstance(self.seq_len, int)
                                         or self.seq_len < 2):
            raise ConfigError(f"--seq-len must be an integer >= 2, got {self.seq_len!r}.",
                              "Give e.g. --seq-len 128, or leave it unset for the model's default.")
        if self.metric not in METRICS:
            raise ConfigError(f"Unknown metric {self.metric!r}.", f"Use one of {', '.join(METRICS)}.")
        if self.metric == COSINE:
            self._check_cosine()
        if self.study is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}", self.study):
            raise ConfigError(f"Study name {self.study!r} is not a simple name.",
                              "Use letters, digits, '.', '_' and '-' (up to 128 characters).")
        names = [m.model for m in self.members]
        if len(set(names)) != len(names):
            raise ConfigError(f"A joint search names a model twice ({', '.join(names)}).",
                              "Give each network once.")
        if self.select_on_test and self.validation_size is not None:
            raise ConfigError("A validation size was given with --select-on-test, which scores candidates on the "
                              "test split instead of a validation split.", "Drop one of --validation-size and "
                              "--select-on-test.")
        if self.validation_size is not None:
            Holdout(self.validation_size)  # a bad validation size fails here, before anything loads
        self._check_variation()
        self._check_differentiable()
        for band in (self.acc_band, self.lat_band):
            if band is not None and (len(band) != 2 or not band[0] < band[1]):
                raise ConfigError(f"A reward band must be two increasing numbers, got {band!r}.",
                                  "Give e.g. --acc-band 85 92.")

    def _check_cosine(self) -> None:
        """The label-free metric scores one encoder as compressed: no fine-tune, no companions."""
        tuned = [f"{flag} {s.batches}" for flag, s in (("--finetune-batches", self.finetune),
                                                       ("--final-batches", self.final_finetune)) if s.batches]
        if tuned:
            raise ConfigError(f"--metric cosine scores each candidate's embeddings as compressed, without "
                              f"fine-tuning (there are no labels for a sentence encoder), but {' and '.join(tuned)} "
                              "ask for one.", "Give --finetune-batches 0 --final-batches 0 (the CLI's and "
                              "api.search's defaults with --metric cosine), or search a classifier with --metric top1.")
        if self.companions:
            raise ConfigError(f"--metric cosine scores one sentence encoder, and this search has "
                              f"{len(self.companions) + 1} networks.", "Drop --with, or use --metric top1.")

    def _check_levels(self) -> None:
        """A family's latency levels (``nn2hw.search.family``): sorted here, two or more, positive and
        distinct, one of them the spec's latency (the level searched); one network, no variation spec."""
        if self.family_weights not in FAMILY_WEIGHTS:
            raise ConfigError(f"Unknown family weights {self.family_weights!r}.",
                              f"Use one of {', '.join(FAMILY_WEIGHTS)}.")
        if not self.latency_levels_ms:
            return
        levels = self.latency_levels_ms
        bad = [v for v in levels if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
               or v <= 0]
        if bad:
            raise ConfigError(f"--latency-levels-ms must be positive numbers of milliseconds, got {bad[0]!r}.",
                              "Give e.g. --latency-levels-ms 0.30,0.25,0.20.")
        twice = sorted({v for v in levels if levels.count(v) > 1})
        if twice:
            raise ConfigError(f"--latency-levels-ms names {', '.join(f'{v:g}' for v in twice)} ms more than once.",
                              "Give each latency level once (their order does not matter).")
        if len(levels) < 2:
            raise ConfigError(f"A family needs at least 2 latency levels, got {len(levels)}.",
                              "Give e.g. --latency-levels-ms 0.30,0.25,0.20, or a single spec with --latency-ms.")
        object.__setattr__(self, "latency_levels_ms", tuple(sorted(float(v) for v in levels)))  # tightest first
        if self.spec.latency_ms not in self.latency_levels_ms:
            raise ConfigError(f"The latency spec {self.spec.latency_ms} ms is not one of the family's levels "
                              f"({', '.join(f'{v:g}' for v in self.latency_levels_ms)} ms).",
                              "Give the levels alone (--latency-levels-ms, without --latency-ms): the search "
                              "targets the tightest one it can reach.")
        unsupported = [what for what, given in (("--with (a joint search of several networks)", self.companions),
                                                ("--min-accuracy-under-variation", self.min_accuracy_under_variation
                                                 is not None)) if given]
        if unsupported:
            raise ConfigError(f"A family of latency levels is built for one network under latency specs, and "
                              f"{unsupported[0]} was given.",
                              "Search the family without it, or search that job with a single --latency-ms.")

    def _check_differentiable(self) -> None:
        """``epochs`` and ``space_kind`` belong to the differentiable strategy (its supernet); it searches
        one network's hot-start space, without an accuracy-under-variation spec or the cosine metric."""
        if self.space_kind not in SPACE_KINDS:
            raise ConfigError(f"Unknown --space-kind {self.space_kind!r}.", f"Use one of {', '.join(SPACE_KINDS)}.")
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, float))
                                        or not math.isfinite(self.epochs) or self.epochs <= 0):
            raise ConfigError(f"--epochs must be a positive number (a fraction is allowed), got {self.epochs!r}.",
                              "Give e.g. --epochs 1 or --epochs 0.2.")
        if self.strategy != DIFFERENTIABLE:
            given = [flag for flag, on in (("--epochs", self.epochs is not None),
                                           (f"--space-kind {self.space_kind}", self.space_kind != "hotstart")) if on]
            if given:
                verb = "configure" if len(given) > 1 else "configures"
                raise ConfigError(f"{' and '.join(given)} {verb} the supernet of --strategy {DIFFERENTIABLE}, and "
                                  f"this search uses --strategy {self.strategy}.",
                                  f"Add --strategy {DIFFERENTIABLE}, or drop {' and '.join(given)}.")
            return
        if self.space_kind != "hotstart":
            self._check_scratch()
        else:
            from nn2hw.search.differentiable.options import RelaxOptions

            scratch = sorted(set(self.strategy_options) & set(RelaxOptions.SCRATCH_ONLY))
            if scratch:
                raise ConfigError(f"--strategy-option {', '.join(scratch)} configure(s) the supernet of a built-in "
                                  "space (--space-kind fbnet|nb201), and this search relaxes the hot-start space.",
                                  f"Drop {', '.join(scratch)}, or search a built-in space with --space-kind.")
        unsupported = [what for what, given in (
            ("--with (a joint search of several networks)", self.companions),
            ("--min-accuracy-under-variation", self.min_accuracy_under_variation is not None),
            ("--metric cosine (label-free, no training data for a supernet)", self.metric == COSINE),
            ("--latency-levels-ms", self.latency_levels_ms)) if given]
        if unsupported:
            raise ConfigError(f"--strategy {DIFFERENTIABLE} trains one network's supernet under latency/energy specs, "
                              f"and {unsupported[0]} was given.",
                              "Drop it, or use a discrete strategy (e.g. --strategy reinforce).")

    def _check_scratch(self) -> None:
        """A built-in space is searched from scratch: ``--model`` names its zoo entry, and what needs a
        pretrained model, a study database or several processes is refused."""
        if self.model != self.space_kind:
            raise ConfigError(f"--space-kind {self.space_kind} searches the architectures of the zoo's "
                              f"{self.space_kind} entry from scratch (no hot start), and --model is {self.model!r}.",
                              f"Give --model {self.space_kind}, or --space-kind hotstart to compress {self.model}.")
        unsupported = [what for what, given in (
            ("--checkpoint (there are no pretrained weights to start from)", self.checkpoint),
            ("--space (the space is the built-in one)", self.space_config),
            ("--storage (its state is kept in the output folder)", self.storage),
            ("--workers above 1", self.workers > 1)) if given]
        if unsupported:
            raise ConfigError(f"--space-kind {self.space_kind} trains one supernet in one process, and "
                              f"{unsupported[0]} was given.",
                              "Drop it; --resume continues a run from its --out folder.")

    def _check_variation(self) -> None:
        """The accuracy-under-variation spec: a percentage of top-1 for one network."""
        floor = self.min_accuracy_under_variation
        check_calibration_images(self.bn_calibration)
        if floor is None:
            if self.bn_calibration:
                raise ConfigError("--bn-calibration re-estimates batch norms in the test under device variation, and "
                                  "this search has no --min-accuracy-under-variation.",
                                  "Add --min-accuracy-under-variation PCT, or drop --bn-calibration.")
            return
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0.0 < floor <= 100.0:
            raise ConfigError(f"--min-accuracy-under-variation must be a top-1 percentage in (0, 100], got {floor!r}.",
                              "Give e.g. --min-accuracy-under-variation 90.")
        if self.metric != "top1":
            raise ConfigError("--min-accuracy-under-variation is a top-1 spec, and the search maximizes "
                              f"{self.metric}.", "Search with --metric top1.")
        if self.variation_clip is not None:
            try:
                NoiseChoice(train_clip=self.variation_clip)  # the plan field it becomes: one rule
            except PlanError as exc:
                raise ConfigError(f"--variation-clip: {exc.cause}",
                                  "Give e.g. --variation-clip 2.5, or --variation-clip none.") from None
        if self.companions:
            raise ConfigError("--min-accuracy-under-variation checks one network on its crossbars, and this search has "
                              f"{len(self.companions) + 1} networks.", "Drop --with, or the accuracy spec.")

    @property
    def members(self) -> tuple[Member, ...]:
        """Every network of the search: the model, then its companions."""
        return (Member(self.model, self.dataset, self.split, self.checkpoint, seq_len=self.seq_len), *self.companions)

    @property
    def selection_split(self) -> str:
        """The split candidates are scored on: ``validation``, or the test split itself when told to."""
        return self.split if self.select_on_test else VALIDATION

    @property
    def train_split(self) -> str:
        """The split candidates and the winner are fine-tuned on: the training images less the validation ones."""
        return "train" if self.select_on_test else FIT

    @property
    def holdout(self) -> Holdout | None:
        """The validation split carved from the training split (None: the dataset's own or default)."""
        return None if self.validation_size is None else Holdout(self.validation_size)

    @property
    def study_name(self) -> str:
        if self.study:
            return self.study
        limits = "-".join(f"{k.split('_')[0]}{v:g}" for k, v in self.spec.limits.items())
        nets = "+".join(f"{m.model}-{m.dataset}" + (f"-{m.seq_len}tok" if m.seq_len else "") for m in self.members)
        return re.sub(r"[^A-Za-z0-9._+-]", "_", f"{nets}-{self.hardware}-{limits}")[:128]

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / self.study_name

    @property
    def storage_url(self) -> str:
        if self.storage:
            return self.storage if "://" in self.storage else f"sqlite:///{self.storage}"
        return f"sqlite:///{self.out_dir / 'study.db'}"

    def report_split(self, dataset: str, split: str) -> str:
        """The data the base and the result are reported on, in words."""
        return f"{dataset} {split}" + (f" (first {self.report_images})" if self.report_images else "")

    def identity(self) -> dict[str, Any]:
        """What a resumed study must share with its start (the budget and worker count may change)."""
        return {
            "model": self.model, "dataset": self.dataset, "checkpoint": self.checkpoint, "split": self.split,
            "seq_len": self.seq_len,
            "hardware": self.hardware, "hw_options": jsonable(dict(self.hw_options)),
            "hw_grid": jsonable(dict(self.hw_grid)),
            "spec": self.spec.to_dict(), "strategy": self.strategy, "strategy_options": dict(self.strategy_options),
            "finetune": self.finetune.key, "search_images": self.search_images, "seed": self.seed,
            "metric": self.metric, "alpha": self.alpha,
            "acc_band": list(self.acc_band) if self.acc_band else None,
            "lat_band": list(self.lat_band) if self.lat_band else None,
            "companions": [[m.model, m.dataset, m.split, m.checkpoint] for m in self.companions],
            "proposals": self.proposals, "lat_penalty": self.lat_penalty,
            "selection_split": self.selection_split, "validation_size": self.validation_size,
            **({} if self.min_accuracy_under_variation is None else {"variation": {
                "min_top1": self.min_accuracy_under_variation, "draws": self.variation_draws,
                "aware_training": self.variation_aware_training,
                **({} if self.variation_clip is None or not self.variation_aware_training
                   else {"clip": self.variation_clip}),
                **({"bn_calibration": self.bn_calibration} if self.bn_calibration else {})}}),
            **({} if self.epochs is None else {"epochs": self.epochs}),
            **({} if self.space_kind == "hotstart" else {"space_kind": self.space_kind}),
            **({} if self.pruner == "none" else {"pruner": {  # a study from before pruning resumes with 'none'
                "name": self.pruner, "checkpoints": self.prune_checkpoints, "images": self.prune_images,
                "warmup": self.prune_warmup}}),
        }
