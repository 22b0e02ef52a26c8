"""Build a kernel-level latency predictor on this machine (nn-Meter's method with ONNX Runtime).

1. Time the empty model (the session's own cost), then calibration networks whole (``random_cnn``:
   residual, plain and inverted-residual CNNs, a quarter int8) for ``CALIBRATION_SHARE`` of the budget
   (timed a second time after step 2, and those the load sentinel or a wide IQR marks as slowed up to
   ``CALM_ROUNDS`` times more, each keeping its fastest timing: the correction's level is theirs).
2. Sample kernel configurations: the kernels of the ``workloads`` given, of ``CUT_VARIANTS`` random
   channel cuts of each (the shapes a search of them proposes: a forest that only saw a ResNet's own
   widths priced its 25-75 % cuts' kernels 10-30 % high) and of the int8 variants of all of them
   (MiniLM's int8 128 x 384 x 1536 GEMM, 0.43 ms, was predicted 0.15 ms from the prior's draws
   alone), and of the calibration networks, interleaved with draws from a built-in prior of CNN and
   Transformer-encoder shapes; time each kernel's model beside its own
   baseline (``measurement_pair``) with ``nn2hw.measure``.
3. Fit gradient-boosted trees per kernel type and the network correction (``nn2hw.predict.kernel``);
   then nn-Meter's adaptive sampling: samples timed while the load sentinel (``SENTINEL``, read after
   every group of kernels) ran slow or with a wide IQR, then samples whose cross-validated error
   exceeds 10 % and ``NOISE_FLOOR`` times their own IQR (so noise alone flags nothing), are timed
   again first, each keeping its faster timing (load on a shared machine only slows a run, and a
   kernel's timing lasts milliseconds, so a burst of load inflates it whole: one build timed
   ResNet-20's int8 16-channel conv at 43 us, 26 us when timed again); those still off get 20
   neighbours (channels x0.4-1.2); refit, until ``budget_s``.

Everything is timed as a deployed network runs: warm (each model warmed up before its timed runs)
and in small interleaved groups (``GROUP``), never among many models that evict each other's weights
from the caches. The measurement store keeps every timing, so an interrupted build resumes.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from nn2hw.errors import ConfigError, PlanError
from nn2hw.measure import (
    Measurement,
    MeasurementStore,
    Protocol,
    Runner,
    default_store,
    measure,
    onnx_runner,
    probe_ms,
    this_machine,
)
from nn2hw.predict.kernel import KernelPredictor, KernelSample, NetworkSample
from nn2hw.predict.kernels import (
    LAYOUT_OPS,
    RESIDUAL_NCHW,
    RESIDUAL_NCHWC,
    RESIDUAL_NONE,
    Kernel,
    conv_features,
    empty_graph,
    gemm_features,
    kernel_graph,
    kernels_of,
    matmul_features,
    measurement_pair,
    native_int8,
    nchwc_block,
    nchwc_conv,
    tensor_features,
    workload_graph,
)
from nn2hw.workload import Layer, OpKind, Workload

ERROR_THRESHOLD = 0.1
"""nn-Meter's default: a sample predicted more than 10 % off gets neighbours..."""
NOISE_FLOOR = 1.0
"""... when the error also exceeds this many times the sample's own IQR (else it is measurement noise)."""
NEIGHBOURS = 20
"""nn-Meter's default number of extra samples around a bad one."""
CHANNEL_RANGE = (0.4, 1.2)
"""nn-Meter's default channel scaling around a bad sample."""
MAX_KERNEL_MACS = 120_000_000
"""Prior draws and cut variants' kernels above this are skipped: one would eat seconds of the budget for
shapes no small model has."""
CALIBRATION_SHARE = 0.2
"""Part of the budget spent timing calibration networks whole (as much again to time them a second time)."""
CALM_SHARE = 0.1
CALM_ROUNDS = 3
"""After their second timing, calibration networks whose faster timing the sentinel or a wide IQR marks
as slowed are timed again, up to ``CALM_ROUNDS`` times each within ``CALM_SHARE`` of the budget: the
correction learns its level from them, and builds whose networks kept timings 1.4-3.3 % slower
(median) than another build's priced held-out networks worse (samples of one build with networks of five:
75.0-90.4 % within ±10 %, docs/measured-devices.md)."""
KERNEL_SHARE = 0.35
"""Part of the budget spent on the first kernel samples (the rest: adaptive sampling)."""
CALIBRATION_NETWORKS = 400
"""At most this many calibration networks."""
CUT_VARIANTS = 8
"""Random channel-cut variants of each given workload whose kernels are sampled (``_cut_variant``)."""
GROUP = 3
"""Models timed together (interleaved rounds): few, so that each stays warm in the caches."""
SENTINEL = Kernel("sentinel", "conv", (), (), conv_features(cin=32, cout=32, h=16, w=16, k=3, s=1))
"""The load sentinel: a ~50 us conv whose one-kernel model is timed (never stored) after every group of
kernels; its median moves by about 1 % on a quiet machine."""
SENTINEL_REPEATS = 15
LOAD_TOLERANCE = 0.05
"""A kernel timed while the sentinel ran more than this share slower than its fastest reading of the
build is timed again first (one build timed ResNet-20's int8 kernels at 1.7x during a burst of load:
consistently, so cross-validation did not flag them)."""
WIDE_IQR_SHARE = 0.25
WIDE_IQR_MIN_MS = 0.005
"""A sample of at least this many ms whose IQR exceeds ``WIDE_IQR_SHARE`` of its median is timed again
too: many of its runs were slowed (ResNet-20's 16-to-8-channel int8 conv at 32 px: 63.9 us with an
IQR of 41.5 us in one build, 38.4 us with 1.0 us in another; its error was within the IQR, so the
cross-validated check let it pass)."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildSettings:
    """How kernels and networks are timed."""

    threads: int = 1
    kernel_repeats: int = 25
    network_repeats: int = 40

    def protocol(self, repeats: int, passes: int = 1) -> Protocol:
        return Protocol(threads=self.threads, warmup=5, repeats=repeats, profile_runs=0, passes=passes)


DEFAULT_BUDGET_S = 120.0
"""Seconds a build takes by default: on this project's machine a 300 or 600 s build was no more
accurate on held-out networks (docs/measured-devices.md) and its file is larger and slower to refit."""


def build(device: str = "cpu", *, budget_s: float = DEFAULT_BUDGET_S, seed: int = 0, threads: int = 1,
          workloads: Sequence[Workload] | None = None, progress: Progress | None = None,
          store: MeasurementStore | None = None, prior: bool = True,
          calibration: int = CALIBRATION_NETWORKS) -> KernelPredictor:
    """Sample, time and fit a kernel predictor for this machine within about ``budget_s`` seconds.

    ``workloads`` are real networks whose kernels are sampled first, as given, channel-cut at random
    and all int8 (the shapes a search of them makes; the CLI passes the zoo's);
    ``prior`` adds draws from the built-in CNN/Transformer shape prior; up to ``calibration`` random
    CNNs are timed whole (within ``CALIBRATION_SHARE`` of the budget) to fit the network correction.
    ``progress`` receives plain status lines.
    """
    if device != "cpu":
        raise ConfigError(
            f"`build` times kernels on this machine, so it only knows device 'cpu', not {device!r}.",
            "Fit a non-local device from its whole-network measurements: `nn2hw predictor fit --measurements CSV "
            "--out FILE --device NAME` (nn2hw.predict.fit).")
    if not budget_s > 0:
        raise ConfigError(f"budget_s must be positive, got {budget_s!r}.", "Give a time budget in seconds, e.g. 600.")
    say = progress or (lambda line: None)
    start = time.monotonic()
    rng = random.Random(seed)
    settings = BuildSettings(threads=threads)
    store = default_store() if store is None else store  # an empty store is falsy (len 0)
    timer = _Timer(settings, store)
    empty = timer.time([empty_graph()], settings.network_repeats)[0]
    say(f"empty model: {empty.median_ms * 1e3:.1f} us (IQR {empty.iqr_ms * 1e3:.1f} us)")
    timed = timer.networks(seed, calibration, start + budget_s * CALIBRATION_SHARE)
    say(f"calibration networks: {len(timed)} timed ({time.monotonic() - start:.0f} s)")

    queue = _interleave(_unique(k for w in _with_cut_variants(workloads or (), rng) for v in (w, _int8(w))
                                for k in kernels_of(v) if w.source != CUT_SOURCE or _small(k)),
                        _unique(k for n in timed for k in kernels_of(n.sample.workload)),
                        _prior(rng, 4000) if prior else [])
    samples: list[KernelSample] = []
    initial_s = budget_s * (CALIBRATION_SHARE + KERNEL_SHARE if prior else 1.0)
    seen: set[int] = set()
    loads: dict[tuple[str, tuple[tuple[str, float], ...]], float] = {}  # sample -> sentinel reading around it
    last = timer.latest_ms()
    while queue and time.monotonic() - start < initial_s:
        batch, queue = queue[:GROUP], queue[GROUP:]
        fresh = timer.kernels(batch, seen)
        now = timer.sentinel_ms()
        loads.update((_sample_key(sample), max(last, now)) for sample in fresh)
        samples, last = samples + fresh, now
        if len(samples) % 200 < GROUP:
            say(f"kernels timed: {len(samples)} ({time.monotonic() - start:.0f} s of {budget_s:.0f} s)")
    suspects = _suspects(samples, loads)
    say(f"load sentinel: {len(suspects)} of {len(samples)} samples timed while it ran more than "
        f"{LOAD_TOLERANCE:.0%} slower than its fastest reading ({min(loads.values(), default=0) * 1e3:.1f} us) "
        f"or with an IQR above {WIDE_IQR_SHARE:.0%} of their median")
    timed = timer.networks_again(timed)
    say(f"calibration networks timed again ({time.monotonic() - start:.0f} s)")
    timed, calmed = timer.networks_calm(timed, time.monotonic() + budget_s * CALM_SHARE)
    slowed = sum(timer.slowed(n) for n in timed)
    say(f"calibration networks slowed by load timed again: {calmed} timings; {slowed} of {len(timed)} still "
        f"marked slowed ({time.monotonic() - start:.0f} s)")
    nets = [n.sample for n in timed]
    predictor = _fit(samples, empty, nets, seed, timer)
    rounds, retimed = 0, set()
    while time.monotonic() - start < budget_s:
        bad = _bad_samples(predictor)
        again = [s for key, s in {_sample_key(s): s for s in [*suspects, *bad]}.items() if key not in retimed]
        suspects = []
        if not again and not bad:
            break
        rounds += 1
        if again:  # first make sure a sample is not a timing caught in a burst of load
            say(f"adaptive round {rounds}: {len(bad)} of {len(samples)} samples off by > {ERROR_THRESHOLD:.0%} and "
                f"> {NOISE_FLOOR:g} IQR, timing {len(again)} samples again (those timed under load first)")
            faster = {}
            for i in range(0, len(again), GROUP):
                if time.monotonic() - start >= budget_s:
                    break
                for sample in timer.again(again[i:i + GROUP]):
                    retimed.add(_sample_key(sample))
                    faster[_sample_key(sample)] = sample
            samples = [_faster(s, faster.get(_sample_key(s))) for s in samples]
        else:
            rng.shuffle(bad)
            extra = [_vary(s, rng) for s in bad[:max(1, len(bad) // 4)] for _ in range(NEIGHBOURS)]
            say(f"adaptive round {rounds}: {len(bad)} of {len(samples)} samples off by > {ERROR_THRESHOLD:.0%} "
                f"and > {NOISE_FLOOR:g} IQR after timing them again, timing {len(extra)} neighbours")
            for i in range(0, len(extra), GROUP):
                if time.monotonic() - start >= budget_s:
                    break
                samples += timer.kernels(extra[i:i + GROUP], seen)
        predictor = _fit(samples, empty, nets, seed, timer)
    say(f"built: {len(samples)} kernel samples over {len(predictor.models)} types and {len(nets)} calibration "
        f"networks in {time.monotonic() - start:.0f} s")
    return predictor


@dataclass(frozen=True)
class _TimedNetwork:
    """A calibration network's kept timing and the load sentinel's reading around it (ms)."""

    sample: NetworkSample
    load_ms: float


class _Timer:
    """Times ONNX models through nn2hw.measure (and its store), reading the load sentinel as it goes."""

    def __init__(self, settings: BuildSettings, store: MeasurementStore) -> None:
        self.settings, self.store = settings, store
        self.machine = this_machine().to_dict()
        self.sentinel: Runner | None = None
        self.readings_ms: list[float] = []

    def time(self, models: Sequence[bytes], repeats: int, passes: int = 1) -> list[Measurement]:
        """Median + IQR of each model, timed ``GROUP`` at a time: interleaving many more models would
        evict every model's weights from the caches between its runs and time it colder than it runs.
        ``passes`` > 1 is a second timing (stored under its own protocol key)."""
        protocol = self.settings.protocol(repeats, passes)
        out: list[Measurement] = []
        for i in range(0, len(models), GROUP):
            runners = [onnx_runner(m, protocol) for m in models[i:i + GROUP]]
            out += measure(runners, protocol, store=self.store)
        return out

    def networks(self, seed: int, limit: int, deadline: float) -> list[_TimedNetwork]:
        """Up to ``limit`` calibration networks (``random_cnn``), timed whole until ``deadline`` (monotonic s)."""
        out: list[_TimedNetwork] = []
        index = 0
        while index < limit and time.monotonic() < deadline:
            works = [random_cnn(random.Random(seed * 1000 + i), f"calibration-{i}")
                     for i in range(index, min(index + GROUP, limit))]
            index += len(works)
            out += self._networks(works, passes=1)
        return out

    def networks_again(self, nets: Sequence[_TimedNetwork]) -> list[_TimedNetwork]:
        """The calibration networks timed a second time, minutes after the first: load on a shared
        machine only slows a run, so each keeps its faster timing (a build's first timings ran 6-8 %
        slower than the same networks re-timed after it, median, some 20 %+)."""
        again = self._networks([n.sample.workload for n in nets], passes=2)
        return [_faster_network(n, m) for n, m in zip(nets, again)]

    def networks_calm(self, nets: Sequence[_TimedNetwork], deadline: float) -> tuple[list[_TimedNetwork], int]:
        """``nets`` with those ``slowed`` timed again (the most slowed first), up to ``CALM_ROUNDS`` more
        times each until ``deadline`` (monotonic s), each keeping its faster timing; and how many
        timings that took."""
        out, count = list(nets), 0
        for attempt in range(CALM_ROUNDS):
            todo = sorted((i for i, n in enumerate(out) if self.slowed(n)), key=lambda i: -out[i].load_ms)
            for start in range(0, len(todo), GROUP):
                if time.monotonic() >= deadline:
                    return out, count
                group = todo[start:start + GROUP]
                again = self._networks([out[i].sample.workload for i in group], passes=3 + attempt)
                for i, timing in zip(group, again):
                    out[i] = _faster_network(out[i], timing)
                count += len(group)
        return out, count

    def slowed(self, net: _TimedNetwork) -> bool:
        """Whether a network's timing ran while the sentinel was more than ``LOAD_TOLERANCE`` slower than
        its fastest reading so far, or with a wide IQR (as ``_suspects`` marks kernel samples)."""
        return _loaded(net.load_ms, min(self.readings_ms)) or _wide(net.sample.median_ms, net.sample.iqr_ms)

    def _networks(self, works: Sequence[Workload], passes: int) -> list[_TimedNetwork]:
        """``works`` timed whole ``GROUP`` at a time, each with the slower of the sentinel's readings
        before and after its group (``passes`` > 1: a later timing, stored under its own protocol key)."""
        out: list[_TimedNetwork] = []
        before = self.latest_ms()
        for start in range(0, len(works), GROUP):
            group = works[start:start + GROUP]
            measured = self.time([workload_graph(w) for w in group], self.settings.network_repeats, passes)
            after = self.sentinel_ms()
            out += [_TimedNetwork(NetworkSample(w, m.median_ms, m.iqr_ms), max(before, after))
                    for w, m in zip(group, measured)]
            before = after
        return out

    def latest_ms(self) -> float:
        """The sentinel's latest reading (read now if there is none)."""
        return self.readings_ms[-1] if self.readings_ms else self.sentinel_ms()

    def sentinel_ms(self) -> float:
        """The load sentinel's median now (``SENTINEL``, never stored: it reads the machine, not a kernel);
        kept in ``readings_ms``."""
        protocol = self.settings.protocol(SENTINEL_REPEATS)
        if self.sentinel is None:
            self.sentinel = onnx_runner(kernel_graph(SENTINEL), protocol)
        reading = probe_ms(self.sentinel, protocol)
        self.readings_ms.append(reading)
        return reading

    def again(self, samples: Sequence[KernelSample]) -> list[KernelSample]:
        """The samples' kernels timed a second time (as ``kernels`` times them, stored apart)."""
        return [self._sample(Kernel("again", s.type, (), (), s.features), passes=2) for s in samples]

    def _sample(self, kernel: Kernel, passes: int = 1) -> KernelSample:
        timed, base = self.time(measurement_pair(kernel), self.settings.kernel_repeats, passes)
        return KernelSample(kernel.type, dict(kernel.features), timed.median_ms - base.median_ms,
                            math.hypot(timed.iqr_ms, base.iqr_ms))

    def kernels(self, kernels: Sequence[Kernel], seen: set[int]) -> list[KernelSample]:
        """Each new kernel's time as it runs inside a network: its ``measurement_pair``'s difference, the
        two models timed in one interleaved group (so the machine's drift cancels). The IQR is that of
        the difference's terms, combined."""
        fresh = [k for k in kernels if hash(k) not in seen]
        seen.update(hash(k) for k in fresh)
        return [self._sample(kernel) for kernel in fresh]


def _fit(samples: list[KernelSample], empty: Measurement, nets: list[NetworkSample], seed: int,
         timer: _Timer) -> KernelPredictor:
    return KernelPredictor(samples, empty_ms=empty.median_ms, networks=nets, device="cpu", seed=seed,
                           machine=timer.machine, int8_storage=native_int8().name)


def _bad_samples(predictor: KernelPredictor) -> list[KernelSample]:
    """Samples predicted (cross-validated) more than ``ERROR_THRESHOLD`` off and more than ``NOISE_FLOOR``
    times their own IQR off: a model error, not the noise of a microsecond kernel. Those timed furthest
    above their prediction come first: load only slows a timing, so they are the likeliest to have been
    caught in a burst, and a build's budget may end before the last is timed again (one build flagged
    1,350 of 3,240 samples; ResNet-20's 16-to-8-channel int8 conv, timed at 66.9 us against 38.6 us
    alone, priced its 50 % cut +21 %)."""
    bad: list[tuple[float, KernelSample]] = []
    for kind in predictor.models:
        rows = [s for s in predictor.samples if s.type == kind]
        bad += [(e, s) for s, e in zip(rows, predictor.cv_errors(kind))
                if abs(e) > ERROR_THRESHOLD and abs(e) * s.median_ms > NOISE_FLOOR * s.iqr_ms]
    return [s for _, s in sorted(bad, key=lambda item: item[0])]


CUT_SOURCE = "cut variant"


def _with_cut_variants(workloads: Sequence[Workload], rng: random.Random) -> list[Workload]:
    """The first workload and its ``CUT_VARIANTS`` random cuts (the network a search is about to cut:
    the ``cpu`` template gives it first; behind the zoo's 28 networks' own kernels its cuts came after
    the 936th kernel of that queue, while a 120-s build times about 3,000 kernels first, a third of
    them from it), then the others, then rounds of one cut of each other."""
    if not workloads:
        return []
    head, *rest = workloads
    own = [_cut_variant(head, rng) for _ in range(CUT_VARIANTS)]
    others = [_cut_variant(w, rng) for _ in range(CUT_VARIANTS) for w in rest]
    return [head, *(v for v in own if v is not None), *rest, *(v for v in others if v is not None)]


def _cut_variant(workload: Workload, rng: random.Random) -> Workload | None:
    """``workload`` with a random share of its cuttable coupling groups each cut to a random width (in
    the group's unit): a network a channel-cut search proposes. None when no group could be cut."""
    share = rng.uniform(0.3, 1.0)
    cut = workload
    for group in workload.coupling_groups:
        if not group.cuttable or rng.random() > share:
            continue
        width = max(group.unit, round(group.channels * rng.uniform(0.1, 1.0) / group.unit) * group.unit)
        try:
            cut = cut.with_changes({name: {"out_channels": width} for name in group.layers})
        except PlanError:  # a width the graph cannot carry (a split into partial heads...): left as it is
            continue
    return None if cut is workload else dataclasses.replace(cut, source=CUT_SOURCE)


def _small(kernel: Kernel) -> bool:
    return kernel.features.get("macs", 0) <= MAX_KERNEL_MACS


def _suspects(samples: Sequence[KernelSample],
              loads: Mapping[tuple[str, tuple[tuple[str, float], ...]], float]) -> list[KernelSample]:
    """Timings likely slowed by load, to time again first: samples timed while the sentinel ran more than
    ``LOAD_TOLERANCE`` slower than its fastest reading (load only slows a run, so the fastest is the
    machine unloaded; the most slowed first), then those of a wide IQR (the widest first)."""
    quiet = min(loads.values(), default=0.0)
    slowed = sorted((s for s in samples if _loaded(loads.get(_sample_key(s), quiet), quiet)),
                    key=lambda s: -loads[_sample_key(s)])
    first = {_sample_key(s) for s in slowed}
    wide = sorted((s for s in samples if _wide(s.median_ms, s.iqr_ms) and _sample_key(s) not in first),
                  key=lambda s: -s.iqr_ms / s.median_ms)
    return slowed + wide


def _loaded(reading_ms: float, quiet_ms: float) -> bool:
    """A sentinel reading more than ``LOAD_TOLERANCE`` slower than the machine unloaded."""
    return reading_ms > quiet_ms * (1 + LOAD_TOLERANCE)


def _wide(median_ms: float, iqr_ms: float) -> bool:
    """A timing of at least ``WIDE_IQR_MIN_MS`` whose IQR exceeds ``WIDE_IQR_SHARE`` of its median."""
    return median_ms >= WIDE_IQR_MIN_MS and iqr_ms > WIDE_IQR_SHARE * median_ms


def _faster_network(kept: _TimedNetwork, again: _TimedNetwork) -> _TimedNetwork:
    """The faster of a calibration network's two timings (load on a shared machine only slows a run)."""
    return kept if kept.sample.median_ms <= again.sample.median_ms else again


def _sample_key(sample: KernelSample) -> tuple[str, tuple[tuple[str, float], ...]]:
    return sample.type, tuple(sorted(sample.features.items()))


def _faster(sample: KernelSample, again: KernelSample | None) -> KernelSample:
    """The faster of a sample's two timings (load on a shared machine only slows a run)."""
    return sample if again is None or sample.median_ms <= again.median_ms else again


def _unique(kernels: Iterable[Kernel]) -> list[Kernel]:
    return list({hash(k): k for k in kernels}.values())


def _interleave(*queues: Sequence[Kernel]) -> list[Kernel]:
    """One from each queue in turn (so every source is sampled early, whatever the budget)."""
    out: list[Kernel] = []
    for i in range(max((len(q) for q in queues), default=0)):
        out += [q[i] for q in queues if i < len(q)]
    return _unique(out)


# --- sampling ---------------------------------------------------------------------------------
WIDTHS = (3, 4, 8, 12, 16, 24, 32, 40, 48, 64, 80, 96, 128, 144, 160, 192, 256, 320, 384, 512)
SIZES = (1, 2, 4, 7, 8, 14, 16, 28, 32, 56, 64)
HIDDEN = (128, 192, 256, 384, 512, 768)
SEQUENCES = (16, 32, 64, 128, 256)


def _prior(rng: random.Random, count: int) -> list[Kernel]:
    """``count`` draws from the built-in prior, round-robin over kernel types (each type early)."""
    makers: list[Callable[[random.Random], Kernel | None]] = [
        _conv_draw("conv"), _conv_draw("conv"), _conv_draw("conv"), _conv_draw("dwconv"), _conv_draw("conv_int8"),
        _gemm_draw("gemm"), _gemm_draw("gemm_int8"), _matmul_draw, _tensor_draw("add"), _tensor_draw("act"),
        _tensor_draw("norm"), _tensor_draw("pool"), _tensor_draw("pool_int8"), _tensor_draw("global_pool"),
        _tensor_draw("layout"), _rows_draw("softmax"), _rows_draw("layernorm"), _gather_draw]
    out: list[Kernel] = []
    while len(out) < count:
        for make in makers:
            kernel = make(rng)
            if kernel is not None and _small(kernel):
                out.append(kernel)
    return out


def _conv_draw(kind: str) -> Callable[[random.Random], Kernel | None]:
    def draw(rng: random.Random) -> Kernel | None:
        size = rng.choice(SIZES[2:])
        k = rng.choice((1, 3, 3, 5, 7) if kind != "conv_int8" else (1, 3))
        s = rng.choice((1, 1, 1, 2))
        if kind == "dwconv":
            c = rng.choice(WIDTHS[2:])
            return Kernel("prior", kind, (), (), conv_features(cin=c, cout=c, h=size, w=size, k=k, s=s, groups=c,
                                                               act=rng.choice((0, 1, 2))))
        cin, cout = rng.choice(WIDTHS), rng.choice(WIDTHS[1:])
        residual = rng.choice((RESIDUAL_NONE, RESIDUAL_NONE, RESIDUAL_NCHW, RESIDUAL_NCHWC))
        if kind == "conv_int8":
            groups = 1
            if rng.random() < 0.3:  # depthwise int8 (a quantized MobileNet's)
                groups = cin = cout = rng.choice(WIDTHS[2:])
            return Kernel("prior", kind, (), (), conv_features(cin=cin, cout=cout, h=size, w=size, k=k, s=s,
                                                               groups=groups, bits=8))
        if residual == RESIDUAL_NCHWC and not nchwc_conv(cin, cout, 1):
            residual = RESIDUAL_NCHW
        act = rng.choice((0, 1, 1, 2)) if residual == RESIDUAL_NONE else rng.choice((0, 1))
        return Kernel("prior", kind, (), (), conv_features(cin=cin, cout=cout, h=size, w=size, k=k, s=s, act=act,
                                                           residual=residual))
    return draw


def _gemm_draw(kind: str) -> Callable[[random.Random], Kernel | None]:
    def draw(rng: random.Random) -> Kernel | None:
        sequence = rng.random() < 0.5
        rows = rng.choice(SEQUENCES) if sequence else 1
        cin = rng.choice(HIDDEN + (16, 32, 64, 1024, 1536, 3072))
        cout = rng.choice(HIDDEN + (10, 100, 1024, 1536, 3072))
        act = 0 if kind == "gemm_int8" else rng.choice((0, 0, 1, 5))
        return Kernel("prior", kind, (), (), gemm_features(rows=rows, cin=cin, cout=cout, act=act,
                                                           bits=8 if kind == "gemm_int8" else 32,
                                                           rank=3 if sequence else 2))
    return draw


def _matmul_draw(rng: random.Random) -> Kernel | None:
    heads, seq = rng.choice((1, 2, 4, 8, 12)), rng.choice(SEQUENCES)
    head_dim = rng.choice((16, 32, 64))
    m, k, n = (seq, head_dim, seq) if rng.random() < 0.5 else (seq, seq, head_dim)
    return Kernel("prior", "matmul", (), (), matmul_features(batch=1, heads=heads, m=m, k=k, n=n))


def _tensor_draw(kind: str) -> Callable[[random.Random], Kernel | None]:
    def draw(rng: random.Random) -> Kernel | None:
        c, size = rng.choice(WIDTHS), rng.choice(SIZES)
        shape = (1, c, size, size)
        if kind in ("pool", "pool_int8"):
            if size < 4:
                return None
            k = rng.choice((2, 3))
            s = rng.choice((1, 2)) if k == 3 else 2
            p = 1 if k == 3 else 0
            is_max = kind == "pool_int8" or rng.random() < 0.5  # int8 pools are max pools (see kernels_of)
            nchwc = kind == "pool" and c % nchwc_block() == 0 and rng.random() < 0.5  # between NCHWc convs
            return Kernel("prior", kind, (), (), tensor_features(shape, k=k, s=s, p=p, oh=(size + 2 * p - k) // s + 1,
                                                                 ow=(size + 2 * p - k) // s + 1, max=float(is_max),
                                                                 nchwc=float(nchwc)))
        if kind == "add":
            return Kernel("prior", kind, (), (), tensor_features(shape, op=rng.choice((0, 0, 1)), operands=2,
                                                                 broadcast=0.0, act=rng.choice((0, 1))))
        if kind == "act":
            return Kernel("prior", kind, (), (), tensor_features(shape, act=rng.choice((1, 2, 3, 5, 6)),
                                                                 dq=int(rng.random() < 0.25)))
        if kind == "layout":
            op = rng.choice(tuple(LAYOUT_OPS.values()))
            out_c = c * 2 if op == LAYOUT_OPS["pad"] else c
            out_h = max(size // 2, 1) if op == LAYOUT_OPS["slice"] else size
            return Kernel("prior", kind, (), (), {**tensor_features(shape), "out_elements": out_c * out_h * out_h,
                                                  "op": op, "oc": out_c, "oh": out_h, "ow": out_h, "operands": 1})
        return Kernel("prior", kind, (), (), tensor_features(shape))
    return draw


def _rows_draw(kind: str) -> Callable[[random.Random], Kernel | None]:
    def draw(rng: random.Random) -> Kernel | None:
        if kind == "softmax":
            heads, seq = rng.choice((1, 2, 4, 8, 12)), rng.choice(SEQUENCES)
            rows, cols = heads * seq, seq
            return Kernel("prior", kind, (), (), {"rows": rows, "cols": cols, "elements": rows * cols})
        rows, cols = rng.choice(SEQUENCES), rng.choice(HIDDEN)
        return Kernel("prior", kind, (), (), {"rows": rows, "cols": cols, "elements": rows * cols,
                                              "skip": float(rng.random() < 0.5)})  # after a residual Add
    return draw


def _gather_draw(rng: random.Random) -> Kernel | None:
    tokens, dim, vocab = rng.choice(SEQUENCES), rng.choice(HIDDEN), rng.choice((100, 1000, 30522))
    return Kernel("prior", "gather", (), (), {"tokens": tokens, "dim": dim, "vocab": vocab, "elements": tokens * dim})


def _scaled(value: float, rng: random.Random, unit: int = 1) -> int:
    return max(unit, round(value * rng.uniform(*CHANNEL_RANGE) / unit) * unit)


def _vary(sample: KernelSample, rng: random.Random) -> Kernel:
    """A neighbour of ``sample``: its channels (or widths) scaled by x0.4-1.2 (nn-Meter's fine-grained sampling)."""
    f = {k: int(v) for k, v in sample.features.items() if k not in ("macs_per_out",)}
    kind = sample.type
    if kind in ("conv", "dwconv", "conv_int8"):
        if f["groups"] > 1:
            c = _scaled(f["cin"], rng)
            cin, cout, groups = c, c * (f["cout"] // f["cin"] or 1), c
        else:
            cin, cout, groups = _scaled(f["cin"], rng), _scaled(f["cout"], rng), 1
        residual = f["residual"]
        if residual == RESIDUAL_NCHWC and not nchwc_conv(cin, cout, groups):
            residual = RESIDUAL_NCHW
        features = conv_features(cin=cin, cout=cout, h=f["h"], w=f["w"], k=f["kh"], kw=f["kw"], s=f["s"],
                                 groups=groups, act=f["act"], residual=residual, batch=f["batch"], pad=f["ph"],
                                 bits=8 if kind == "conv_int8" else 32)
    elif kind in ("gemm", "gemm_int8"):
        features = gemm_features(rows=f["rows"], cin=_scaled(f["cin"], rng), cout=_scaled(f["cout"], rng),
                                 act=f["act"], bias=f["bias"], bits=8 if kind == "gemm_int8" else 32, rank=f["rank"])
    elif kind == "matmul":
        features = matmul_features(batch=f["batch"], heads=f["heads"], m=_scaled(f["m"], rng), k=f["k"],
                                   n=_scaled(f["n"], rng))
    elif kind in ("softmax", "layernorm"):
        rows, cols = _scaled(f["rows"], rng), _scaled(f["cols"], rng)
        features = {**sample.features, "rows": rows, "cols": cols, "elements": rows * cols}
    elif kind == "gather":
        dim = _scaled(f["dim"], rng)
        features = {**sample.features, "dim": dim, "elements": f["tokens"] * dim}
    else:
        c = _scaled(f["c"], rng)
        features = {**sample.features, "c": c, "elements": f["batch"] * c * f["h"] * f["w"]}
        if features.get("nchwc"):  # a pool stays NCHWc only on whole blocks (kernels_of)
            features["nchwc"] = float(c % nchwc_block() == 0)
        if kind == "layout":
            oc = c * f["oc"] // max(f["c"], 1)
            features.update(oc=oc, out_elements=f["batch"] * oc * f["oh"] * f["ow"])
    return Kernel("neighbour", kind, (), (), features)


# --- random CNNs (calibration networks) -------------------------------------------------------
class _NetBuilder:
    """Builds a CNN ``Workload`` layer by layer (torch-free), shapes included."""

    def __init__(self, name: str, shape: tuple[int, int, int, int]) -> None:
        self.name = name
        self.layers: list[Layer] = [Layer("x", OpKind.INPUT, (), "input", batch=shape[0], in_channels=shape[1],
                                          out_channels=shape[1], in_h=shape[2], in_w=shape[3], out_h=shape[2],
                                          out_w=shape[3])]

    def _add(self, kind: OpKind, inputs: Sequence[str], op: str, **fields: int | bool) -> str:
        src = self._layer(inputs[0])
        values: dict[str, int | bool] = {"in_channels": src.out_channels, "out_channels": src.out_channels,
                                         "in_h": src.out_h, "in_w": src.out_w, "out_h": src.out_h,
                                         "out_w": src.out_w, **fields}
        name = f"{op.lower()}_{len(self.layers)}"
        shapes = tuple(self._layer(i).output_shape for i in inputs)
        self.layers.append(Layer(name, kind, tuple(inputs), op, in_shapes=shapes,
                                 **values))  # type: ignore[arg-type]
        return name

    def _layer(self, name: str) -> Layer:
        return next(layer for layer in reversed(self.layers) if layer.name == name)

    def conv(self, x: str, cout: int, k: int, s: int, groups: int = 1) -> str:
        src = self._layer(x)
        out = (src.out_h + 2 * (k // 2) - k) // s + 1
        return self._add(OpKind.CONV, [x], "Conv2d", out_channels=cout, kernel_h=k, kernel_w=k, stride_h=s,
                         stride_w=s, pad_h=k // 2, pad_w=k // 2, groups=groups, out_h=out, out_w=out)

    def conv_bn(self, x: str, cout: int, k: int, s: int, relu: bool, groups: int = 1) -> str:
        y = self._add(OpKind.NORM, [self.conv(x, cout, k, s, groups)], "BatchNorm2d")
        return self._add(OpKind.ACT, [y], "relu") if relu else y

    def shortcut(self, x: str, cout: int, stride: int) -> str:
        """ResNet's option-A shortcut: every ``stride``-th pixel, channels zero-padded to ``cout``."""
        src = self._layer(x)
        if stride > 1:
            out = (src.out_h - 1) // stride + 1
            x = self._add(OpKind.SLICE, [x], "getitem", out_h=out, out_w=out, stride_h=stride, stride_w=stride)
        if cout != src.out_channels:
            x = self._add(OpKind.PAD, [x], "pad", out_channels=cout)
        return x

    def residual(self, y: str, x: str) -> str:
        return self.relu(self.add(y, x))

    def relu(self, x: str) -> str:
        return self._add(OpKind.ACT, [x], "relu")

    def add(self, a: str, b: str) -> str:
        return self._add(OpKind.ELTWISE, [a, b], "add")

    def pool(self, x: str, k: int, s: int, p: int, op: str) -> str:
        out = (self._layer(x).out_h + 2 * p - k) // s + 1
        return self._add(OpKind.POOL, [x], op, kernel_h=k, kernel_w=k, stride_h=s, stride_w=s, pad_h=p, pad_w=p,
                         out_h=out, out_w=out)

    def cell(self, x: str, rng: random.Random) -> str:
        """A NAS-Bench-201-style cell: nodes 1-3 each the sum of one op per earlier node (ReLU-conv-BN 3x3
        or 1x1, 3x3 average pool, identity, or nothing), at least one per node."""
        nodes = [x]
        for _ in range(3):
            terms = []
            for src in nodes:
                op = rng.choice(("conv3", "conv1", "pool", "skip", "none"))
                if op.startswith("conv"):
                    terms.append(self.conv_bn(self.relu(src), self._layer(src).out_channels, int(op[-1]), 1, False))
                elif op == "pool":
                    terms.append(self.pool(src, 3, 1, 1, "avg_pool2d"))
                elif op == "skip":
                    terms.append(src)
            if not terms:
                terms.append(self.pool(nodes[-1], 3, 1, 1, "avg_pool2d"))
            node = terms[0]
            for term in terms[1:]:
                node = self.add(node, term)
            nodes.append(node)
        return nodes[-1]

    def reduction(self, x: str, cout: int) -> str:
        """NAS-Bench-201's reduction block: ReLU-conv-BN 3x3 stride 2, ReLU-conv-BN 3x3, plus a 2x2 average
        pool (3x3 padded on an odd size, to match the conv's output) and a 1x1 conv as the shortcut."""
        y = self.conv_bn(self.relu(self.conv_bn(self.relu(x), cout, 3, 2, False)), cout, 3, 1, False)
        pooled = self.pool(x, 2, 2, 0, "avg_pool2d") if self._layer(x).out_h % 2 == 0 else \
            self.pool(x, 3, 2, 1, "avg_pool2d")
        return self.add(self.conv(pooled, cout, 1, 1), y)

    def workload(self, classes: int) -> Workload:
        x = self.layers[-1].name
        pooled = self._add(OpKind.POOL, [x], "adaptive_avg_pool2d", out_h=1, out_w=1,
                           kernel_h=self._layer(x).out_h, kernel_w=self._layer(x).out_w)
        flat = self._add(OpKind.RESHAPE, [pooled], "flatten")
        self._add(OpKind.LINEAR, [flat], "Linear", out_channels=classes, bias=True)
        return Workload(self.name, tuple(self.layers), tuple(self.layers[0].output_shape), source="random")


def random_cnn(rng: random.Random, name: str = "random-cnn") -> Workload:
    """A random CNN of the zoo's families: a stem conv, 2-4 stages of 1-9 blocks (ResNet basic blocks with
    identity or option-A shortcuts, plain conv pairs, MobileNetV2 inverted residuals, VGG's conv-BN-ReLU
    with max pools, NAS-Bench-201-style cells with their reduction blocks) with random
    widths (multiples of 4, or any count as channel cuts leave), strides, kernel sizes, resolutions
    (28-64) and input channels, global pool and a linear head; a quarter of them int8 (w8a8 on every
    conv/linear, as ``nn2hw.deploy`` exports a quantized plan)."""
    size = rng.choice((28, 28, 32, 32, 32, 56, 64))
    net = _NetBuilder(name, (1, rng.choice((1, 3)), size, size))
    width = _width(rng, rng.choice((4, 8, 12, 16, 16, 24, 32)) * (32 / size if size > 32 else 1))
    x = net.conv_bn("x", width, 3, 1, True)
    family = rng.choice(("resnet", "resnet", "plain", "inverted", "mixed", "vgg", "cell"))
    for stage in range(rng.choice((2, 3, 3, 4))):
        out = _width(rng, width * rng.uniform(1.0, 2.2)) if stage else width
        for block in range(rng.choice((1, 1, 2, 2, 3, 3, 5, 7, 9))):
            stride = 2 if stage and block == 0 else 1
            kind = rng.choice(("resnet", "plain", "inverted")) if family == "mixed" else family
            if kind == "vgg":  # conv-BN-ReLU, downsampled by a 2x2 max pool
                y = net.conv_bn(net.pool(x, 2, 2, 0, "max_pool2d") if stride > 1 else x, out, 3, 1, True)
            elif kind == "cell":
                y = net.reduction(x, out) if stride > 1 else net.cell(x, rng)
                out = net._layer(y).out_channels
            elif kind == "inverted":
                hidden = _width(rng, width * rng.choice((1, 2, 4, 6)))
                y = net.conv_bn(x, hidden, 1, 1, True)
                y = net.conv_bn(y, hidden, rng.choice((3, 3, 5)), stride, True, groups=hidden)
                y = net.conv_bn(y, out, 1, 1, False)
                if stride == 1 and out == width:
                    y = net._add(OpKind.ELTWISE, [y, x], "add")
            else:
                y = net.conv_bn(x, out, rng.choice((3, 3, 3, 5)), stride, True)
                y = net.conv_bn(y, out, 3, 1, kind == "plain")
                if kind == "resnet":
                    y = net.residual(y, x if stride == 1 and out == width else net.shortcut(x, out, stride))
            x, width = y, out
    work = net.workload(10)
    return _int8(work) if rng.random() < 0.25 else work


def _width(rng: random.Random, value: float) -> int:
    """A channel count near ``value``: usually a multiple of 4, sometimes any (a cut network's widths)."""
    return max(2, round(value)) if rng.random() < 0.2 else max(4, math.ceil(value / 4) * 4)


def _int8(workload: Workload) -> Workload:
    """``workload`` with every conv/linear layer w8a8 (what a quantized plan sets)."""
    layers = tuple(dataclasses.replace(layer, weight_bits=8, input_bits=8, output_bits=8)
                   if layer.kind in (OpKind.CONV, OpKind.LINEAR) else layer for layer in workload.layers)
    return Workload(f"{workload.name}-int8", layers, workload.input_shape, workload.outputs, workload.source)


__all__ = ["build", "random_cnn"]
