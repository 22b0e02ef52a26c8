"""What every latency predictor is: a JSON record of its measurements that refits on load.

A predictor is stored as the measurements it was fitted on plus the regressor's hyper-parameters
and seed, never as a pickle: a pickled scikit-learn model breaks on a library upgrade (nn-Meter's
issue #131), while measurements stay valid and a seeded refit gives the same predictions. Each
kind (``"whole"``, ``"kernel"``) registers a factory in ``PREDICTOR_KINDS`` that refits from the
stored dict; ``load`` checks the common envelope and dispatches.
"""

from __future__ import annotations

import importlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from nn2hw import __version__
from nn2hw.errors import ConfigError, Nn2hwError
from nn2hw.workload import Workload

FORMAT_VERSION = 1
"""Version of the stored form; bumped whenever a stored key changes meaning."""

ENVELOPE_KEYS = ("format", "nn2hw_version", "kind", "device", "seed", "hyper", "samples")
"""Keys every stored predictor has; a kind adds its own (e.g. ``machine``)."""

KIND_MODULES = {"whole": "nn2hw.predict.whole", "kernel": "nn2hw.predict.kernel"}
"""The module that registers each built-in kind (imported on first use by ``load``)."""

REFIT_FIX = ("Refit the predictor with this nn2hw from its measurements (`nn2hw predictor fit --measurements CSV "
             "--out FILE`, or `nn2hw predictor build` for this machine).")


class Predictor(ABC):
    """A latency predictor for one device: milliseconds for a workload.

    Subclasses set ``kind`` and, in ``__init__``, ``device`` and ``seed``; ``stored`` returns their
    own part of the JSON record (at least ``hyper`` and ``samples``), from which their factory in
    ``PREDICTOR_KINDS`` refits an identical predictor.
    """

    kind: ClassVar[str]
    device: str
    seed: int

    @abstractmethod
    def predict(self, workload: Workload) -> float:
        """Predicted latency of ``workload`` in milliseconds."""

    def predict_layers(self, workload: Workload) -> Mapping[str, float]:
        """Predicted milliseconds per kernel, keyed by kernel name; a whole-network predictor has one entry."""
        return {"network": self.predict(workload)}

    @abstractmethod
    def stored(self) -> dict[str, Any]:
        """This kind's keys of the stored record: ``hyper``, ``samples`` and e.g. ``machine`` (JSON values)."""

    def to_dict(self) -> dict[str, Any]:
        """The whole stored record: the common envelope plus ``stored()``."""
        record: dict[str, Any] = {"format": FORMAT_VERSION, "nn2hw_version": __version__, "kind": self.kind,
                                  "device": self.device, "seed": self.seed}
        record.update(self.stored())
        return record

    def save(self, path: str | Path) -> Path:
        """Write the record as JSON (creating parent folders); returns the path."""
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")
        except OSError as exc:
            raise ConfigError(f"Cannot write predictor file {target}: {exc.strerror}.",
                              "Pick a writable path.") from None
        return target


PredictorFactory = Callable[[Mapping[str, Any]], Predictor]
PREDICTOR_KINDS: dict[str, PredictorFactory] = {}
"""Kind name -> a function refitting a predictor from its stored record (filled by the kind modules)."""


def register_kind(kind: str, factory: PredictorFactory) -> None:
    """Enrol the factory that refits predictors of ``kind`` from their stored record."""
    PREDICTOR_KINDS[kind] = factory


def from_dict(record: Mapping[str, Any], origin: str = "The predictor record") -> Predictor:
    """Refit the predictor a stored record describes; ``origin`` names it in errors (e.g. the file)."""
    missing = [key for key in ENVELOPE_KEYS if key not in record]
    if "format" in missing:
        raise ConfigError(f"{origin} is not an nn2hw predictor (no 'format' key).",
                          "Give a file written by `nn2hw predictor fit`/`build` or Predictor.save().")
    if record["format"] != FORMAT_VERSION:
        raise ConfigError(
            f"{origin} has predictor format {record['format']!r} (written by nn2hw "
            f"{record.get('nn2hw_version', '?')}); nn2hw {__version__} reads format {FORMAT_VERSION}.", REFIT_FIX)
    if missing:
        raise ConfigError(f"{origin} lacks the keys {missing}.", REFIT_FIX)
    factory = _factory(str(record["kind"]), origin)
    try:
        return factory(record)
    except Nn2hwError as exc:
        raise type(exc)(f"{origin}: {exc.cause}", exc.fix) from None
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"{origin} is malformed ({type(exc).__name__}: {exc}).", REFIT_FIX) from None


def load(path: str | Path) -> Predictor:
    """Read a predictor file and refit it from its stored measurements (same seed: same predictions)."""
    source = Path(path)
    try:
        record = json.loads(source.read_text())
    except OSError as exc:
        raise ConfigError(f"Cannot read predictor file {source}: {exc.strerror}.",
                          "Give the path of a file written by `nn2hw predictor fit`/`build`.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Predictor file {source} is corrupt: not JSON ({exc}).", REFIT_FIX) from None
    if not isinstance(record, dict):
        raise ConfigError(f"Predictor file {source} is corrupt: its JSON is not an object.", REFIT_FIX)
    return from_dict(record, f"Predictor file {source}")


def _factory(kind: str, origin: str) -> PredictorFactory:
    if kind not in PREDICTOR_KINDS and kind in KIND_MODULES:
        importlib.import_module(KIND_MODULES[kind])
    if kind not in PREDICTOR_KINDS:
        raise ConfigError(f"{origin} is of unknown predictor kind {kind!r}.",
                          f"Use a file of kind {sorted(KIND_MODULES)}, or import the plugin that registers {kind!r}.")
    return PREDICTOR_KINDS[kind]


def sklearn_ensemble() -> ModuleType:
    """``sklearn.ensemble``, imported on first use; a clear error naming the extra when it is missing."""
    try:
        return importlib.import_module("sklearn.ensemble")
    except ImportError:
        raise ConfigError("Latency predictors need scikit-learn, which is not installed.",
                          'pip install "nn2hw[predict]"') from None


def check_latencies(latencies_ms: Any, what: str = "latency") -> list[float]:
    """The latencies as floats; a ConfigError naming the first that is not a positive finite number."""
    values: list[float] = []
    for index, value in enumerate(latencies_ms):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
            raise ConfigError(f"{what} #{index} is {value!r}, not a positive finite number of milliseconds.",
                              "Give measured latencies in milliseconds (> 0).")
        values.append(number)
    return values
