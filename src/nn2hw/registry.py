"""One generic registry, one instance per pluggable family.

Models, hardware templates, compression transforms and search strategies each keep a
``Registry``; registering a thing also enrols it in the registry-parametrized tests.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from nn2hw.errors import ConfigError, UnknownNameError

T = TypeVar("T")


def suggest(name: str, choices: list[str] | tuple[str, ...], n: int = 3) -> str:
    """A 'did you mean' clause for ``name`` among ``choices`` ('' when nothing is close)."""
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in choices], n=n, cutoff=0.5)
    by_lower = {c.lower(): c for c in choices}
    return f" Did you mean {', '.join(repr(by_lower[c]) for c in close)}?" if close else ""


class Registry(Generic[T]):
    """Named entries of one family, with close-name suggestions on lookup errors."""

    def __init__(self, family: str, list_command: str = "") -> None:
        self.family = family
        self.list_command = list_command
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """Register ``entry`` under ``name``; without ``entry`` works as a decorator."""
        if entry is not None:
            self._add(name, entry)
            return entry

        def decorate(obj: T) -> T:
            self._add(name, obj)
            return obj

        return decorate

    def _add(self, name: str, entry: T) -> None:
        if not name or name != name.strip():
            raise ConfigError(f"A {self.family} name must be a non-empty word, got {name!r}.", "Pick another name.")
        if name in self._entries:
            raise ConfigError(
                f"A {self.family} named {name!r} is already registered.",
                "Register yours under a different name.",
            )
        self._entries[name] = entry

    def get(self, name: str) -> T:
        """The entry called ``name``; an ``UnknownNameError`` suggesting close names otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            listing = f" `{self.list_command}` lists them." if self.list_command else ""
            raise UnknownNameError(
                f"Unknown {self.family} {name!r}.{suggest(name, self.names())}",
                f"Use one of: {', '.join(self.names())}.{listing}",
            ) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style ``pattern``, in registration order."""
        return [n for n in self._entries if fnmatch.fnmatchcase(n, pattern)]

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
