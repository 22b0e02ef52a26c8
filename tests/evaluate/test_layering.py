"""The evaluate and zoo packages stand side by side: neither imports the other (the API joins them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nn2hw

PACKAGE = Path(nn2hw.__file__).parent


def _imported(path: Path) -> set[str]:
    """Every nn2hw module a file imports, at any depth of its code (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
    return {name for name in found if name.startswith("nn2hw")}


@pytest.mark.parametrize("package, forbidden", [("evaluate", "nn2hw.zoo"), ("zoo", "nn2hw.evaluate")])
def test_no_arrow_between_evaluate_and_zoo(package, forbidden):
    offending = {str(path.relative_to(PACKAGE)): sorted(name for name in _imported(path)
                                                        if name == forbidden or name.startswith(forbidden + "."))
                 for path in (PACKAGE / package).rglob("*.py")}
    assert not {path: names for path, names in offending.items() if names}
