"""The pluggable accuracy evaluator that the search and ``nn2hw evaluate`` call, and its default.

Protocol: an evaluator is any callable ``evaluator(model) -> Mapping[str, float]``. It receives
a fresh model with the candidate plan already applied (it may train it in place) and returns
finite metrics (``checked_metrics`` is the contract); the search maximizes ``top1`` unless told
another name. An evaluator may declare a ``cache_fields`` attribute, a tuple of strings that
identifies its settings (data, split, fine-tune settings...): ``evaluator_id`` puts it in the key
of its measurements, so results of other settings are never reused.

``FinetuneEvaluator`` is the default: HotNAS's short fine-tune on the training split followed by
top-1/top-5 on a test split. ``EmbeddingFidelityEvaluator`` is label-free, for sentence-embedding
models: the mean cosine similarity (metric ``cosine``, in percent: 100 x the mean, like top-1) between
a model's embeddings and those of the original model on held-out texts. Torch is imported when it
runs, not when this module is imported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from nn2hw.errors import ConfigError
from nn2hw.evaluate.settings import FinetuneSettings

if TYPE_CHECKING:
    from torch import Tensor, nn

    from nn2hw.data import Dataset, Holdout
    from nn2hw.evaluate.loops import Metrics


@dataclass(frozen=True)
class Checkpoints:
    """Where an evaluator that fine-tunes scores the model on the way (early stopping): after each
    of ``steps`` batches, on the first ``images`` of its scoring split, it calls ``report(step,
    metrics)``, which may raise to stop the evaluation (nothing is returned, so nothing is stored).
    Only evaluators with ``reports_checkpoints = True`` (the default ``FinetuneEvaluator``) take them."""

    steps: tuple[int, ...]
    images: int
    report: Callable[[int, Mapping[str, float]], None]


@runtime_checkable
class Evaluator(Protocol):
    """Anything that maps a model to named, finite metrics (e.g. ``{'top1': 91.3, 'top5': 99.6}``);
    optionally with ``cache_fields: tuple[str, ...]`` naming its settings (see ``evaluator_id``)."""

    def __call__(self, model: nn.Module) -> Mapping[str, float]: ...


def evaluator_id(evaluator: Evaluator, *context: str | None) -> str:
    """What identifies an evaluator's measurements (JSON): its name, its declared ``cache_fields``
    and ``context`` (e.g. the weights it starts from). One that declares no fields is known by its
    name alone, so its results are reused only where that name means one thing (one study)."""
    name = getattr(evaluator, "__qualname__", type(evaluator).__qualname__)
    return json.dumps([name, *getattr(evaluator, "cache_fields", ()), *context])


def checked_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """``metrics`` as a plain dict of finite floats; a ``ConfigError`` naming the bad entry otherwise.

    This is the contract of an evaluator's result (see ``Evaluator``)."""
    if not isinstance(metrics, Mapping) or not metrics:
        raise ConfigError(f"An evaluator returned {type(metrics).__name__} {metrics!r}, not a non-empty mapping "
                          "of metric names to numbers.", "Return e.g. {'top1': 91.2, 'top5': 99.1}.")
    values: dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"Metric name {name!r} is not a non-empty string.", "Name every metric, e.g. 'top1'.")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"Metric {name!r} is {value!r}, not a number.", "Return numbers only.") from None
        if not math.isfinite(number):
            raise ConfigError(f"Metric {name!r} is {number}, not a finite number; the run failed.",
                              "Fix the evaluation (e.g. lower the learning rate); nothing was stored.")
        values[name] = number
    return values


class FinetuneEvaluator:
    """Fine-tune a model briefly (``settings``), then test it; returns ``Metrics.as_mapping()``.

    It fine-tunes on ``train_split`` and scores on ``split`` (a search: ``fit`` and ``validation``,
    carved by ``holdout`` where the dataset has no validation split of its own; see
    ``nn2hw.data.load_dataset``). Data are loaded on the first call (the training split only when
    ``settings.batches > 0``) and passed
    through ``prepare`` (e.g. a zoo model's normalization: ``partial(zoo.prepare,
    model_name=...)``; None leaves images in [0, 1]). ``max_test_images`` tests on the first N
    images only (HotNAS's ``test_stop_batch``); those results are marked partial. The model passed
    in is fine-tuned in place. ``teacher`` is the model distilled from when ``settings.distill > 0``.
    """

    def __init__(self, dataset: str, *, split: str = "test", data_dir: str | Path | None = None,
                 download: bool = False, settings: FinetuneSettings = FinetuneSettings(),
                 test_batch_size: int = 256, max_test_images: int | None = None,
                 prepare: Callable[[Dataset], Dataset] | None = None, threads: int | None = None,
                 progress: bool = True, train_data: Dataset | None = None, test_data: Dataset | None = None,
                 teacher: nn.Module | None = None, train_split: str = "train", holdout: Holdout | None = None
                 ) -> None:
        if max_test_images is not None and (not isinstance(max_test_images, int) or max_test_images < 1):
            raise ConfigError(f"max_test_images={max_test_images!r} is not a positive integer.",
                              "Use e.g. 1000, or None to test on the whole split.")
        self.dataset = dataset
        self.split = split
        self.train_split = train_split
        self.holdout = holdout
        self.data_dir = data_dir
        self.download = download
        self.settings = settings
        self.test_batch_size = test_batch_size
        self.max_test_images = max_test_images
        self.prepare = prepare
        self.threads = threads
        self.progress = progress
        self._train = train_data
        self._test = test_data
        self.teacher = teacher
        self.last_metrics: Metrics | None = None

    @property
    def cache_fields(self) -> tuple[str, ...]:
        """(dataset, split, settings key[, training split, holdout]): with the plan key, what
        identifies one evaluation (the last two only where they differ from the defaults). The
        holdout is the one that carves the splits (the dataset's own when none is given), so a
        changed default never reuses scores of the old carve."""
        from nn2hw.data.base import DATASETS, default_holdout

        split = self.split if self.max_test_images is None else f"{self.split}[:{self.max_test_images}]"
        if self.train_split == "train" and self.holdout is None:
            return self.dataset, split, self.settings.key
        holdout = self.holdout or default_holdout(DATASETS.get(self.dataset))
        return self.dataset, split, self.settings.key, f"train={self.train_split}", f"holdout={holdout}"

    def _prepared(self, split: str) -> Dataset:
        from nn2hw.data import load_dataset

        data = load_dataset(self.dataset, split, self.data_dir, self.download, self.holdout)
        return self.prepare(data) if self.prepare is not None else data

    def train_data(self) -> Dataset:
        if self._train is None:
            self._train = self._prepared(self.train_split)
        return self._train

    def test_data(self) -> Dataset:
        data = self._test if self._test is not None else self._prepared(self.split)
        if self.max_test_images is not None and len(data) > self.max_test_images:
            data = data.take(self.max_test_images)
        self._test = data
        return data

    def evaluate(self, model: nn.Module, checkpoints: Checkpoints | None = None) -> Metrics:
        """Fine-tune (when ``settings.batches``), then test; the full ``Metrics`` record.
        ``checkpoints``: score the model on the way and report it (early stopping; they leave the
        result unchanged: scoring runs in eval mode without gradients)."""
        test_data = self.test_data()  # load (and fail on) the test split before spending time training
        self.fit(model, None if checkpoints is None else self._checkpointed(model, test_data, checkpoints))
        return self.score(model)

    def fit(self, model: nn.Module, after_step: Callable[[int], None] | None = None) -> None:
        """The fine-tune alone (``settings``; nothing when it has no batches), in place. ``model`` may
        also be several networks trained together (``nn2hw.compress._joint.JointNetworks``)."""
        from nn2hw.evaluate.loops import finetune

        if self.settings.batches:
            s = self.settings
            finetune(model, self.train_data(), s.batches, s.batch_size, s.lr, s.momentum, s.weight_decay, s.seed,
                     s.augment, threads=self.threads, progress=self.progress, schedule=s.schedule,
                     teacher=self.teacher if s.distill else None, distill=s.distill, temperature=s.temperature,
                     precision=s.precision, clip_grad_norm=s.clip_grad_norm, optimizer=s.optimizer,
                     after_step=after_step)

    def score(self, model: nn.Module) -> Metrics:
        """The test alone, on this evaluator's split."""
        from nn2hw.evaluate.loops import test

        self.last_metrics = test(model, self.test_data(), self.test_batch_size, threads=self.threads,
                                 progress=self.progress)
        return self.last_metrics

    def _checkpointed(self, model: nn.Module, data: Dataset, checkpoints: Checkpoints) -> Callable[[int], None]:
        """The fine-tune's ``after_step``: at each checkpoint, score ``model`` on the first
        ``checkpoints.images`` of ``data`` and report it (the report may raise to stop)."""
        from nn2hw.evaluate.loops import test

        scored = data.take(checkpoints.images) if len(data) > checkpoints.images else data

        def after_step(done: int) -> None:
            if done in checkpoints.steps:
                metrics = test(model, scored, self.test_batch_size, threads=self.threads, progress=False)
                checkpoints.report(done, metrics.as_mapping())

        return after_step

    reports_checkpoints = True
    """It takes ``checkpoints`` (see ``Checkpoints``); a plain callable evaluator does not."""

    def __call__(self, model: nn.Module, checkpoints: Checkpoints | None = None) -> Mapping[str, float]:
        return self.evaluate(model, checkpoints).as_mapping()


class EmbeddingFidelityEvaluator:
    """How faithfully a (compressed) model reproduces the original one's embeddings, without labels.

    Returns ``{'cosine': mean, 'cosine_min': worst, 'n_images': texts, 'partial': 0/1}``: the
    cosine similarity between the model's and ``reference``'s outputs on each held-out input
    (100: the same directions, what a sentence-embedding search compares), averaged, **in percent**
    (100 x the cosine, so that the search's accuracy bands, reports and tables read it as they read
    top-1). The texts are ``split`` of ``dataset`` (default: the WordNet glosses of the test split;
    ``holdout`` carves ``validation`` where the dataset has none), passed through
    ``prepare`` (e.g. ``partial(zoo.prepare, model_name='minilm_l6')``: the model's tokenizer);
    ``max_texts`` keeps the first N (marked partial). The reference's embeddings are computed once,
    on the first call. ``reference_id`` names the reference's weights in ``cache_fields``.
    """

    metric = "cosine"

    def __init__(self, reference: nn.Module, dataset: str = "wordnet-supersense", *, split: str = "test",
                 data_dir: str | Path | None = None, prepare: Callable[[Dataset], Dataset] | None = None,
                 max_texts: int | None = None, batch_size: int = 256, threads: int | None = None,
                 progress: bool = True, data: Dataset | None = None, reference_id: str = "",
                 holdout: Holdout | None = None) -> None:
        if max_texts is not None and (isinstance(max_texts, bool) or not isinstance(max_texts, int) or max_texts < 1):
            raise ConfigError(f"max_texts={max_texts!r} is not a positive integer.",
                              "Use e.g. 1000, or None to use the whole split.")
        self.reference = reference
        self.dataset = dataset
        self.split = split
        self.data_dir = data_dir
        self.prepare = prepare
        self.max_texts = max_texts
        self.batch_size = batch_size
        self.threads = threads
        self.progress = progress
        self.reference_id = reference_id
        self.holdout = holdout
        self._data = data
        self._reference_outputs: Tensor | None = None

    @property
    def cache_fields(self) -> tuple[str, ...]:
        """(metric in percent, dataset, split, reference weights[, holdout]): what identifies one
        measurement besides the plan."""
        split = self.split if self.max_texts is None else f"{self.split}[:{self.max_texts}]"
        carve = () if self.holdout is None else (f"holdout={self.holdout}",)
        return f"{self.metric} %", self.dataset, split, self.reference_id, *carve

    def data(self) -> Dataset:
        """The held-out inputs (loaded and prepared on first use)."""
        if self._data is None:
            from nn2hw.data import load_dataset

            loaded = load_dataset(self.dataset, self.split, self.data_dir, holdout=self.holdout)
            self._data = self.prepare(loaded) if self.prepare is not None else loaded
        if self.max_texts is not None and len(self._data) > self.max_texts:
            self._data = self._data.take(self.max_texts)
        return self._data

    def __call__(self, model: nn.Module) -> Mapping[str, float]:
        from nn2hw.evaluate.loops import cosine_similarities, embed

        data = self.data()
        if self._reference_outputs is None:
            self._reference_outputs = embed(self.reference, data, self.batch_size, self.threads, self.progress)
        similarity = cosine_similarities(embed(model, data, self.batch_size, self.threads, self.progress),
                                         self._reference_outputs)
        return {"cosine": 100.0 * float(similarity.mean()), "cosine_min": 100.0 * float(similarity.min()),
                "n_images": float(len(data)), "partial": 1.0 if data.partial else 0.0}
