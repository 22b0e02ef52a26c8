"""Whether the real data a search test trains on are here (a search test skips with the reason
when they are not)."""

from __future__ import annotations


def fashion_mnist_here() -> bool:
    """True when Fashion-MNIST's test split loads (any reason it does not skips the real search)."""
    from nn2hw.data import load_dataset

    try:
        load_dataset("fashion-mnist", "test")
    except Exception:
        return False
    return True
