"""Hardware description files (``--hardware-file FILE``, YAML or JSON) for the ASIC templates.

One accelerator::

    template: systolic          # any ASIC-style template (`nn2hw list templates` lists them)
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

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from nn2hw._checks import as_float
from nn2hw._config import FieldChecker, read_config
from nn2hw.hardware.asic.hetero import HeteroDesign, SubAccelerator, sub_template, sub_templates
from nn2hw.hardware.asic.technology import load_technologies
from nn2hw.hardware.budgets import BUDGET_FIELDS, Budgets

TOP_KEYS = {"template", "technology", "clock_mhz", "params", "budgets", "sub_accelerators", "assignment"}
SINGLE_KEYS = {"template", "technology", "clock_mhz", "params", "budgets"}
SUB_KEYS = {"name", "template", "params"}


@dataclass(frozen=True)
class HardwareSpec:
    """A validated hardware file: the template, its design (or chip), technology, clock, budgets
    and, for one accelerator, its ``params`` as written (what ``--hw-param`` would give)."""

    path: str
    template: str
    design: Any
    technology: str | None
    clock_mhz: float | None
    budgets: Budgets | None
    params: Mapping[str, Any] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """Keyword options for ``template.cost``/``explore`` (clock, budgets)."""
        out: dict[str, Any] = {}
        if self.clock_mhz is not None:
            out["clock_mhz"] = self.clock_mhz
        if self.budgets is not None:
            out["budgets"] = self.budgets
        return out


def _parse_design(template: str, params: Mapping[str, Any]) -> Any:
    return sub_template(template).parse_design(dict(params))


def load_hardware_file(path: str | Path) -> HardwareSpec:
    """Read and validate a hardware file (see the module doc)."""
    data = read_config(path, "hardware file")
    check = FieldChecker(path, "Hardware file")
    top = check.mapping(data, "(top level)", TOP_KEYS)
    if "template" not in top:
        raise check.fail("template", f"one of {', '.join((*sub_templates(), 'hetero'))}", None)
    template = check.choice(top["template"], "template", (*sub_templates(), "hetero"))
    technologies = list(load_technologies())
    technology = check.choice(top["technology"], "technology", technologies) if "technology" in top else None
    clock = (check.wrap("clock_mhz", lambda: as_float(top["clock_mhz"], "clock_mhz"))
             if top.get("clock_mhz") is not None else None)
    if template != "hetero":
        check.mapping(top, "(top level)", SINGLE_KEYS)
        params = check.mapping(top.get("params", {}), "params")
        design = check.wrap("params", partial(_parse_design, template, params))
        return HardwareSpec(str(path), template, design, technology, clock, _budgets(check, top), dict(params))
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
        sub = check.choice(entry.get("template"), f"{where}.template", sub_templates())
        params = check.mapping(entry.get("params", {}), f"{where}.params")
        design = check.wrap(f"{where}.params", partial(_parse_design, sub, params))
        subs.append(SubAccelerator(name, sub, design))
    assignment = check.mapping(top.get("assignment", {}), "assignment")
    for key, value in assignment.items():
        if not isinstance(value, str):
            raise check.fail(f"assignment.{key}", "a sub-accelerator name (string)", value)
    design = check.wrap("sub_accelerators", lambda: HeteroDesign(tuple(subs), technology or "45nm", dict(assignment)))
    return HardwareSpec(str(path), "hetero", design, technology or "45nm", clock, _budgets(check, top))


def _budgets(check: FieldChecker, top: Any) -> Budgets | None:
    """The file's ``budgets`` section, checked (None without one)."""
    if "budgets" not in top:
        return None
    limits = check.mapping(top["budgets"], "budgets", set(BUDGET_FIELDS))
    return check.wrap("budgets", lambda: Budgets.from_mapping(limits))
