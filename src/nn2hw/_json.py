"""JSON values in and out of frozen records: read-only copies, plain copies, and JSON-able forms.

Records keep JSON data (plans' hardware configs, metadata, choices) as read-only views so that a
frozen record cannot be changed through a nested dict; ``thaw`` gives plain data back for
``json.dumps``; ``jsonable`` turns designs, dataclasses with ``to_dict`` and NumPy scalars into
JSON values (the one ``default=`` for ``json.dumps`` in the project).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any


def freeze(value: Any) -> Any:
    """A read-only deep copy of JSON data (dicts -> mapping proxies, lists -> tuples)."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain JSON data (dicts and lists) from ``freeze``'s output (or any nested mappings/tuples)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: objects with ``to_dict``, mappings, sequences, NumPy scalars, paths."""
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # NumPy scalars
        return value.item()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return json.loads(json.dumps(value))  # raises TypeError for what JSON cannot hold

