"""State-dict key listings stored as test data: ``<model>[.<dataset>].txt``, one 'key shape' a line.

The ImageNet listings follow torchvision's layout (checked against torchvision's model
definitions and public key dumps; the parameter totals equal torchvision's ``num_params``
metadata, see test_architectures.py). The CIFAR ResNet listings follow the checkpoint format in
NN2HW_DATA/zoo/cifar10/SOURCE.md plus the ``num_batches_tracked`` counters current BatchNorm
adds. Regenerate after an intended change with ``python -m tests.zoo.keys``.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data" / "state_dicts"


def listing_path(name: str, dataset: str, default_dataset: str) -> Path:
    return DATA / (f"{name}.txt" if dataset == default_dataset else f"{name}.{dataset}.txt")


def format_listing(state: dict) -> str:
    return "".join(f"{key} {'x'.join(map(str, value.shape)) or 'scalar'}\n" for key, value in state.items())


def read_listing(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in path.read_text().splitlines():
        key, shape = line.split()
        rows.append((key, () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))))
    return rows


def _regenerate() -> None:
    import torch

    from nn2hw import zoo

    DATA.mkdir(parents=True, exist_ok=True)
    for name in zoo.list_models():
        model_entry = zoo.entry(name)
        for variant in model_entry.variants:
            with torch.device("meta"):
                model = zoo.build(name, variant.dataset)
            path = listing_path(name, variant.dataset, model_entry.default_dataset)
            path.write_text(format_listing(model.state_dict()))
            print(path)


if __name__ == "__main__":
    _regenerate()
