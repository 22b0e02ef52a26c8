"""The project's one reader of configuration files (YAML or JSON) and its path-aware field checks.

``read_config`` parses a file by its extension (``.json`` as JSON, anything else as YAML) and
turns every failure (missing file, non-UTF-8 bytes, a syntax error) into a ``ConfigError``
naming the file and the position. ``FieldChecker`` checks the parsed data field by field and
names the file and the field path (``sub_accelerators[1].params.pe_rows``) in every error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from nn2hw.errors import ConfigError

R = TypeVar("R")


def read_config(path: str | Path, what: str = "configuration file") -> Any:
    """The parsed YAML or JSON of ``path``; a ``ConfigError`` naming ``what``, the file and the fix."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"The {what} {file} does not exist.", f"Give the path of an existing YAML or JSON {what}.")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"The {what} {file} is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start} cannot be decoded.",
                          "Save the file as UTF-8 (YAML and JSON files are text).") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read the {what} {file}: {exc.strerror}.", "Give a readable file.") from None
    as_json = file.suffix.lower() == ".json"
    try:
        if as_json:
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"The {what} {file} is not valid JSON: {exc.msg} at line {exc.lineno}, column "
                          f"{exc.colno}.", "Fix the syntax at that position.") from None
    except Exception as exc:  # yaml.YAMLError and its subclasses
        raise ConfigError(f"The {what} {file} is not valid YAML: {yaml_problem(exc)}.",
                          "Fix the syntax at the position given.") from None


def _at(mark: Any) -> str:
    """'line L, column C' of a PyYAML mark (1-based, as editors count)."""
    return f"line {mark.line + 1}, column {mark.column + 1}"


def yaml_problem(exc: Exception) -> str:
    """A PyYAML error as one sentence: the problem and its position, then what was being read and
    where it started ('expected ',' or ']' at line 3, column 1 (while parsing a flow sequence
    starting at line 2, column 23)'), without PyYAML's multi-line snippet."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if not problem:
        return " ".join(str(exc).split())
    text = problem + (f" at {_at(mark)}" if mark is not None else "")
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context:
        where = "starting at" if context.startswith("while") else "at"
        text += f" ({context}" + (f" {where} {_at(context_mark)}" if context_mark is not None else "") + ")"
    return text


class FieldChecker:
    """Field checks whose errors name the file and the path of the field (a checker without a
    path names only ``what``: data that did not come from a file). ``doc`` names where the format
    is described, for the default fix."""

    def __init__(self, path: str | Path = "", what: str = "Configuration file", doc: str = "") -> None:
        self.path = str(path)
        self.what = what
        self.doc = doc

    @property
    def origin(self) -> str:
        """'<what> <path>', or ``what`` alone without a path."""
        return f"{self.what} {self.path}" if self.path else self.what

    def fail(self, where: str, expected: str, got: Any, fix: str = "") -> ConfigError:
        default = f"Fix '{where}'" + (f" in {self.path}" if self.path else "") + \
            (f" (see {self.doc} for the format)." if self.doc else ".")
        return ConfigError(f"{self.origin}: field '{where}' must be {expected}, got {got!r}.", fix or default)

    def mapping(self, value: Any, where: str, allowed: set[str] | None = None) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, "a mapping (key: value)", value)
        if allowed is not None:
            extra = sorted(str(k) for k in set(value) - allowed)
            if extra:
                from nn2hw.registry import suggest

                raise ConfigError(f"{self.origin}: unknown field(s) {', '.join(extra)} in '{where}'."
                                  f"{suggest(extra[0], sorted(allowed))}",
                                  f"Allowed there: {', '.join(sorted(allowed))}.")
        return value

    def known(self, value: Mapping[str, Any], allowed: Sequence[str], what: str, where: str = "",
              renamed: Mapping[str, str] | None = None) -> None:
        """A ``ConfigError`` for the first key of ``value`` not in ``allowed`` ('Unknown <what>
        <key> in <where>'), naming its new name when ``renamed`` has it, else close names."""
        for key in value:
            if key not in allowed:
                if renamed and key in renamed:
                    hint = f" nn2hw now names it {renamed[key]!r}."
                else:
                    from nn2hw.registry import suggest

                    hint = suggest(str(key), list(allowed))
                inside = f" in '{where}'" if where else ""
                raise ConfigError(f"{self.origin}: Unknown {what} {key!r}{inside}.{hint}",
                                  f"Use one of: {', '.join(allowed)}.")

    def choice(self, value: Any, where: str, options: Sequence[str]) -> str:
        if not isinstance(value, str) or value not in options:
            raise self.fail(where, f"one of {', '.join(options)}", value)
        return value

    def wrap(self, where: str, build: Callable[[], R]) -> R:
        """Run ``build()``; a ConfigError it raises gets the file and field path in front."""
        try:
            return build()
        except ConfigError as exc:
            raise ConfigError(f"{self.origin}: in '{where}': {exc.cause}", exc.fix) from None
