"""The pluggable accuracy evaluator the search calls, and its default implementation.

Protocol: an evaluator is any callable ``evaluator(model) -> Mapping[str, float]``. It receives
a fresh model with the candidate plan already applied (it may train it in place) and returns
finite metrics; the search maximizes ``top1`` unless told another name. An evaluator that also has
a ``cache_fields`` attribute ``(dataset, split, settings)`` gets its results cached by plan key.

``FinetuneEvaluator`` is the default: HotNAS's short fine-tune on the training split followed by
top-1/top-5 on a test split, with the model's zoo normalization.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from torch import nn

from nn2hw.data import Dataset, Normalize, load_dataset
from nn2hw.errors import ConfigError, DatasetError, PlanError
from nn2hw.evaluate.loops import FinetuneSettings, Metrics, finetune, test


@runtime_checkable
class Evaluator(Protocol):
    """Anything that maps a model to named, finite metrics (e.g. ``{'top1': 91.3, 'top5': 99.6}``)."""

    def __call__(self, model: nn.Module) -> Mapping[str, float]: ...


def prepare(data: Dataset, model_name: str) -> Dataset:
    """``data`` with the zoo normalization of ``model_name`` attached, after checking the input shape."""
    from nn2hw import zoo

    variant = zoo.entry(model_name).variant(data.name)
    if tuple(variant.input_shape) != tuple(data.image_shape):
        raise DatasetError(
            f"{model_name} ({data.name} variant) takes inputs {tuple(variant.input_shape)} but {data.name} "
            f"{data.split} images are {tuple(data.image_shape)}.",
            "Use the dataset the model variant was trained on, or a model variant for this dataset.",
        )
    return data.normalized(Normalize(tuple(variant.mean), tuple(variant.std)))


class FinetuneEvaluator:
    """Fine-tune a model briefly (``settings``), then test it; returns ``Metrics.as_mapping()``.

    Data are loaded on the first call (``train`` only when ``settings.batches > 0``). With
    ``model`` (a zoo name) the zoo normalization is used, else ``normalize`` (None: raw [0, 1]).
    ``max_test_images`` tests on the first N images only (HotNAS's ``test_stop_batch``); those
    results are marked partial. The model passed in is fine-tuned in place. ``teacher`` is the
    model distilled from when ``settings.distill > 0``.
    """

    def __init__(self, dataset: str, *, model: str | None = None, split: str = "test",
                 data_dir: str | Path | None = None, download: bool = False,
                 settings: FinetuneSettings = FinetuneSettings(), test_batch_size: int = 256,
                 max_test_images: int | None = None, normalize: Normalize | None = None,
                 threads: int | None = None, progress: bool = True, train_data: Dataset | None = None,
                 test_data: Dataset | None = None, teacher: nn.Module | None = None) -> None:
        if max_test_images is not None and (not isinstance(max_test_images, int) or max_test_images < 1):
            raise ConfigError(f"max_test_images={max_test_images!r} is not a positive integer.",
                              "Use e.g. 1000, or None to test on the whole split.")
        self.dataset = dataset
        self.model_name = model
        self.split = split
        self.data_dir = data_dir
        self.download = download
        self.settings = settings
        self.test_batch_size = test_batch_size
        self.max_test_images = max_test_images
        self.normalize = normalize
        self.threads = threads
        self.progress = progress
        self._train = train_data
        self._test = test_data
        self.teacher = teacher
        self.last_metrics: Metrics | None = None

    @property
    def cache_fields(self) -> tuple[str, str, str]:
        """(dataset, split, settings key): with the plan key, what identifies one evaluation."""
        split = self.split if self.max_test_images is None else f"{self.split}[:{self.max_test_images}]"
        return self.dataset, split, self.settings.key

    def _prepared(self, split: str) -> Dataset:
        data = load_dataset(self.dataset, split, self.data_dir, self.download)
        if self.model_name is not None:
            return prepare(data, self.model_name)
        return data.normalized(self.normalize)

    def train_data(self) -> Dataset:
        if self._train is None:
            self._train = self._prepared("train")
        return self._train

    def test_data(self) -> Dataset:
        data = self._test if self._test is not None else self._prepared(self.split)
        if self.max_test_images is not None and len(data) > self.max_test_images:
            data = data.take(self.max_test_images)
        self._test = data
        return data

    def evaluate(self, model: nn.Module) -> Metrics:
        """Fine-tune (when ``settings.batches``), then test; the full ``Metrics`` record."""
        test_data = self.test_data()  # load (and fail on) the test split before spending time training
        if self.settings.batches:
            s = self.settings
            finetune(model, self.train_data(), s.batches, s.batch_size, s.lr, s.momentum, s.weight_decay, s.seed,
                     s.augment, threads=self.threads, progress=self.progress, schedule=s.schedule,
                     teacher=self.teacher if s.distill else None, distill=s.distill, temperature=s.temperature)
        self.last_metrics = test(model, test_data, self.test_batch_size, threads=self.threads,
                                 progress=self.progress)
        return self.last_metrics

    def __call__(self, model: nn.Module) -> Mapping[str, float]:
        return self.evaluate(model).as_mapping()


@dataclass(frozen=True)
class ZooEvaluation:
    """The result of ``evaluate_zoo_model``: what was evaluated and its metrics."""

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


def evaluate_zoo_model(model: str, dataset: str, split: str = "test", *, data_dir: str | Path | None = None,
                       download: bool = False, checkpoint: str | Path | None = None, plan: str | Path | None = None,
                       settings: FinetuneSettings = FinetuneSettings(batches=0), test_batch_size: int = 256,
                       threads: int | None = None, progress: bool = True) -> ZooEvaluation:
    """Load zoo ``model``'s weights for ``dataset`` (or ``checkpoint``), apply ``plan``, fine-tune, test.

    The plan must be one written for the same base model (and dataset, when it names one). The
    test split is loaded before the model is built, so missing data fails fast.
    """
    from nn2hw import zoo

    zoo.entry(model).variant(dataset)  # an unknown model or dataset variant fails before any loading
    loaded_plan = _load_plan(plan, model, dataset) if plan is not None else None
    evaluator = FinetuneEvaluator(dataset, model=model, split=split, data_dir=data_dir, download=download,
                                  settings=settings, test_batch_size=test_batch_size, threads=threads,
                                  progress=progress)
    evaluator.test_data()
    network = zoo.build(model, dataset, pretrained=checkpoint is None, checkpoint=checkpoint)
    if loaded_plan is not None:
        from nn2hw.compress import apply_plan

        network = apply_plan(loaded_plan, network, (1, *zoo.entry(model).variant(dataset).input_shape))
    metrics = evaluator.evaluate(network)
    return ZooEvaluation(model, dataset, split, metrics, str(checkpoint) if checkpoint else "zoo",
                         loaded_plan.key if loaded_plan is not None else None, settings)


def _load_plan(path: str | Path, model: str, dataset: str):
    from nn2hw.compress import validate_plan
    from nn2hw.plan import Plan

    plan = Plan.load(path)
    validate_plan(plan)
    if plan.base_model != model or (plan.dataset is not None and plan.dataset != dataset):
        raise PlanError(f"The plan {path} was made for {plan.base_model!r} on {plan.dataset!r}, not {model!r} on "
                        f"{dataset!r}.", "Evaluate the plan's own model and dataset, or build a plan for this one.")
    return plan
