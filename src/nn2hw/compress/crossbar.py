"""Crossbar-aware fine-tuning transforms: variation-aware training (``noise_train``, NACIM) and
FORMS-style polarization (``polarize``), both registered in ``TRANSFORMS``.

Neither changes the workload (shapes, bits and MACs stay): they change what the short fine-tune
learns, so a plan carries them to wherever a model is fine-tuned (``nn2hw evaluate --plan
--finetune-batches``, the search's candidate fine-tune, ``nn2hw.api.evaluate_variation``).

- ``noise_train`` (fields ``train_sigma``, ``train_clip``): NACIM's recipe, Gaussian noise injected on
  the weights during fine-tuning, fresh at every step: the layer's weight becomes ``w + train_sigma x
  max|w| x N(0, 1)`` in training mode and ``w`` in eval mode (a weight parametrization).
  ``train_sigma`` is the weight-level spread of the target design (``nn2hw.evaluate.variation
  .CrossbarNoise.weight_sigma``: the cell's sigma through bit slicing and the signed scheme).
  ``train_clip`` first clips the weights to ``± train_clip`` standard deviations of the layer's, in
  both modes (aihwkit's LayerGaussian clipping), so the network deployed holds them clipped.
- ``polarize`` (field ``polarize_rows``): every column fragment of ``polarize_rows`` crossbar rows
  (``nn2hw.hardware.polarity``) keeps one sign, the one holding more of its L2 norm (the
  Euclidean projection, signs fixed when the plan is applied); a parametrization projects the
  weights at every forward pass, so each fine-tuning step sees polarized weights (projected
  gradient descent rather than FORMS's ADMM). Such weights run on ``signed=polarized`` crossbars of that many rows.

Neither is offered as a search dimension (``offer`` returns None): they are training recipes with
no hardware cost of their own, which a plan applies to every conv/linear layer
(``with_noise_training``, ``with_polarization``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nn2hw.compress.base import TRANSFORMS, Offer, SpaceContext, Transform, check_int, has_module_weights
from nn2hw.errors import PlanError, Problem
from nn2hw.plan import Plan
from nn2hw.workload.layer import Layer, Workload

if TYPE_CHECKING:
    from torch import nn

MAX_ROWS = 4096


MAX_CLIP = 20.0
"""Beyond this many standard deviations no layer of a trained network has a weight to clip."""
DEFAULT_CLIP = 2.5
"""The clipping the search's variation-aware fine-tune uses (docs/cim.md: the Fashion-MNIST VGG at sigma
0.1 kept 93.9 % of its 95.3 % noise-free top-1, against 89.5 % of 93.4 % trained without clipping)."""


def _number_in(value: object, low: float, high: float) -> bool:
    """Whether ``value`` is a real number (not a bool) in (low, high]."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and low < value <= high


@dataclass(frozen=True)
class NoiseChoice:
    """``train_sigma``: the standard deviation of the weight noise injected during fine-tuning,
    relative to the layer's max |w| (0 < train_sigma <= 1). ``train_clip``: the weights clipped to
    ``± train_clip`` standard deviations of the layer's weights, while fine-tuning and in the network
    deployed (0 < train_clip <= 20; None: not clipped)."""

    train_sigma: float | None = None
    train_clip: float | None = None

    def __post_init__(self) -> None:
        if self.train_sigma is not None and not _number_in(self.train_sigma, 0.0, 1.0):
            raise PlanError(f"train_sigma={self.train_sigma!r} is not a number in (0, 1].",
                            "Give the weight noise relative to max|w|, e.g. CrossbarNoise(0.1).weight_sigma.")
        if self.train_clip is not None and not _number_in(self.train_clip, 0.0, MAX_CLIP):
            raise PlanError(f"train_clip={self.train_clip!r} is not a number in (0, {MAX_CLIP:g}].",
                            "Give the clipping bound in standard deviations of the layer's weights, e.g. 2.5.")


@dataclass(frozen=True)
class PolarizeChoice:
    """``polarize_rows``: the crossbar rows of one column fragment, whose weights keep one sign."""

    polarize_rows: int | None = None

    def __post_init__(self) -> None:
        check_int("polarize_rows", self.polarize_rows, 1, MAX_ROWS,
                  f"Give the crossbar's rows (1..{MAX_ROWS}), e.g. polarize_rows=128.")


def _weight_layers(workload: Workload, layers: str) -> list[str]:
    chosen = [l.name for l in workload.compute_layers if fnmatch.fnmatchcase(l.name, layers) and has_module_weights(l)]
    if not chosen:
        raise PlanError(f"No conv/linear layer matches {layers!r} in {workload.name!r}.",
                        "Check the layer glob against the workload's layer names.")
    return chosen


def with_noise_training(plan: Plan, workload: Workload, sigma: float, layers: str = "*",
                        clip: float | None = None) -> Plan:
    """``plan`` with weight noise ``sigma`` (relative to max|w|) injected while fine-tuning every
    conv/linear layer matching ``layers``, and their weights clipped to ``± clip`` standard deviations
    (None: not clipped)."""
    for name in _weight_layers(workload, layers):
        plan = plan.with_choice(name, train_sigma=sigma, **({} if clip is None else {"train_clip": clip}))
    return plan


def with_polarization(plan: Plan, workload: Workload, rows: int, layers: str = "*") -> Plan:
    """``plan`` with every conv/linear layer matching ``layers`` polarized per fragment of ``rows``."""
    for name in _weight_layers(workload, layers):
        plan = plan.with_choice(name, polarize_rows=rows)
    return plan


class _FineTuneRecipe(Transform):
    """What both recipes share: no search dimension, no workload change, conv/linear modules only."""

    default_options = ()

    def offer(self, workload: Workload, layer: Layer, options: Sequence[Any], context: SpaceContext) -> Offer | None:
        return None

    def problems(self, workload: Workload, choices: Mapping[str, Any]) -> list[Problem]:
        return [(f"Layer {name!r} ({workload.layer(name).kind.value}) is no conv/linear module: {self.name} "
                 "changes module weights.", f"Give {self.name} to conv and linear layers only.")
                for name in choices if not has_module_weights(workload.layer(name))]

    def changes(self, workload: Workload, choices: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        return {}


class NoiseTrain(_FineTuneRecipe):
    """Variation-aware fine-tuning (NACIM): fresh Gaussian weight noise at every training step."""

    name = "noise_train"
    label = "variation-aware training"
    order = 5
    choice_type = NoiseChoice
    option_name = "sigma"
    option_help = "weight noise relative to max|w|, in (0, 1]"

    def check_option(self, value: Any) -> bool:
        return _number_in(value, 0.0, 1.0)

    def describe(self, choice: NoiseChoice, before: Layer, after: Layer) -> str:
        parts = [] if choice.train_sigma is None else [f"trained with weight noise {choice.train_sigma:g}"]
        return ", ".join(parts + ([] if choice.train_clip is None else [f"clipped at {choice.train_clip:g} std"]))

    def apply_model(self, model: nn.Module, workload: Workload, choices: Mapping[str, NoiseChoice]) -> None:
        """Clipping first, so the noise scales with the clipped max|w| the crossbar will hold."""
        from nn2hw.compress import _torch
        from nn2hw.compress._crossbar_torch import ClippedWeight, WeightNoise

        for name, choice in choices.items():
            module = _torch.weight_module(model, name, transform=self.name)
            if choice.train_clip is not None:
                _torch.add_weight_parametrization(module, ClippedWeight(float(choice.train_clip)))
            if choice.train_sigma is not None:
                _torch.add_weight_parametrization(module, WeightNoise(float(choice.train_sigma)))


class Polarize(_FineTuneRecipe):
    """FORMS polarization: each crossbar column fragment's weights projected to one sign."""

    name = "polarize"
    label = "polarization"
    order = 4
    choice_type = PolarizeChoice
    option_name = "rows"
    option_help = f"crossbar rows per column fragment, 1..{MAX_ROWS}"

    def check_option(self, value: Any) -> bool:
        return not isinstance(value, bool) and isinstance(value, int) and 1 <= value <= MAX_ROWS

    def describe(self, choice: PolarizeChoice, before: Layer, after: Layer) -> str:
        return f"polarized per {choice.polarize_rows} rows"

    def apply_model(self, model: nn.Module, workload: Workload, choices: Mapping[str, PolarizeChoice]) -> None:
        import torch

        from nn2hw.compress import _torch
        from nn2hw.compress._crossbar_torch import PolarizedWeight
        from nn2hw.hardware.polarity import fragment_signs

        for name, choice in choices.items():
            assert choice.polarize_rows is not None  # a selected choice sets it (plans drop None fields)
            module = _torch.weight_module(model, name, transform=self.name)
            weight = module.weight.detach()  # after earlier transforms' parametrizations
            signs = torch.from_numpy(fragment_signs(weight.double().numpy(), choice.polarize_rows)).to(weight.dtype)
            _torch.add_weight_parametrization(module, PolarizedWeight(signs))


TRANSFORMS.register(Polarize.name, Polarize())
TRANSFORMS.register(NoiseTrain.name, NoiseTrain())
