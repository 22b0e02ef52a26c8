"""Hardware description files (``--hardware-file FILE``, YAML or JSON) for the ASIC templates.

One accelerator::

    template: systolic          # systolic | nvdla | shidiannao | eyeriss
    technology: 45nm            # optional: a preset of asic_technology.json (default: the template's)
    clock_mhz: 1000             # optional (default: the technology's)
    params: {preset: default, rows: 32, cols: 32, dataflow: ws}

A heterogeneous chip::

    template: hetero
    technology: 45nm
    budgets: {max_pes: 2048, max_dram_bw: 32, max_area_mm2: 8}    # optional, checked against the chip
    sub_accelerators:
      - {name: big, template: nvdla, params: {atomic_c: 32, atomic_k: 32}}
      - {name: small, template: shidiannao, params: {preset: default}}
    assignment: {resnet20: big}   # optional: network (several DNNs) or layer (one DNN) -> sub; searched when absent

Every field is checked; an error names the file, the field path (e.g.
``sub_accelerators[1].params.pe_rows``), the expected type and range, and the value found.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nn2hw.errors import ConfigError
from nn2hw.hardware.asic._common import Budgets, as_float
from nn2hw.hardware.asic.hetero import SUB_TEMPLATES, HeteroDesign, SubAccelerator, SystemBudgets
from nn2hw.hardware.asic.technology import load_technologies
from nn2hw.hardware.base import TEMPLATES

TOP_KEYS = {"template", "technology", "clock_mhz", "params", "budgets", "sub_accelerators", "assignment"}
SINGLE_KEYS = {"template", "technology", "clock_mhz", "params", "budgets"}
BUDGET_KEYS = ("max_pes", "max_dram_bw", "max_area_mm2")
SUB_KEYS = {"name", "template", "params"}


@dataclass(frozen=True)
class HardwareSpec:
    """A validated hardware file: the template, its design (or chip), technology, clock, budgets."""

    path: str
    template: str
    design: Any
    technology: str | None
    clock_mhz: float | None
    budgets: Budgets | SystemBudgets | None

    def options(self) -> dict[str, Any]:
        """Keyword options for ``template.cost``/``explore`` (clock, budgets)."""
        out: dict[str, Any] = {}
        if self.clock_mhz is not None:
            out["clock_mhz"] = self.clock_mhz
        if self.budgets is not None:
            out["budgets"] = self.budgets
        return out


class _Checker:
    """Field checks that name the file and the path of the field."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, expected: str, got: Any, fix: str = "") -> ConfigError:
        return ConfigError(f"Hardware file {self.path}: field '{where}' must be {expected}, got {got!r}.",
                           fix or f"Fix '{where}' in {self.path}.")

    def mapping(self, value: Any, where: str, allowed: set[str] | None = None) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, "a mapping (key: value)", value)
        if allowed is not None:
            extra = sorted(set(value) - allowed)
            if extra:
                raise ConfigError(f"Hardware file {self.path}: unknown field(s) {', '.join(extra)} in '{where}'.",
                                  f"Allowed there: {', '.join(sorted(allowed))}.")
        return value

    def choice(self, value: Any, where: str, options: tuple[str, ...] | list[str]) -> str:
        if not isinstance(value, str) or value not in options:
            raise self.fail(where, f"one of {', '.join(options)}", value)
        return value

    def wrap(self, where: str, build: Any) -> Any:
        """Run ``build()``; a ConfigError it raises gets the file and field path in front."""
        try:
            return build()
        except ConfigError as exc:
            raise ConfigError(f"Hardware file {self.path}: in '{where}': {exc.cause}", exc.fix) from None


def read_file(path: str | Path) -> Any:
    """The parsed YAML or JSON of ``path`` (by extension; YAML otherwise), with clear errors."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"Hardware file {file} does not exist.", "Give the path of a YAML or JSON hardware file.")
    text = file.read_text()
    try:
        return json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"Hardware file {file} is not valid {'JSON' if file.suffix.lower() == '.json' else 'YAML'}: "
                          f"{exc}.".replace("\n", " "), "Fix the syntax (see docs/asic-cost-models.md).") from None


def load_hardware_file(path: str | Path) -> HardwareSpec:
    """Read and validate a hardware file (see the module doc)."""
    data = read_file(path)
    check = _Checker(str(path))
    top = check.mapping(data, "(top level)", TOP_KEYS)
    if "template" not in top:
        raise check.fail("template", f"one of {', '.join((*SUB_TEMPLATES, 'hetero'))}", None)
    template = check.choice(top["template"], "template", (*SUB_TEMPLATES, "hetero"))
    technologies = list(load_technologies())
    technology = check.choice(top["technology"], "technology", technologies) if "technology" in top else None
    clock = (check.wrap("clock_mhz", lambda: as_float(top["clock_mhz"], "clock_mhz"))
             if top.get("clock_mhz") is not None else None)
    if template != "hetero":
        check.mapping(top, "(top level)", SINGLE_KEYS)
        params = check.mapping(top.get("params", {}), "params")
        design = check.wrap("params", lambda: TEMPLATES.get(template).parse_design(dict(params)))
        budgets = None
        if "budgets" in top:
            b = check.mapping(top["budgets"], "budgets", {"max_pes", "max_area_mm2", "max_sram_kib", "max_dram_bw"})
            budgets = check.wrap("budgets", lambda: Budgets(**{k: as_float(v, f"budgets.{k}") for k, v in b.items()}))
        return HardwareSpec(str(path), template, design, technology, clock, budgets)
    subs_data = top.get("sub_accelerators")
    if not isinstance(subs_data, list) or not subs_data:
        raise check.fail("sub_accelerators", "a non-empty list of {name, template, params}", subs_data)
    subs = []
    for k, item in enumerate(subs_data):
        where = f"sub_accelerators[{k}]"
        entry = check.mapping(item, where, SUB_KEYS)
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise check.fail(f"{where}.name", "a non-empty string", name)
        sub_template = check.choice(entry.get("template"), f"{where}.template", SUB_TEMPLATES)
        params = check.mapping(entry.get("params", {}), f"{where}.params")
        design = check.wrap(f"{where}.params", lambda: TEMPLATES.get(sub_template).parse_design(dict(params)))
        subs.append(SubAccelerator(name, sub_template, design))
    assignment = check.mapping(top.get("assignment", {}), "assignment")
    for key, value in assignment.items():
        if not isinstance(value, str):
            raise check.fail(f"assignment.{key}", "a sub-accelerator name (string)", value)
    design = check.wrap("sub_accelerators", lambda: HeteroDesign(tuple(subs), technology or "45nm", dict(assignment)))
    budgets = None
    if "budgets" in top:
        b = check.mapping(top["budgets"], "budgets", set(BUDGET_KEYS))
        budgets = check.wrap("budgets", lambda: SystemBudgets(**dict(b)))
    return HardwareSpec(str(path), "hetero", design, technology or "45nm", clock, budgets)
