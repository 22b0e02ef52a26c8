"""What every worker of a search prepares once: the networks, their costs and bottlenecks, the
space, and the checks that refuse an impossible search before any work (an empty space, a spec
below what the leanest candidate reaches, an unknown strategy or option).

The strategies are imported where they are used: their package loads torch (REINFORCE's
controller), and importing the search must not."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import combinations
from typing import TYPE_CHECKING

from nn2hw.compress import SpaceContext, apply_plan
from nn2hw.errors import ConfigError, InfeasibleError
from nn2hw.evaluate import Evaluator, FinetuneEvaluator, FinetuneSettings, evaluator_id
from nn2hw.evaluate.evaluator import EmbeddingFidelityEvaluator
from nn2hw.hardware.cpu import CpuTemplate, measuring_protocol, search_margin_of
from nn2hw.hardware.records import NetworkCost
from nn2hw.plan import Plan
from nn2hw.search.settings import COSINE, Member, SearchSettings
from nn2hw.search.target import HardwareTarget
from nn2hw.search.trial import Assessment, observe
from nn2hw.search.variation import check_variation_search
from nn2hw.space import JointSpace, SpaceConfig, build_space
from nn2hw.spec import UNITS, Spec
from nn2hw.workload import Workload

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nn2hw.compress.quantize import ActivationRange
    from nn2hw.measured import MeasuredNetwork
    from nn2hw.search.strategies import RewardConfig


@dataclass
class MemberContext:
    """One network of the search: its pretrained model, workload and evaluator (with its identity);
    ``variant``: the zoo variant the model is built from (the member's dataset, or the sentence
    encoder's for the cosine metric), which its plans record."""

    member: Member
    model: nn.Module
    workload: Workload
    evaluator: Evaluator
    evaluator_id: str
    variant: str | None = None

    @property
    def name(self) -> str:
        return self.member.model


@dataclass
class SearchContext:
    """What every worker prepares once: the networks, costs, space, reward."""

    settings: SearchSettings
    members: tuple[MemberContext, ...]
    target: HardwareTarget
    base_cost: NetworkCost
    bottlenecks: dict[str, dict[str, str]]
    space: JointSpace
    bound_costs: tuple[NetworkCost, ...]
    """The leanest candidate of every combination of the space's techniques: what no candidate can
    beat, metric by metric (``bound_cost`` is the fastest)."""
    reward: RewardConfig | None = None
    base_metric: float | None = None
    assessments: OrderedDict[tuple[int, ...], Assessment] = field(default_factory=OrderedDict, repr=False)
    """Candidates already costed, by index vector (``trial.assess`` fills and bounds it)."""
    measured_base: Mapping[str, MeasuredNetwork] | None = None
    """On a measured template (``cpu``): each base network as timed on this machine."""
    trained: OrderedDict[str, nn.Module] = field(default_factory=OrderedDict, repr=False)
    """The latest fine-tuned candidates by network key, kept for their test under device variation
    (``nn2hw.search.variation``; empty without that spec)."""

    @property
    def bound_cost(self) -> NetworkCost:
        """The fastest of the leanest candidates."""
        return min(self.bound_costs, key=lambda cost: cost.latency_ms)

    @property
    def spec(self) -> Spec:
        """The spec candidates are costed against. On a measured template the latency limit keeps the
        margin the finalists' measurement must keep (``nn2hw.measured.meets``) plus one for the
        predictor's error, so that the predicted candidates the search settles on pass when measured."""
        limit = self.settings.spec.latency_ms
        if self.measured_base is None or limit is None:
            return self.settings.spec
        return replace(self.settings.spec, latency_ms=limit / (1 + search_margin_of(self.target.options)))

    def timed(self, plans: Mapping[str, Plan], repeats_factor: int = 1, *, against_base: bool = False
              ) -> MeasuredNetwork:
        """The network ``plans`` make, timed on this machine (measured templates): exported as
        deployed, with ``repeats_factor`` times the protocol's runs; measured once (the measurement
        store keeps it), or ``against_base`` anew, interleaved with the base network and referred to
        the base's timing the spec was checked against (``nn2hw.measured.measure_against_base``)."""
        from nn2hw.measured import measure_against_base, measure_models

        m, = self.members
        options = dict(self.target.options)
        if repeats_factor != 1:
            options["repeats"] = repeats_factor * measuring_protocol(self.target.device, options).repeats
        plan = plans[m.name]
        if against_base:
            assert self.measured_base is not None, "a base timing to refer to: measured templates only"
            return measure_against_base(self.target.template, self.target.device, options, m.model, m.workload, plan,
                                        self.measured_base[m.name])
        timed, = measure_models(self.target.template, self.target.device, options,
                                [(m.model, apply_plan(plan, m.workload), plan)])
        return timed

    def workloads(self, plans: Mapping[str, Plan] | None = None) -> Workload | dict[str, Workload]:
        """The networks' workloads (rewritten by ``plans``): one workload, or a dict of several."""
        return _workloads(self.members, plans)


def _workloads(members: tuple[MemberContext, ...], plans: Mapping[str, Plan] | None) -> Workload | dict[str, Workload]:
    done = {m.name: apply_plan(plans[m.name], m.workload) if plans else m.workload for m in members}
    return next(iter(done.values())) if len(done) == 1 else done


def model_variant(settings: SearchSettings, member: Member) -> str:
    """The zoo variant a member's network is built from: the one trained on its dataset, or for the
    cosine metric the model's sentence encoder (a ``ConfigError`` when it has none)."""
    from nn2hw import zoo

    if settings.metric == COSINE:
        return zoo.entry(member.model).embedding_variant().dataset
    return member.dataset


def member_evaluator(settings: SearchSettings, member: Member, images: int | None, finetune: FinetuneSettings,
                     teacher: nn.Module | None = None, progress: bool = False, *, selecting: bool = False
                     ) -> Evaluator:
    """The search's own evaluator of a network: ``default_evaluator``, or for the cosine metric the
    fidelity of its embeddings to ``teacher``'s (the unmodified encoder) on the first ``images``
    (None: all) texts of the selection split (``selecting``) or of the member's test split, without
    a fine-tune."""
    if settings.metric != COSINE:
        return default_evaluator(settings, member, images, finetune, teacher, progress, selecting=selecting)
    from nn2hw import zoo

    if teacher is None:
        raise ConfigError("The cosine metric compares a model's embeddings with the unmodified model's, and no "
                          "unmodified model was given.", "Pass the base model as teacher.")
    return EmbeddingFidelityEvaluator(
        teacher, member.dataset, split=settings.selection_split if selecting else member.split,
        data_dir=settings.data_dir, max_texts=images, threads=settings.threads, progress=progress,
        prepare=partial(zoo.prepare, model_name=member.model, seq_len=member.seq_len,
                        variant_name=model_variant(settings, member)), holdout=settings.holdout)


def default_evaluator(settings: SearchSettings, member: Member, images: int | None, finetune: FinetuneSettings,
                      teacher: nn.Module | None = None, progress: bool = False, *, selecting: bool = False
                      ) -> FinetuneEvaluator:
    """Fine-tune as ``finetune`` says on the search's training split (distilling from ``teacher``,
    the unmodified model, when it asks to), then test on the first ``images`` (None: all) of the
    selection split (``selecting``: what candidates are scored on) or of the member's test split."""
    from nn2hw import zoo

    split = settings.selection_split if selecting else member.split
    return FinetuneEvaluator(member.dataset, split=split, data_dir=settings.data_dir, settings=finetune,
                             max_test_images=images,
                             prepare=partial(zoo.prepare, model_name=member.model, seq_len=member.seq_len),
                             threads=settings.threads, progress=progress, teacher=teacher,
                             train_split=settings.train_split, holdout=settings.holdout)


def checked_selection_data(settings: SearchSettings, evaluator: Evaluator) -> None:
    """Load the data the default evaluator scores candidates on now, so that a dataset without a
    validation split or training data here stops the search before any work, saying how to select
    on test instead (another evaluator's data are its own business)."""
    from nn2hw.errors import DatasetError

    if not isinstance(evaluator, (FinetuneEvaluator, EmbeddingFidelityEvaluator)):
        return
    try:
        evaluator.test_data() if isinstance(evaluator, FinetuneEvaluator) else evaluator.data()
    except DatasetError as exc:
        if settings.select_on_test:
            raise
        raise DatasetError(f"{exc.cause} A search scores candidates on a validation split carved from the "
                           "training split, so it needs the training data.",
                           f"{exc.fix} Or pass --select-on-test to score candidates on the test split itself "
                           "(every accuracy is then marked selected-on-test).") from None


def _member_context(settings: SearchSettings, member: Member,
                    evaluator: Evaluator | Mapping[str, Evaluator] | None) -> MemberContext:
    import torch

    from nn2hw import zoo
    from nn2hw.workload import from_module

    variant = zoo.entry(member.model).variant(model_variant(settings, member))
    shape = variant.shape_for(member.seq_len)  # an image model refuses a token count before any loading
    model = zoo.build(member.model, variant.dataset, pretrained=True, checkpoint=member.checkpoint)
    model.eval()
    check_tokens = getattr(model, "check_tokens", None)
    if variant.tokens and callable(check_tokens):
        check_tokens(shape[0])  # a length beyond the position table: a clear error, not one from the trace
    workload = from_module(model, (1, *shape), name=member.model,
                           dtype=getattr(torch, variant.input_dtype))  # token ids for a sequence model
    if isinstance(evaluator, Mapping):
        evaluator = evaluator.get(member.model)
    if evaluator is None:
        evaluator = member_evaluator(settings, member, settings.search_images, settings.finetune, teacher=model,
                                     selecting=True)
    tokens = () if member.seq_len is None else (f"{member.seq_len} tokens",)  # unchanged ids at the default
    return MemberContext(member, model, workload, evaluator, evaluator_id(evaluator, member.checkpoint, *tokens),
                         variant.dataset)


def prepare(settings: SearchSettings, evaluator: Evaluator | Mapping[str, Evaluator] | None = None) -> SearchContext:
    """Load the base models, cost them on their best design, take each layer's bottleneck, build
    the space and check the specs against what it can reach (an impossible spec stops here)."""
    members = tuple(_member_context(settings, m, evaluator) for m in settings.members)
    target = HardwareTarget.parse(settings.hardware, settings.hw_options, settings.hw_grid, settings.spec.limits)
    workloads = {m.name: m.workload for m in members}
    measured_base = None
    if target.template.measured:
        target, measured_base = _calibrated(settings, members, target)
    base_cost = target.best(workloads)
    if len(members) == 1:  # what this device's measurements say pays (the cpu template: where int8 does)
        base_cost = target.template.label_base(members[0].workload, base_cost, target.device, **target.options)
    bottlenecks = _bottlenecks(base_cost, [m.name for m in members])
    config = SpaceConfig.load(settings.space_config) if settings.space_config else SpaceConfig()
    if settings.min_accuracy_under_variation is not None and not config.hardware:
        config = replace(config, hardware=target.template.variation_knobs)  # NACIM: co-explore the device side
    knobs = target.knob_dimensions(members[0].workload)
    parts = []
    for i, m in enumerate(members):
        base_plan = Plan.for_workload(m.workload, m.name, m.variant or m.member.dataset)
        weights = SpaceContext(weights=partial(_layer_weight, m.model),
                               activation_range=CalibratedRanges(settings.data_dir, m.member, m.model, m.variant))
        parts.append((m.name, build_space(m.workload, bottlenecks[m.name], base_plan, remedies=target.template.remedies,
                                          vocabulary=target.template.bottlenecks, config=config, context=weights,
                                          space_options=target.template.space_options,
                                          hardware=knobs if i == 0 else ())))
    space = JointSpace(tuple(parts))
    ctx = SearchContext(settings, members, target, base_cost, bottlenecks, space, _bounds(target, members, space),
                        measured_base=measured_base)
    check_reachable(ctx)
    _check_strategy(settings, space)
    check_variation_search(ctx)
    for m in members:  # after the cheap checks: this loads the data
        checked_selection_data(settings, m.evaluator)
    return ctx


def _calibrated(settings: SearchSettings, members: tuple[MemberContext, ...], target: HardwareTarget
                ) -> tuple[HardwareTarget, dict[str, MeasuredNetwork]]:
    """Time the base network on this machine, refuse a spec its noise cannot verify, and scale the
    predictor by measured / predicted on it (unless ``calibration`` was given)."""
    from nn2hw.measured import verified_base
    from nn2hw.zoo.bake import packaged_workloads

    m, = members
    if isinstance(target.template, CpuTemplate):  # build this machine's predictor from the searched network's shapes
        target.template.predictor_file(target.device, target.options, [m.workload, *packaged_workloads()])
    base = verified_base(target.template, target.device, target.options, m.model, m.workload,
                         settings.spec.latency_ms)
    if "calibration" not in target.options:
        predicted = target.best(m.workload).latency_ms
        target = replace(target, options={**target.options, "calibration": base.median_ms / predicted})
    return target, {m.name: base}


CALIBRATION_IMAGES = 32


@dataclass
class CalibratedRanges:
    """The largest |input| and |output| each layer of the pretrained model shows on a calibration
    batch: the first ``CALIBRATION_IMAGES`` images of the training split (of the member's split
    where the dataset has no training split here), measured on first use: quantized activations
    take their integer bits from it, not from a default that clips pre-BatchNorm outputs."""

    data_dir: str | None
    member: Member
    model: nn.Module
    variant: str | None = None
    _ranges: dict[str, ActivationRange] | None = field(default=None, repr=False)

    def __call__(self, layer: str) -> ActivationRange:
        if self._ranges is None:
            self._ranges = self._measure()
        return self._ranges[layer]

    def _measure(self) -> dict[str, ActivationRange]:
        from nn2hw import zoo
        from nn2hw.compress.quantize import activation_ranges
        from nn2hw.data import load_dataset
        from nn2hw.errors import DatasetError

        try:
            data = load_dataset(self.member.dataset, "train", self.data_dir)
        except (ConfigError, DatasetError):
            data = load_dataset(self.member.dataset, self.member.split, self.data_dir)
        prepared = zoo.prepare(data, self.member.model, self.member.seq_len, variant_name=self.variant)
        images, _ = next(prepared.take(CALIBRATION_IMAGES).batches(CALIBRATION_IMAGES))
        layers = [name for name, module in self.model.named_modules() if hasattr(module, "weight") and name]
        return activation_ranges(self.model, layers, images)


def _bounds(target: HardwareTarget, members: tuple[MemberContext, ...], space: JointSpace) -> tuple[NetworkCost, ...]:
    """The cost of the leanest candidate of each non-empty set of the space's techniques (every
    other dimension at its base choice). The all-leanest vector alone is not a bound where a
    technique's leanest choice costs more in combination (int8 on a few channels spends more on
    its conversions than it saves on a CPU)."""
    techniques = sorted({d.technique for d in space.dimensions})
    costs = []
    for size in range(1, len(techniques) + 1):
        for chosen in combinations(techniques, size):
            vector = tuple(d.leanest if d.technique in chosen else 0 for d in space.dimensions)
            costs.append(target.best(_workloads(members, space.decode(vector).plans)))
    return tuple(costs)


def _layer_weight(model: nn.Module, name: str) -> torch.Tensor | nn.Module:
    return model.get_submodule(name).weight


def _bottlenecks(cost: NetworkCost, networks: list[str]) -> dict[str, dict[str, str]]:
    """Each network's layer -> bottleneck label (layers of a multi-network chip are 'net/layer');
    an op timed within another record (a fused kernel, a whole-network prediction) takes its label."""
    if len(networks) == 1:
        labels = {layer.name: layer.bottleneck for layer in cost.layers}
        inherited = {u.name: labels[u.within] for u in cost.uncosted if u.within in labels}
        return {networks[0]: {**inherited, **labels}}
    found: dict[str, dict[str, str]] = {net: {} for net in networks}
    for layer in cost.layers:
        net, _, name = layer.name.partition("/")
        found[net][name] = layer.bottleneck
    return found


def _check_strategy(settings: SearchSettings, space: JointSpace) -> None:
    """Build the strategy's sampler once so an unknown name or option fails before any work."""
    from nn2hw.search.strategies import RewardConfig, build_sampler
    from nn2hw.search.strategies.sampler import SamplerContext

    probe = RewardConfig(spec_ms=1.0, acc_band=(0.0, 1.0), lat_band=(0.5, 1.0))
    build_sampler(settings.strategy, SamplerContext(space.names, space.counts, probe, settings.seed,
                                                    observe(space.names, settings.metric),
                                                    dict(settings.strategy_options), dimensions=space.dimensions))


def check_reachable(ctx: SearchContext) -> None:
    """Refuse a spec below what the leanest candidate reaches, naming that bound."""
    settings, nets = ctx.settings, " + ".join(m.name for m in ctx.members)
    if not ctx.space.dimensions:
        raise InfeasibleError(
            f"The search space of {nets} is empty: no layer has a technique for its bottleneck on "
            f"{settings.hardware}.",
            "Widen it with a --space file (e.g. enable channel cuts or quantization for more bottlenecks).")
    for name, limit in ctx.spec.limits.items():
        reach = min(ctx.spec.value(cost, name) for cost in ctx.bound_costs)
        if reach > limit:
            unit = UNITS[name]
            margins = ctx.measured_base is not None and name == "latency_ms"
            kept = (f" (the spec less the {search_margin_of(ctx.target.options):.0%} margins for measurement noise "
                    "and prediction error)" if margins else "")
            needed = reach * (1 + search_margin_of(ctx.target.options)) if margins else reach
            raise InfeasibleError(
                f"No candidate can meet {name} <= {limit:g} {unit}{kept}: the leanest candidate of the space (every "
                f"layer at its cheapest choice, best design) reaches {reach:.6g} {unit}; the base model needs "
                f"{settings.spec.value(ctx.base_cost, name):.6g} {unit} on {settings.hardware}.",
                f"Relax the spec to at least {needed:.6g} {unit}, widen the space (--space), or use larger hardware.",
                best_bound=reach)


def reward_config(ctx: SearchContext, base_metric: float) -> RewardConfig:
    """HotNAS's reward bands around the base metric and the latency spec (or the settings' own)."""
    from nn2hw.search.strategies import RewardConfig

    s = ctx.settings
    latency = s.spec.latency_ms if s.spec.latency_ms is not None else ctx.base_cost.latency_ms
    acc_band = s.acc_band or (base_metric - 10.0, base_metric)
    lat_band = s.lat_band or (0.7 * latency, latency)
    return RewardConfig(spec_ms=latency, acc_band=acc_band, lat_band=lat_band, alpha=s.alpha,
                        lat_penalty=s.lat_penalty)
