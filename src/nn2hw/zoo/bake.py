"""Zoo workloads baked into the package, so that a fresh install costs zoo models without torch.

``python -m nn2hw.zoo.bake`` extracts every registered model x dataset variant (batch 1) and
writes each as ``workloads/<name>-<dataset>.json.gz``, a gzip JSON record
``{"fingerprint": ..., "workload": {...}}``. ``baked_workload`` serves a record only while its
fingerprint equals ``source_fingerprint()`` (the architecture and extractor sources and the
entries' shapes in the running nn2hw), so an edited architecture or extractor falls back to a real
extraction, never to a stale workload. Reading needs no torch; baking does.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path

from nn2hw import __version__
from nn2hw.errors import Nn2hwError
from nn2hw.workload import Workload

BAKED_DIR = Path(__file__).parent / "workloads"
BAKE_COMMAND = "python -m nn2hw.zoo.bake"
SUFFIX = ".json.gz"


def source_fingerprint() -> str:
    """Hash of what a zoo workload depends on: nn2hw's version, the architecture, factory and
    extractor sources, and every entry's factory, options, input shapes and class counts.

    Checkpoint sources, accuracies and other metadata are left out, so registering weights does
    not invalidate the baked workloads; changing a layer, a shape or the extractor does.
    """
    import nn2hw.workload as workload_pkg
    from nn2hw.zoo.factory import entry, list_models

    zoo_dir = Path(__file__).parent
    files = [*sorted((zoo_dir / "archs").rglob("*.py")), zoo_dir / "factory.py",
             *sorted(Path(workload_pkg.__file__).parent.rglob("*.py"))]
    digest = hashlib.sha256(__version__.encode())
    for path in files:
        digest.update(path.relative_to(zoo_dir.parent).as_posix().encode())
        digest.update(path.read_bytes())
    for name in sorted(list_models()):  # registry order must not change the fingerprint
        e = entry(name)
        shapes = [(v.dataset, list(v.input_shape), v.num_classes) for v in e.variants]
        digest.update(json.dumps([e.name, e.factory, [list(o) for o in e.options], shapes], default=repr).encode())
    return digest.hexdigest()[:16]


def baked_path(name: str, dataset: str, folder: Path = BAKED_DIR) -> Path:
    """Where the record of one variant lives: ``<folder>/<name>-<dataset>.json.gz``."""
    return folder / f"{name}-{dataset}{SUFFIX}"


def read_baked(path: Path) -> tuple[str, Workload] | None:
    """(fingerprint, workload) of one baked record; ``None`` if it is missing or damaged."""
    try:
        record = json.loads(gzip.decompress(path.read_bytes()))
        return str(record["fingerprint"]), Workload.from_dict(record["workload"])
    except (OSError, EOFError, ValueError, KeyError, TypeError, Nn2hwError):
        return None


def baked_workload(name: str, dataset: str, fingerprint: str | None = None) -> Workload | None:
    """The packaged workload of zoo model ``name`` on ``dataset`` (batch 1), or ``None`` when none
    was baked from the current sources (``fingerprint``, default ``source_fingerprint()``)."""
    found = read_baked(baked_path(name, dataset))
    if found is None or found[0] != (fingerprint or source_fingerprint()):
        return None
    return found[1]


def packaged_workloads() -> list[Workload]:
    """Every zoo variant's packaged workload made from the current sources (no torch): the shapes
    real models use, e.g. a latency predictor's sampling prior."""
    from nn2hw.zoo.factory import entry, list_models

    fingerprint = source_fingerprint()
    found = (baked_workload(name, v.dataset, fingerprint) for name in list_models() for v in entry(name).variants)
    return [workload for workload in found if workload is not None]


def bake(folder: Path = BAKED_DIR) -> list[Path]:
    """Extract every zoo variant (batch 1) into ``folder``, removing records of unregistered ones."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from nn2hw.zoo.factory import entry, list_models, workload

    fingerprint = source_fingerprint()
    variants = [(name, v.dataset) for name in list_models() for v in entry(name).variants]
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with Progress(TextColumn("baking {task.description}"), BarColumn(), MofNCompleteColumn()) as bar:
        task = bar.add_task("", total=len(variants))
        for name, dataset in variants:
            bar.update(task, description=f"{name} ({dataset})")
            record = {"fingerprint": fingerprint, "workload": workload(name, dataset).to_dict()}
            path = baked_path(name, dataset, folder)
            path.write_bytes(gzip.compress(json.dumps(record, separators=(",", ":")).encode(), 9, mtime=0))
            written.append(path)
            bar.advance(task)
    for stale in set(folder.glob(f"*{SUFFIX}")) - set(written):
        stale.unlink()
    return written


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog=BAKE_COMMAND, description=__doc__.splitlines()[0]).parse_args(argv)
    written = bake()
    size = sum(p.stat().st_size for p in written)
    print(f"baked {len(written)} workloads ({size / 1024:.1f} KiB) into {BAKED_DIR}, "
          f"fingerprint {source_fingerprint()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
