"""Checking and applying a plan: every registered transform, in order, on a workload or a model.

- ``plan_problems(plan, workload)`` lists every (cause, fix) that makes a plan invalid for a
  workload: unknown layers or fields, values a transform refuses, choices its workload side
  cannot apply (no torch); without a workload, only the fields and values are checked;
- ``validate_plan`` raises them as one ``PlanError``;
- ``apply_plan(plan, workload)`` rewrites the workload (pure; cost models read the result);
- ``apply_plan(plan, model)`` rewrites a deep copy of a torch model the same way.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from nn2hw.compress.base import Problem, Transform, has_module_weights, ordered_transforms
from nn2hw.errors import PlanError
from nn2hw.plan import LayerChoice, Plan
from nn2hw.registry import suggest
from nn2hw.workload import Workload

if TYPE_CHECKING:
    from torch import nn


def transforms_of(choice: LayerChoice) -> tuple[str, ...]:
    """Names of the registered transforms ``choice`` asks for, in application order."""
    return tuple(t.name for t in ordered_transforms() if t.selects(choice))


def _choice_problems(name: str, choice: LayerChoice) -> list[Problem]:
    """Unknown fields and values a transform refuses, for one layer's choice (no workload needed)."""
    found: list[Problem] = []
    known = [f for t in ordered_transforms() for f in t.fields()]
    unknown = [f for f in choice if f not in known]
    if unknown:
        close = "".join(suggest(u, known) for u in unknown)
        found.append((f"The choice for layer {name!r} has unknown fields {unknown}.{close}",
                      f"Use only fields of the registered transforms: {', '.join(known)}."))
    for transform in ordered_transforms():
        if transform.selects(choice):
            try:
                transform.read(choice, name)
            except PlanError as exc:
                found.append((exc.cause, exc.fix))
    return found


def plan_problems(plan: Plan, workload: Workload | None = None) -> list[Problem]:
    """Every (cause, fix) that makes ``plan`` invalid for ``workload`` (empty when valid); without a
    workload, the problems of its fields and values alone."""
    if workload is None:
        return [p for name, choice in plan.choices.items() for p in _choice_problems(name, choice)]
    return _rewrite(plan, workload)[0]


_Step = tuple[Transform, dict[str, Any], Workload]
"""A transform the plan selects, its checked choices and the workload after it."""


def _rewrite(plan: Plan, workload: Workload) -> tuple[list[Problem], list[_Step]]:
    """One pass of ``plan`` over ``workload``: every problem, and each selected transform with the
    workload it leaves (complete only when there is no problem). Each transform rewrites the workload
    the previous ones left, once; its problems are checked on that workload (and, for what only
    the result shows, on the result: ``Transform.rewritten_problems``)."""
    found: list[Problem] = []
    for name, choice in plan.choices.items():
        found += _choice_problems(name, choice)
    if found:
        return found, []
    compute = [layer.name for layer in workload.compute_layers]
    for name in plan.choices:
        if name not in workload:
            found.append((f"{workload.name!r} has no layer {name!r}.{suggest(name, compute)}",
                          "Use conv/linear layer names from the workload (`nn2hw analyze` lists them)."))
        elif not workload.layer(name).is_compute:
            found.append((f"Layer {name!r} is a {workload.layer(name).kind.value} op; plans choose for conv and "
                          f"linear layers only.", "Put the choice on the conv/linear layer instead."))
        elif not has_module_weights(workload.layer(name)):
            found.append((f"Layer {name!r} is a functional {workload.layer(name).op} call, not a module, so its "
                          f"weights cannot be rewritten.", "Use nn.Conv2d / nn.Linear modules for that layer."))
    if found:
        return found, []
    steps: list[_Step] = []
    current = workload
    for transform in ordered_transforms():
        selected = transform.selected(plan.choices)
        if not selected:
            continue
        step = transform.problems(current, selected)
        if not step:
            try:
                after = transform.rewrite(current, selected)
            except PlanError as exc:
                step = [(exc.cause, exc.fix)]
            else:
                step = transform.rewritten_problems(current, after, selected)
                if not step:
                    steps.append((transform, selected, after))
                    current = after
        found += step
    return found, steps


def validate_plan(plan: Plan, workload: Workload | None = None) -> None:
    """Raise one ``PlanError`` naming every problem of ``plan`` for ``workload`` (without one: of
    its fields and values)."""
    _raise(plan, plan_problems(plan, workload))


def _raise(plan: Plan, problems: list[Problem]) -> None:
    found = list(dict.fromkeys(problems))  # a graph-wide problem may come from several steps
    if len(found) == 1:
        raise PlanError(*found[0])
    if found:
        raise PlanError(
            f"The plan for {plan.base_model!r} has {len(found)} problems: "
            + " ".join(f"({i}) {cause}" for i, (cause, _) in enumerate(found, 1)),
            " ".join(f"({i}) {fix}" for i, (_, fix) in enumerate(found, 1)),
        )


def apply_plan(plan: Plan, target: Any, example_input: Any = None) -> Any:
    """Apply ``plan`` to a ``Workload`` (pure, returns a new one) or an ``nn.Module`` (returns a new model).

    The caller's workload or model is never modified. For a model, ``example_input`` (a tensor,
    tensors or a shape, filled with zeros of the plan's ``input_dtype``: token ids for a sequence
    model) traces it; by default zeros of the plan's ``input_shape`` and ``input_dtype``.
    """
    if isinstance(target, Workload):
        return _apply_workload(plan, target)
    import torch

    if isinstance(target, torch.nn.Module):
        return _apply_model(plan, target, example_input)
    raise PlanError(f"A plan applies to a Workload or a torch nn.Module, not a {type(target).__name__}.",
                    "Pass the model or its workload (nn2hw.workload.from_module).")


def _apply_workload(plan: Plan, workload: Workload) -> Workload:
    found, steps = _rewrite(plan, workload)
    _raise(plan, found)
    return steps[-1][2] if steps else workload


def _apply_model(plan: Plan, model: nn.Module, example_input: Any) -> nn.Module:
    from nn2hw.compress._torch import is_compressed
    from nn2hw.workload import from_module

    done = [n for n, m in model.named_modules() if is_compressed(m)]
    if done:
        raise PlanError(f"The model is already compressed by nn2hw (e.g. {done[0]!r}); plans apply to the "
                        f"base model.", "Apply the plan to the uncompressed base model.")
    import torch

    new = copy.deepcopy(model)
    workload = from_module(new, example_input if example_input is not None else plan_input(plan, new),
                           name=plan.base_model, dtype=getattr(torch, plan.input_dtype))  # a shape: zeros of it
    found, steps = _rewrite(plan, workload)
    _raise(plan, found)
    for transform, selected, after in steps:
        transform.apply_model(new, workload, selected)  # the model as the workload before this transform
        workload = after
    return new


def plan_input(plan: Plan, model: nn.Module) -> Any:
    """Zeros of the plan's input shape and dtype, on the model's device: what traces the model."""
    import torch

    if not plan.input_shape:
        raise PlanError(f"The plan for {plan.base_model!r} records no input_shape, so the model cannot be traced.",
                        "Pass example_input=... to apply_plan(), or build the plan with Plan.for_workload.")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return torch.zeros(plan.input_shape, dtype=getattr(torch, plan.input_dtype), device=device)


__all__ = ["apply_plan", "plan_input", "plan_problems", "transforms_of", "validate_plan"]
