"""The public Python API: one call per job (``analyze``, ``search``, ``evaluate``, ``train``). The
``nn2hw`` CLI is a thin shell over these functions.

>>> from nn2hw.api import analyze
>>> result = analyze(model="resnet18", hardware="fpga:zcu102", design="70,36,64,64,7,18,6,6",
...                  hw_params={"clock_mhz": 100})       # doctest: +SKIP
>>> round(result.latency_ms, 4)                          # doctest: +SKIP
14.8816
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nn2hw import __version__
from nn2hw.errors import ConfigError, HardwareError, Nn2hwError, PlanError
from nn2hw.evaluate.settings import FinetuneSettings
from nn2hw.hardware.records import DesignObject, Exploration, NetworkCost, design_dict
from nn2hw.paths import cache_root
from nn2hw.report.bottlenecks import DetectReport, detect
from nn2hw.workload import Layer, OpKind, Workload

if TYPE_CHECKING:
    from rich.console import Console

    from nn2hw.deploy import ExportResult
    from nn2hw.evaluate import EvaluationStore, Metrics
    from nn2hw.evaluate.train import TrainRecipe, TrainResult
    from nn2hw.evaluate.variation import VariationMetrics
    from nn2hw.hardware.asic.hwfile import HardwareSpec
    from nn2hw.plan import Plan
    from nn2hw.search.minimize import Minimized
    from nn2hw.zoo import ZooVariant

__all__ = ["AnalysisResult", "VariationEvaluation", "ZooEvaluation", "analyze", "evaluate", "evaluate_variation",
           "export_bundle", "load_workload", "minimize_plan", "require_writable", "search", "train"]


@dataclass(frozen=True)
class AnalysisResult:
    """A workload costed on one hardware design: the cost records, the bottleneck report, the
    exploration that chose the design (if any) and how the design was chosen."""

    workload: Workload
    hardware: str
    cost: NetworkCost
    bottlenecks: DetectReport
    exploration: Exploration | None = None
    design_source: str = "given"
    options: Mapping[str, Any] = field(default_factory=dict)
    measurement: Mapping[str, Any] | None = None
    """On a measured template (``cpu``): runs, median, IQR, threads, runtime, CPU and what was timed."""

    @property
    def total_cycles(self) -> float:
        return self.cost.total_cycles

    @property
    def latency_ms(self) -> float:
        return self.cost.latency_ms

    @property
    def design(self) -> Mapping[str, Any] | DesignObject:
        return self.cost.design

    def layer_shape(self, name: str) -> str:
        """'64x3 k7x7 s2 -> 112x112' for a conv, '512 -> 1000' for a linear layer; '' for a record
        that is not a layer of the workload (a runtime's overhead, a whole-network prediction)."""
        names = {layer.name for layer in self.workload.layers}
        return shape_text(self.workload.layer(name)) if name in names else ""

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable result. ``total_cycles``, ``latency_ms``, ``design`` and ``layers`` (each
        with ``name``, ``cycles`` and ``bottleneck``) are stable keys other tools read."""
        data = self.cost.to_dict()
        shares = {r.name: r.share for r in self.bottlenecks.layers}
        meanings = {r.name: r.meaning for r in self.bottlenecks.layers}
        for layer in data["layers"]:
            layer["shape"] = self.layer_shape(layer["name"])
            layer["share"] = shares.get(layer["name"], 0.0)
            layer["bottleneck_meaning"] = meanings.get(layer["name"], layer["bottleneck"])
        data.update({
            "model": self.workload.name,
            "hardware": self.hardware,
            "design_source": self.design_source,
            "options": dict(self.options),
            "bottleneck_share": dict(self.bottlenecks.share_by_bottleneck),
            "component_cycles": dict(self.bottlenecks.component_cycles),
            "exploration": None if self.exploration is None else exploration_dict(self.exploration),
            "nn2hw_version": __version__,
        })
        if self.measurement is not None:
            data["measurement"] = dict(self.measurement)
        return data


def exploration_dict(exploration: Exploration) -> dict[str, Any]:
    """Summary of an exploration: grid size, feasible count, time and the Pareto set."""
    return {
        "n_designs": exploration.n_designs,
        "n_feasible": exploration.n_feasible,
        "seconds": exploration.seconds,
        "objective": exploration.objective,
        "best": {"design": design_dict(exploration.best.design), "latency_ms": exploration.best.latency_ms,
                 "total_cycles": exploration.best.total_cycles},
        "pareto": [{"design": design_dict(p.design), "latency_ms": p.latency_ms, "total_cycles": p.total_cycles,
                    "resources": {r.name: r.used for r in p.resources}} for p in exploration.pareto],
    }


def shape_text(layer: Layer) -> str:
    """A compact shape: 'MxN k7x7 s2 -> RxC' for a conv ('g2', 'dw' for grouped and depthwise),
    'h x [MxK].[KxN]' for a matmul of h heads, 'N -> M' for other layers (channels)."""
    if layer.kind is OpKind.MATMUL:
        k, n = layer.in_channels // layer.groups, layer.out_channels // layer.groups
        return f"{layer.groups} x [{layer.out_h}x{k}].[{k}x{n}]"
    if layer.conv_type is None:
        return f"{layer.in_channels} -> {layer.out_channels}"
    groups = "" if layer.groups == 1 else (" dw" if layer.conv_type == "depthwise" else f" g{layer.groups}")
    stride = "" if (layer.stride_h, layer.stride_w) == (1, 1) else f" s{layer.stride_h}"
    return (f"{layer.out_channels}x{layer.in_channels} k{layer.kernel_h}x{layer.kernel_w}{stride}{groups} -> "
            f"{layer.out_h}x{layer.out_w}")


# --- workloads --------------------------------------------------------------------------------
def load_workload(model: str | None = None, dataset: str | None = None, onnx: str | Path | None = None,
                  workload: Workload | Mapping[str, Any] | str | Path | None = None,
                  seq_len: int | None = None) -> Workload:
    """The workload named by exactly one of: a zoo ``model`` (with its ``dataset`` variant, and
    ``seq_len`` tokens for a sequence model), an ``onnx`` file, or a ``workload`` (a ``Workload``,
    its dict, or a path to its JSON)."""
    given = [name for name, value in (("model", model), ("onnx", onnx), ("workload", workload)) if value is not None]
    if len(given) != 1:
        raise ConfigError(f"Give exactly one network source, got {given or 'none'}.",
                          "Pass model=NAME (--model), onnx=FILE (--onnx) or workload=....")
    if dataset is not None and model is None:
        raise ConfigError("A dataset was given without a zoo model.", "Use --dataset together with --model.")
    if seq_len is not None and model is None:
        raise ConfigError("A sequence length was given without a zoo model.",
                          "Use --seq-len together with --model (an ONNX file or workload has its shapes fixed).")
    if model is not None:
        return zoo_workload(model, dataset, seq_len)
    if onnx is not None:
        from nn2hw.workload import from_onnx

        return from_onnx(onnx)
    if isinstance(workload, Workload):
        return workload
    if isinstance(workload, Mapping):
        return Workload.from_dict(workload)
    path = Path(str(workload))
    try:
        return Workload.from_json(path.read_text())
    except OSError as exc:
        raise ConfigError(f"Cannot read workload file {path}: {exc.strerror}.", "Give a readable JSON file.") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Workload file {path} is not JSON ({exc.msg}, line {exc.lineno}).",
                          "Give a file written by Workload.to_json().") from None


def zoo_workload(name: str, dataset: str | None = None, seq_len: int | None = None) -> Workload:
    """The zoo model's workload (batch 1; ``seq_len`` tokens for a sequence model, its default when
    ``None``), without torch whenever possible: from the user cache
    (JSON under ``NN2HW_CACHE/workloads``), else from the workloads packaged with nn2hw
    (``nn2hw.zoo.bake``), else extracted with torch and cached. Cached and packaged workloads are
    used only when made from the running zoo and extractor sources (``source_fingerprint``)."""
    from nn2hw import zoo
    from nn2hw.zoo.bake import baked_workload, source_fingerprint

    variant = zoo.entry(name).variant(dataset)
    shape = variant.shape_for(seq_len)
    fingerprint = source_fingerprint()
    tokens = f"-{shape[0]}tokens" if shape != variant.input_shape else ""
    path = cache_root() / "workloads" / f"{name}-{variant.dataset}{tokens}-{fingerprint}.json"
    if path.is_file():
        try:
            return Workload.from_json(path.read_text())
        except (OSError, ValueError, Nn2hwError):
            path.unlink(missing_ok=True)  # corrupt entry: rebuild below
    packaged = baked_workload(name, variant.dataset, fingerprint) if not tokens else None
    if packaged is not None:
        return packaged
    built = zoo.workload(name, variant.dataset, seq_len=seq_len)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
            tmp.write(built.to_json(indent=None))
        os.replace(tmp.name, path)
    except OSError:
        pass  # an unwritable cache only costs speed next time
    return built


# --- output locations ---------------------------------------------------------------------------
def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the folder a new path would be created in)."""
    while True:
        try:
            if path.exists() or path.is_symlink():
                return path
        except OSError:  # e.g. a parent without search permission: the write probe reports it
            return path
        if path.parent == path:
            return path
        path = path.parent


def require_writable(path: str | Path, option: str, *, folder: bool = True, example: str = "result.json") -> Path:
    """Check, before any work, that ``path`` can be written: a folder (``folder=True``) that exists
    or can be created, or a file in such a folder. A ``ConfigError`` names ``option``, the path and
    what is in the way (a file where a folder must be, a read-only or missing-permission folder);
    ``example`` is the file name a fix suggests where a folder was given for a file."""
    target = Path(path)
    where = target if folder else target.parent
    if not folder and target.is_dir():
        raise ConfigError(f"{option} {target} is a folder, not a file.", f"Give {option} a file path, e.g. "
                          f"{target / example}.")
    existing = _nearest_existing(where)
    if existing.exists() and not existing.is_dir():
        place = f"{option} {target} is a file" if existing == target else \
            f"{option} {target} lies under {existing}, which is a file"
        wanted = "a folder path (a new or an existing folder)" if folder else "a file path in a folder"
        raise ConfigError(f"{place}, not a folder.", f"Give {option} {wanted}, or move {existing} aside.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        why = "is read-only" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else \
            f"cannot be written ({exc.strerror})"
        raise ConfigError(f"{option} {target} cannot be written: {existing} {why}.",
                          f"Give {option} a location you can write to, or make {existing} writable, then run the "
                          "command again.") from None
    return target


def _require_search_outputs(out_dir: Path, storage_url: str) -> None:
    """Every place a search writes, checked before it starts: the output folder and, for an SQLite
    study elsewhere, the folder of its file (a server database is checked when opened)."""
    require_writable(out_dir, "--out")
    prefix = "sqlite:///"
    if storage_url.startswith(prefix) and storage_url[len(prefix):] not in ("", ":memory:"):
        database = Path(storage_url[len(prefix):])
        if database.parent.resolve() != out_dir.resolve():
            require_writable(database, "--storage", folder=False, example="study.db")


# --- hardware -----------------------------------------------------------------------------------
DEFAULT_HARDWARE = "fpga:zcu102"
"""What ``--hardware`` means when it is not given."""


def with_hardware_file(hardware: str, hw_params: Mapping[str, Any] | None,
                       hardware_file: str | Path | None) -> tuple[str, dict[str, Any], HardwareSpec | None]:
    """(hardware, hw_params, the parsed file): the one reading of ``--hardware-file`` (analyze and
    search). A file stands for ``--hardware TEMPLATE[:TECHNOLOGY]`` plus one ``--hw-param`` per
    entry of its ``params`` and its ``clock_mhz`` and ``budgets``; a ``--hw-param`` given beside
    it overrides the file's value. A ``hardware`` other than the default that names other hardware
    than the file is an error (which of the two was meant?)."""
    params = dict(hw_params or {})
    if hardware_file is None:
        return hardware, params, None
    from nn2hw.hardware.asic.hwfile import load_hardware_file

    spec = load_hardware_file(hardware_file)
    name = f"{spec.template}:{spec.technology}" if spec.technology else spec.template
    if hardware not in (DEFAULT_HARDWARE, name, spec.template):
        raise ConfigError(f"--hardware {hardware} and --hardware-file {hardware_file} ({name}) name different "
                          "hardware.", "Give one of them: the file names its template and technology.")
    return name, {**spec.params, **spec.options(), **params}, spec


# --- analysis ---------------------------------------------------------------------------------
def _require_fit(cost: NetworkCost, label: str) -> None:
    """A HardwareError naming every resource the design exceeds and by how much."""
    over = [r for r in cost.resources if not r.fits]
    if not over:
        return
    parts = "; ".join(f"{r.name} needs {r.used:,.0f} of {r.available:,.0f} {r.unit} (+{r.used - r.available:,.0f}, "
                      f"+{r.used / r.available - 1:.1%})" for r in over)
    fpga = ("; for BRAM, --bram as-run or off reproduces the published (unrealistic) checks"
            if cost.template == "fpga" else "")
    raise HardwareError(
        f"Design [{label}] does not fit {cost.device}: {parts}.",
        f"Shrink the design (`nn2hw list templates {cost.template}` names its fields), choose a larger device, or "
        f"let --explore find one that fits{fpga}.")


def analyze(model: str | None = None, dataset: str | None = None, onnx: str | Path | None = None,
            workload: Workload | Mapping[str, Any] | str | Path | None = None, hardware: str = DEFAULT_HARDWARE,
            design: Any = None, dw_design: Any = None, hw_params: Mapping[str, Any] | None = None,
            explore: bool = False, hardware_file: str | Path | None = None,
            backend: str = "analytic", seq_len: int | None = None) -> AnalysisResult:
    """Cost a network on a hardware template: per-layer cycles, bottlenecks, resources, totals.

    ``seq_len`` is the token count of a sequence model (e.g. ``minilm_l6``; its default, 128, when
    ``None``); image models refuse it.

    ``hw_params`` holds the template's design parameters (``Tm=64``, ``rows=32``, ``preset=nv_full``;
    with ``explore`` a list of grid values such as ``Tr="32,64"``) and its options (``clock_mhz``,
    ``variant``, ``max_pes``...; ``nn2hw list templates NAME`` lists them); an option the template does
    not take is an error. With ``design`` (or parameters that fix one design) the design is costed
    and must fit the device (a ``HardwareError`` names the resource and by how much otherwise);
    with ``explore=True``, or when nothing fixes a design, the template's design-space exploration
    picks the best feasible one. ``hardware_file`` (YAML or JSON, see ``nn2hw.hardware.asic.hwfile``)
    gives an ASIC template, technology, design or chip and budgets; ``backend`` names a peer
    simulator that re-costs the (chosen) design (``nn2hw peers``).
    """
    from nn2hw.hardware import get_template

    wl = load_workload(model=model, dataset=dataset, onnx=onnx, workload=workload, seq_len=seq_len)
    hardware, params, spec = with_hardware_file(hardware, hw_params, hardware_file)
    template, device = get_template(hardware)
    design_params, options = template.split_params(params)
    if spec is not None and design is None and not explore:
        design = spec.design  # the file's design (its chip), with the --hw-param values given beside it
        design_params = {k: v for k, v in design_params.items() if k in (hw_params or {})}
    if template.measured:
        if design is not None or dw_design is not None or explore or backend != "analytic":
            raise ConfigError(f"The {template.name} template is a real device: it has no design to give or explore "
                              "and no peer backend.", "Drop --design/--dw-design/--explore/--backend.")
        return _measure(template, device, options, wl, model, dataset, onnx)
    if design is None and dw_design is None and not explore:
        design = template.design_from_params(design_params)
        if design is not None:
            design_params = {}
    exploration = None
    if design is None and dw_design is not None and not explore:
        raise ConfigError("A depthwise design was given without the standard engine's design.",
                          "Give --design Tm,Tn,Tr,Tc,Tk,Wp,Ip,Op together with --dw-design, or use --explore.")
    if explore or design is None:
        if design is not None or dw_design is not None:
            raise ConfigError("Both a design and --explore were given.",
                              "Drop --design/--dw-design to explore, or drop --explore to cost that design.")
        exploration = template.explore(wl, device, grid=design_params or None, **options)
        cost = exploration.best
        source = ("best design of the exploration" if explore else
                  "no --design given: best feasible design of the exploration (default grid)")
        if "preset" in design_params:
            source += (f" around preset {design_params['preset']} (its fields kept but for the axes given as lists, "
                       "e.g. --hw-param rows=16,32)")
    else:
        params = {**design_params, "design": design}
        if dw_design is not None:
            params["dw_design"] = dw_design
        chosen = template.parse_design(params)
        cost = template.cost(wl, chosen, device, **options)
        _require_fit(cost, getattr(chosen, "label", str(chosen)))
        source = "given"
    if backend != "analytic":
        from nn2hw.peers import cost_with

        chosen_design = template.parse_design({"design": design_dict(cost.design)})
        cost = cost_with(backend, wl, template.name, chosen_design, device, options.get("clock_mhz"))
        source = f"{source}; costed by the {backend} backend"
    return AnalysisResult(workload=wl, hardware=f"{template.name}:{cost.device}", cost=cost,
                          bottlenecks=detect(cost, template.bottlenecks), exploration=exploration,
                          design_source=source, options=options)


def _measure(template: Any, device: str | None, options: dict[str, Any], wl: Workload, model: str | None,
             dataset: str | None, onnx: str | Path | None) -> AnalysisResult:
    """``analyze`` on a measured template: time the network itself (a zoo model exported as a user
    deploys it, or the ONNX file as given) on this machine."""
    from nn2hw import measured

    if model is not None:
        from nn2hw import zoo

        network = zoo.build(model, dataset)  # initial weights: a dense kernel's time does not depend on the values
        result, = measured.measure_models(template, device, options, [(network, wl, None)])
    elif onnx is not None:
        result = measured.measure_onnx_file(template, device, options, onnx, wl)
    else:
        raise ConfigError(f"The {template.name} template times a network, and a workload file has no weights or "
                          "graph to run.", "Give --model or --onnx, or cost the workload with a predictor: "
                          "--hardware predictor:FILE.")
    return AnalysisResult(workload=wl, hardware=f"{template.name}:{result.cost.device}", cost=result.cost,
                          bottlenecks=detect(result.cost, template.bottlenecks),
                          design_source="measured on this machine", options=options,
                          measurement=result.to_dict())


def search(model: str, dataset: str, latency_ms: float | None = None, energy_mj: float | None = None,
           area_mm2: float | None = None, hardware: str = DEFAULT_HARDWARE, hw_params: Mapping[str, Any] | None = None,
           evaluator: Any = None, progress: bool = True, hardware_file: str | Path | None = None,
           **settings: Any) -> Any:
    """Co-search ``model``'s changes, compression and hardware design under the specs; returns a
    ``nn2hw.search.SearchResult`` and writes the bundle and reports to ``settings['out']``.

    ``hw_params`` are split by the template into grid restrictions (design fields, e.g.
    ``{"Tr": "32,64"}``; a single value or a ``preset`` pins the design around which the DSE
    searches) and cost options (e.g. ``{"bram": "as-run"}``); ``hardware_file`` reads as in
    ``analyze`` (``with_hardware_file``: its params pin the design). Every other keyword is a
    ``nn2hw.search.SearchSettings`` field (``strategy``, ``trials``, ``minutes``, ``storage``,
    ``study``, ``resume``, ``workers``, ``seed``, ``out``, ``space_config``, ``seq_len``: the token
    count of a sequence model, ``metric``: 'top1', 'top5' or the label-free 'cosine' of a sentence
    encoder, whose fine-tunes default to 0 batches, ...; fine-tunes not given take the zoo entry's
    measured ``recovery`` recipe, e.g. AdamW at 1e-3 for the ViT). ``evaluator``
    replaces the default short fine-tune + test: any callable ``model -> {"top1": ...}``.
    ``latency_levels_ms=(0.30, 0.25, 0.20)`` instead of ``latency_ms`` returns a family of variants,
    one per level, and a selector (``nn2hw.search.family``, ``nn2hw.bundle.load_family``).
    """
    from nn2hw.hardware.base import get_template
    from nn2hw.search import SearchSettings, Spec, run_search
    from nn2hw.search.settings import cosine_settings, recipe_settings, scratch_settings

    hardware, params, chip = with_hardware_file(hardware, hw_params, hardware_file)
    if chip is not None and chip.template == "hetero":
        raise ConfigError(f"The hardware file {hardware_file} fixes a heterogeneous chip, and a search explores the "
                          "chip for every candidate.",
                          "Search a chip with --hardware hetero[:TECHNOLOGY] and its budgets (--hw-param "
                          "max_pes=2048 templates=nvdla,shidiannao), or cost the file's chip with nn2hw analyze "
                          "--hardware-file.")
    template, _ = get_template(hardware)
    grid, options = template.split_params(params)
    levels = settings.get("latency_levels_ms") or ()
    if levels:
        latency_ms = family_latency(latency_ms, levels)
    spec = Spec(latency_ms=latency_ms, energy_mj=energy_mj, area_mm2=area_mm2)
    config = SearchSettings(model=model, dataset=dataset, spec=spec, hardware=hardware, hw_options=options,
                            hw_grid=grid,
                            **recipe_settings(model, scratch_settings(cosine_settings(settings))))
    _require_search_outputs(config.out_dir, config.storage_url)
    if levels:
        from nn2hw.search.family import run_family

        return run_family(config, evaluator=evaluator, progress=progress)
    return run_search(config, evaluator=evaluator, progress=progress)


def family_latency(latency_ms: float | None, levels: Any) -> float | None:
    """The latency a family's search starts from: its tightest level (``SearchSettings`` checks the
    levels themselves); a single ``latency_ms`` next to the levels is refused."""
    if latency_ms is not None:
        raise ConfigError(f"Both a latency spec ({latency_ms:g} ms) and latency levels were given.",
                          "Use --latency-levels-ms alone for a family of variants (one per level), or "
                          "--latency-ms alone for one network.")
    numbers = [v for v in levels if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf]
    return min(numbers) if numbers else None


def minimize_plan(plan: Plan | str | Path, hardware: str = DEFAULT_HARDWARE, hw_params: Mapping[str, Any] | None = None,
                  latency_ms: float | None = None, energy_mj: float | None = None, area_mm2: float | None = None,
                  hardware_file: str | Path | None = None, workload: Workload | None = None) -> Minimized:
    """``plan`` without every change whose removal keeps every spec met (``nn2hw plan minimize``):
    greedy, largest accuracy risk first, each candidate costed on its own best design of
    ``hardware`` as the search costs it (``nn2hw.search.minimize``). ``plan`` is a ``Plan``, a plan
    JSON file or a bundle folder; its zoo model and dataset give the workload unless ``workload``
    is given. ``hw_params`` and ``hardware_file`` read as in ``search``. The result's ``plan``
    carries the kept changes and its best design."""
    from nn2hw.bundle import BUNDLE_FILE, PLAN_FILE, bundle_options
    from nn2hw.hardware.base import get_template
    from nn2hw.plan import Plan
    from nn2hw.search.minimize import minimize_plan as minimized
    from nn2hw.search.target import HardwareTarget
    from nn2hw.spec import Spec

    options: dict[str, Any] = {}
    if not isinstance(plan, Plan):
        path = Path(plan)
        plan = Plan.load(path / PLAN_FILE if path.is_dir() else path)
        options = bundle_options(path) if path.is_dir() and (path / BUNDLE_FILE).is_file() else {}
    if workload is None and options:  # e.g. a searched fbnet architecture: the zoo entry built with its options
        from nn2hw import zoo

        workload = zoo.workload(plan.base_model, plan.dataset, **options)
    spec = Spec(latency_ms=latency_ms, energy_mj=energy_mj, area_mm2=area_mm2).require()
    hardware, params, _ = with_hardware_file(hardware, hw_params, hardware_file)
    grid, options = get_template(hardware)[0].split_params(params)
    target = HardwareTarget.parse(hardware, options, grid, spec.limits)
    return minimized(plan, workload if workload is not None else plan_workload(plan), target, spec)


def plan_workload(plan: Plan) -> Workload:
    """The workload of the zoo model and dataset ``plan`` names (at its token count for a sequence
    model); a ``PlanError`` when the plan records another input shape."""
    from nn2hw import zoo

    variant = zoo.entry(plan.base_model).variant(plan.dataset)
    seq_len = plan.input_shape[-1] if variant.tokens and plan.input_shape else None
    found = zoo_workload(plan.base_model, plan.dataset, seq_len)
    if plan.input_shape and tuple(plan.input_shape) != tuple(found.input_shape):
        raise PlanError(f"The plan records input shape {list(plan.input_shape)}, but {plan.base_model} on "
                        f"{variant.dataset} takes {list(found.input_shape)}.",
                        "Give a plan made for this model and dataset (the plan records its input shape).")
    return found


# --- accuracy -----------------------------------------------------------------------------------
ACCURACY_STORE = "accuracy.sqlite"
"""The file under the cache root (``NN2HW_CACHE``) where ``evaluate`` keeps its measurements."""


@dataclass(frozen=True)
class ZooEvaluation:
    """The result of ``evaluate``: what was evaluated and its metrics."""

    model: str
    dataset: str
    split: str
    metrics: Metrics
    checkpoint: str
    plan_key: str | None
    settings: FinetuneSettings

    def to_dict(self) -> dict[str, object]:
        """The JSON record; ``top1``/``top5`` (percent) and ``n_images`` are names other tools read."""
        m = self.metrics
        return {"model": self.model, "dataset": self.dataset, "split": self.split, "top1": m.top1, "top5": m.top5,
                "n_images": m.n_images, "partial": m.partial, "full_size": m.full_size,
                "checkpoint": self.checkpoint, "plan_key": self.plan_key, "finetune": asdict(self.settings)}


@dataclass(frozen=True)
class FidelityEvaluation:
    """The result of ``evaluate_fidelity``: how faithfully a (planned) sentence encoder reproduces
    the unmodified one's embeddings, in percent (100 x the cosine similarity): the mean and the worst text."""

    model: str
    dataset: str
    split: str
    cosine: float
    cosine_min: float
    n_texts: int
    partial: bool
    checkpoint: str
    plan_key: str | None

    def to_dict(self) -> dict[str, object]:
        """The JSON record: ``metric`` 'cosine', ``cosine`` and ``cosine_min`` in percent, ``n_texts``..."""
        return {"metric": "cosine", **asdict(self)}


def evaluate_fidelity(model: str, dataset: str, split: str = "test", *, data_dir: str | Path | None = None,
                      checkpoint: str | Path | None = None, plan: str | Path | None = None,
                      seq_len: int | None = None, max_texts: int | None = None, batch_size: int = 256,
                      threads: int | None = None, progress: bool = True, store: EvaluationStore | None = None
                      ) -> FidelityEvaluation:
    """The label-free ``cosine`` metric: ``model``'s sentence encoder (its embedding variant; a
    ``ConfigError`` for an image model or a classifier) with ``plan`` applied, against the same
    encoder unmodified, on the texts of ``dataset``'s ``split`` (the first ``max_texts``: marked
    partial) tokenized at ``seq_len``; kept in ``store`` like ``evaluate``'s measurements."""
    from functools import partial

    from nn2hw import zoo
    from nn2hw.evaluate import evaluation_key, evaluator_id, local_store
    from nn2hw.evaluate.evaluator import EmbeddingFidelityEvaluator

    variant = zoo.entry(model).embedding_variant()  # a classifier or an image model fails before any loading
    variant.shape_for(seq_len)  # a bad token count too
    loaded_plan = _load_plan(plan, model, variant.dataset) if plan is not None else None
    store = store or local_store(cache_root() / ACCURACY_STORE)
    reference = zoo.build(model, variant.dataset, pretrained=checkpoint is None, checkpoint=checkpoint).eval()
    weights = _weights_id(variant, checkpoint)
    evaluator = EmbeddingFidelityEvaluator(
        reference, dataset, split=split, data_dir=data_dir, max_texts=max_texts, batch_size=batch_size,
        threads=threads,
        progress=progress, reference_id=weights,
        prepare=partial(zoo.prepare, model_name=model, seq_len=seq_len, variant_name=variant.dataset))
    data = evaluator.data()  # missing or non-text data fail before any embedding
    network = reference
    if loaded_plan is not None:
        from nn2hw.compress import apply_plan

        network = apply_plan(loaded_plan, reference)  # a copy, traced at the plan's own input shape
    tokens = () if seq_len is None else (f"{seq_len} tokens",)
    key = evaluation_key(loaded_plan.network_key if loaded_plan is not None else "unmodified", model, dataset,
                         evaluator_id(evaluator, data.source, *tokens))
    m = store.evaluate(key, lambda: evaluator(network)).metrics
    return FidelityEvaluation(model, dataset, split, m["cosine"], m["cosine_min"], int(m["n_images"]),
                              bool(m["partial"]), str(checkpoint) if checkpoint else "zoo",
                              loaded_plan.key if loaded_plan is not None else None)


def evaluate(model: str, dataset: str, split: str = "test", *, data_dir: str | Path | None = None,
             download: bool = False, checkpoint: str | Path | None = None, plan: str | Path | None = None,
             settings: FinetuneSettings = FinetuneSettings(batches=0), test_batch_size: int = 256,
             threads: int | None = None, progress: bool = True,
             store: EvaluationStore | None = None, seq_len: int | None = None) -> ZooEvaluation:
    """Load zoo ``model``'s weights for ``dataset`` (or ``checkpoint``), apply ``plan``, fine-tune, test;
    a sequence model's texts tokenized at ``seq_len`` (default: the model's; a ``ConfigError`` for an
    image model). (The label-free ``cosine`` metric of a sentence encoder is ``evaluate_fidelity``.)

    The plan must be one written for the same base model (and dataset, when it names one). The
    test split is loaded before the model is built, so missing data fails fast. Measurements are
    kept in ``store`` (default: ``NN2HW_CACHE/accuracy.sqlite``), keyed by the network, the
    weights (their sha256), the data and the settings: none is repeated, and a failed or concurrent
    run never overwrites one.
    """
    from functools import partial

    from nn2hw import zoo
    from nn2hw.evaluate import FinetuneEvaluator, Metrics, evaluation_key, evaluator_id, local_store

    variant = zoo.entry(model).variant(dataset)  # an unknown model or dataset variant fails before any loading
    shape = variant.shape_for(seq_len)  # a bad token count too
    loaded_plan = _load_plan(plan, model, dataset) if plan is not None else None
    store = store or local_store(cache_root() / ACCURACY_STORE)
    evaluator = FinetuneEvaluator(dataset, split=split, data_dir=data_dir, download=download, settings=settings,
                                  test_batch_size=test_batch_size,
                                  prepare=partial(zoo.prepare, model_name=model, seq_len=seq_len),
                                  threads=threads, progress=progress)
    data = evaluator.test_data()
    network = zoo.build(model, dataset, pretrained=checkpoint is None, checkpoint=checkpoint)
    if loaded_plan is not None:
        import torch

        from nn2hw.compress import apply_plan

        example = torch.zeros((1, *shape), dtype=getattr(torch, variant.input_dtype))  # token ids too
        network = apply_plan(loaded_plan, network, example)
    tokens = () if seq_len is None else (f"{seq_len} tokens",)
    key = evaluation_key(loaded_plan.network_key if loaded_plan is not None else "unmodified", model, dataset,
                         evaluator_id(evaluator, _weights_id(variant, checkpoint), data.source, *tokens))
    m = store.evaluate(key, lambda: evaluator(network)).metrics
    metrics = Metrics(m["top1"], m["top5"], int(m["n_images"]), bool(m["partial"]), data.name, data.split,
                      data.full_size)
    return ZooEvaluation(model, dataset, split, metrics, str(checkpoint) if checkpoint else "zoo",
                         loaded_plan.key if loaded_plan is not None else None, settings)


@dataclass(frozen=True)
class VariationEvaluation:
    """The result of ``evaluate_variation``: what was evaluated, on which crossbar design, and its
    top-1 over the noise draws (``metrics``: mean, standard deviation, worst, every draw)."""

    model: str
    dataset: str
    split: str
    hardware: str
    design: Mapping[str, Any]
    metrics: VariationMetrics
    checkpoint: str
    plan_key: str | None
    settings: FinetuneSettings
    backend: str = "nn2hw"

    def to_dict(self) -> dict[str, object]:
        """The JSON record: ``top1`` (the mean over draws), ``top1_std``, ``top1_min``, ``draws``, ``backend``..."""
        return {"model": self.model, "dataset": self.dataset, "split": self.split, "hardware": self.hardware,
                "design": dict(self.design), **self.metrics.to_dict(), "checkpoint": self.checkpoint,
                "plan_key": self.plan_key, "finetune": asdict(self.settings), "backend": self.backend}


def evaluate_variation(model: str, dataset: str, split: str = "test", *, hardware: str = "cim:reram",
                       hw_params: Mapping[str, Any] | None = None, draws: int = 10, seed: int = 0,
                       data_dir: str | Path | None = None, download: bool = False,
                       checkpoint: str | Path | None = None, plan: str | Path | None = None,
                       settings: FinetuneSettings = FinetuneSettings(batches=0), test_batch_size: int = 256,
                       max_test_images: int | None = None, threads: int | None = None,
                       progress: bool = True, backend: str = "nn2hw", bn_calibration: int = 0) -> VariationEvaluation:
    """Top-1 of zoo ``model`` under the device non-idealities of a computing-in-memory design.

    Loads the weights (or ``checkpoint``), applies ``plan`` (e.g. ``noise_train`` for
    variation-aware fine-tuning, ``polarize`` for ``signed=polarized``), fine-tunes
    ``settings.batches``, then tests ``draws`` Monte-Carlo draws of the crossbars of ``hardware``
    ('cim:reram', 'cim:fefet', 'cim:pcm') with ``hw_params`` (design fields such as ``sigma``,
    ``adc_bits``, ``rows``, and the noise options), seeded by ``seed``
    (``nn2hw.evaluate.variation``). Not kept in the accuracy store. ``backend`` 'aihwkit' re-evaluates
    with IBM's aihwkit-lightning instead (``nn2hw.evaluate.aihwkit_backend``: the same weights and
    weight noise; stuck-at faults and a lossy ADC refused). ``bn_calibration`` > 0 re-estimates the
    batch norms of each programmed draw on that many training images first (a chip whose batch norms
    are digital; nn2hw's backend only).
    """
    from functools import partial

    from nn2hw import zoo
    from nn2hw.evaluate import FinetuneEvaluator
    from nn2hw.evaluate.aihwkit_backend import check_backend, evaluate_variation_aihwkit
    from nn2hw.evaluate.variation import design_noise
    from nn2hw.evaluate.variation import evaluate_variation as monte_carlo

    variant = zoo.entry(model).variant(dataset)
    loaded_plan = _load_plan(plan, model, dataset) if plan is not None else None
    noise, design = design_noise(hardware, hw_params)  # a bad design fails before any loading
    check_backend(backend, noise)  # an unknown backend, a missing extra, noise it cannot model: before loading
    _check_calibration(bn_calibration, backend)
    evaluator = FinetuneEvaluator(dataset, split=split, data_dir=data_dir, download=download, settings=settings,
                                  test_batch_size=test_batch_size, max_test_images=max_test_images,
                                  prepare=partial(zoo.prepare, model_name=model), threads=threads, progress=progress)
    data = evaluator.test_data()
    network = zoo.build(model, dataset, pretrained=checkpoint is None, checkpoint=checkpoint)
    if loaded_plan is not None:
        from nn2hw.compress import apply_plan

        network = apply_plan(loaded_plan, network, (1, *variant.input_shape))
    if settings.batches:
        evaluator.evaluate(network)  # fine-tunes in place (with the plan's training noise, if any)
    if backend == "aihwkit":
        metrics = evaluate_variation_aihwkit(network, data, noise, draws, seed, test_batch_size, threads, progress)
    else:
        calibration = evaluator.train_data().take(bn_calibration) if bn_calibration else None
        metrics = monte_carlo(network, data, noise, draws, seed, test_batch_size, threads, progress, calibration)
    return VariationEvaluation(model, dataset, split, hardware, design, metrics,
                               str(checkpoint) if checkpoint else "zoo",
                               loaded_plan.key if loaded_plan is not None else None, settings, backend)


def _check_calibration(images: int, backend: str) -> None:
    """``bn_calibration``: a whole number of training images, for nn2hw's own backend."""
    from nn2hw.evaluate.settings import check_calibration_images

    check_calibration_images(images)
    if images and backend != "nn2hw":
        raise ConfigError(f"Batch-norm re-estimation is modelled by nn2hw's backend, and --backend is {backend}.",
                          "Drop --bn-calibration to cross-check with aihwkit, or use --backend nn2hw.")


def _weights_id(variant: ZooVariant, checkpoint: str | Path | None) -> str:
    """The weights a model starts from: the given file's sha256, else the zoo sources' digests."""
    if checkpoint is not None:
        from nn2hw.download import file_digest

        return f"sha256:{file_digest(Path(checkpoint))}"
    return "zoo:" + ",".join(source.expected_hash for source in variant.sources)


def _load_plan(path: str | Path, model: str, dataset: str) -> Plan:
    from nn2hw.compress import validate_plan
    from nn2hw.plan import Plan

    plan = Plan.load(path)
    validate_plan(plan)
    if plan.base_model != model or (plan.dataset is not None and plan.dataset != dataset):
        raise PlanError(f"The plan {path} was made for {plan.base_model!r} on {plan.dataset!r}, not {model!r} on "
                        f"{dataset!r}.", "Evaluate the plan's own model and dataset, or build a plan for this one.")
    return plan


# --- training -----------------------------------------------------------------------------------
TRAINABLE_DATASETS = ("fashion-mnist", "wordnet-supersense")


def default_train_out(model: str, dataset: str, suffix: str = ".pt") -> Path:
    """Where ``train`` saves by default: ``runs/zoo/<model>-<dataset>.pt`` (``.safetensors`` for a delta)."""
    return Path("runs") / "zoo" / f"{model}-{dataset}{suffix}"


def train(model: str, dataset: str = "fashion-mnist", recipe: TrainRecipe | None = None,
          out: str | Path | None = None, resume: bool = False, threads: int | None = 1,
          data_dir: str | Path | None = None, progress: bool = True, console: Console | None = None) -> TrainResult:
    """Train zoo model ``model`` on ``dataset`` from scratch (``recipe``, default ``TrainRecipe()``)
    and save its ``state_dict`` to ``out`` (default ``runs/zoo/<model>-<dataset>.pt``).

    The initial weights come from the recipe's seed. With ``resume=True`` training continues from
    ``<out>.state`` (the recipe must be the same); without it an existing state file is an error
    rather than silently overwritten.
    """
    from functools import partial

    from nn2hw import zoo
    from nn2hw.data import DATASETS, load_dataset
    from nn2hw.evaluate import run_context
    from nn2hw.evaluate import train as training
    from nn2hw.zoo.checkpoints import delta_bytes, load_base

    if dataset not in TRAINABLE_DATASETS:
        raise ConfigError(f"nn2hw trains zoo models on {', '.join(TRAINABLE_DATASETS)} only, not {dataset!r}.",
                          "Use --dataset fashion-mnist (or wordnet-supersense for minilm_l6); CIFAR-10/ImageNet "
                          "weights come from published checkpoints.")
    recipe = recipe or training.TrainRecipe()
    with run_context(recipe.seed, threads):  # the initial weights come from the seed too
        network = zoo.build(model, dataset)
    variant = zoo.entry(model).variant(dataset)
    pack_delta = None
    if recipe.init == "pretrained":  # fine-tuning: the encoder from its pretrained file, a fresh head
        load_base(network, variant, f"{model} ({dataset})")
        if recipe.delta and variant.base is not None:
            pack_delta = partial(delta_bytes, base_sha256=variant.base.sha256, label=f"{model} {dataset}")
    seq_len = recipe.seq_len or None
    splits = {split: zoo.prepare(load_dataset(dataset, split, data_dir), model, seq_len)
              for split in ("train", "validation", "test") if split in DATASETS.get(dataset).splits}
    target = Path(out) if out is not None else default_train_out(model, dataset,
                                                                 ".safetensors" if recipe.delta else ".pt")
    return training.train(network, model, splits["train"], splits["test"], recipe, target, resume, threads, progress,
                          console, validation_data=splits.get("validation"), pack_delta=pack_delta)


# --- deployment -------------------------------------------------------------------------------
def export_bundle(bundle_dir: str | Path, out: str | Path, *, input_shape: Any = None,
                  **options: Any) -> ExportResult:
    """Export the network of the result bundle in ``bundle_dir`` to the ONNX file ``out``
    (``nn2hw export BUNDLE --onnx FILE``); ``options`` are ``nn2hw.deploy.export_onnx``'s.

    ``input_shape`` (batch included) overrides the shape the bundle records (its plan's, else its
    zoo model's); one of them is needed."""
    from nn2hw._checks import as_shape
    from nn2hw.bundle import load_bundle
    from nn2hw.deploy import export_onnx, plan_input_shape

    model, plan, _hardware = load_bundle(bundle_dir)
    shape = as_shape(input_shape) if input_shape is not None else plan_input_shape(plan)
    if shape is None:
        raise ConfigError(f"The bundle {bundle_dir} records no input shape for {plan.base_model!r} (not a zoo model "
                          "and no input_shape in its plan).", "Give the input shape, e.g. --input-shape 1x1x28x28.")
    return export_onnx(model, out, input_shape=shape, **options)
