"""One generic registry, one instance per pluggable family, loaded lazily, open to plugins.

Models, datasets, hardware templates, compression transforms, search strategies and peer
backends each keep a ``Registry``. An entry is one module that registers itself on import. A
registry fills itself the first time it is read: it imports every public module of its built-in
package (so no list of names is kept anywhere), then every entry point of its group
(``nn2hw.templates``, ``nn2hw.transforms``, ``nn2hw.strategies``, ``nn2hw.models``,
``nn2hw.datasets``) that third-party packages declare. A plugin that fails to import, is of the
wrong kind or takes a built-in's name is left out with a ``PluginProblem`` naming its package;
asking for it raises a ``PluginError``; the built-in entries are never affected. Registering a
thing also enrols it in the conformance suites the project's tests run (``nn2hw.testing``).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from nn2hw.errors import ConfigError, Nn2hwError, PluginError, UnknownNameError

T = TypeVar("T")


def suggest(name: str, choices: list[str] | tuple[str, ...], n: int = 3) -> str:
    """A 'did you mean' clause for ``name`` among ``choices`` ('' when nothing is close)."""
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in choices], n=n, cutoff=0.5)
    by_lower = {c.lower(): c for c in choices}
    return f" Did you mean {', '.join(repr(by_lower[c]) for c in close)}?" if close else ""


class PluginWarning(UserWarning):
    """A plugin was left out (its ``PluginProblem`` says why); the CLI prints it as one paragraph."""


@dataclass(frozen=True)
class PluginProblem:
    """A plugin entry point that was not registered: which name, from which package, why, the fix."""

    family: str
    name: str
    package: str
    cause: str
    fix: str

    def error(self) -> PluginError:
        return PluginError(self.cause, self.fix)


def import_submodules(package: str) -> list[str]:
    """Import ``package`` and every public module of it and its subpackages (names not starting with
    '_'); returns their names in import (walk) order, the package first."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(getattr(root, "__path__", ()), prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            importlib.import_module(info.name)
            names.append(info.name)
    return names


class Registry(Generic[T]):
    """Named entries of one family, with close-name suggestions on lookup errors.

    ``builtins`` is the package whose modules register the built-in entries when imported;
    ``group`` the entry-point group of plugins; ``kind`` the type every entry must have; a plugin's
    entry point may also name something ``coerce`` turns into one (by default, a subclass of
    ``kind``, which is instantiated).
    """

    def __init__(self, family: str, list_command: str = "", *, builtins: str | None = None,
                 group: str | None = None, kind: type | None = None,
                 coerce: Callable[[Any], Any] | None = None) -> None:
        self.family = family
        self.list_command = list_command
        self.builtins = builtins
        self.group = group
        self.kind = kind
        self.coerce = coerce or self._instantiate
        self._entries: dict[str, T] = {}
        self._origin: dict[str, str] = {}
        self._module: dict[str, str] = {}  # the module that registered each entry
        self._problems: dict[str, PluginProblem] = {}
        self._loaded = False

    # --- registration -----------------------------------------------------------------------
    def register(self, name: str, entry: T | None = None) -> Any:
        """Register ``entry`` under ``name``; without ``entry`` works as a decorator."""
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if entry is not None:
            self._add(name, entry, "nn2hw", caller)
            return entry

        def decorate(obj: T) -> T:
            self._add(name, obj, "nn2hw", caller)
            return obj

        return decorate

    def _add(self, name: str, entry: T, origin: str, module: str = "") -> None:
        if not isinstance(name, str) or not name or name != name.strip():
            raise ConfigError(f"A {self.family} name must be a non-empty word, got {name!r}.", "Pick another name.")
        if name in self._entries:
            if self._entries[name] is entry:
                return  # the same object registered twice (a module imported both ways)
            raise ConfigError(f"A {self.family} named {name!r} is already registered (by {self._origin[name]}).",
                              "Register yours under a different name.")
        self._entries[name] = entry
        self._origin[name] = origin
        self._module[name] = module

    # --- lazy loading -------------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.builtins:
            walked = {module: i for i, module in enumerate(import_submodules(self.builtins))}
            # built-ins in module walk order (registration order within a module), whichever module an
            # earlier import happened to load first
            ranked = sorted(self._entries, key=lambda n: walked.get(self._module[n], len(walked)))
            self._entries = {n: self._entries[n] for n in ranked}
        if self.group:
            for ep in entry_points(group=self.group):
                self._load_plugin(ep)

    def _load_plugin(self, ep: EntryPoint) -> None:
        package = ep.dist.name if ep.dist is not None else ep.module
        where = f"entry point {ep.name!r} = {ep.value!r} of package {package!r} (group {self.group})"
        if ep.name in self._entries and self._origin[ep.name] == "nn2hw":
            self._problem(ep.name, package, f"{where} takes the name of the built-in {self.family} {ep.name!r}; "
                          "the built-in is kept and the plugin is not loaded.",
                          f"Rename the entry point in {package}'s package metadata (pyproject.toml).")
            return
        try:
            obj = self.coerce(ep.load())
        except Exception as exc:  # a plugin may fail in any way; it must not take the built-ins down
            self._problem(ep.name, package, f"{where} fails to load: {type(exc).__name__}: {exc}.",
                          f"Fix or reinstall {package} (pip install --force-reinstall {package}), or uninstall it.")
            return
        if self.kind is not None and not isinstance(obj, self.kind):
            self._problem(ep.name, package, f"{where} is a {type(obj).__name__}, not a {self.kind.__name__}.",
                          f"Point the entry point at a {self.kind.__name__} (an instance or its class).")
            return
        declared = getattr(obj, "name", ep.name)
        if declared != ep.name:
            self._problem(ep.name, package, f"{where} names itself {declared!r}.",
                          "Give the entry point the same name as the object it loads.")
            return
        try:
            self._add(ep.name, obj, package)
        except Nn2hwError as exc:
            self._problem(ep.name, package, f"{where}: {exc.cause}", exc.fix)

    def _instantiate(self, obj: Any) -> Any:
        return obj() if isinstance(obj, type) and self.kind is not None and issubclass(obj, self.kind) else obj

    def _problem(self, name: str, package: str, cause: str, fix: str) -> None:
        problem = PluginProblem(self.family, name, package, cause, fix)
        self._problems.setdefault(name, problem)
        warnings.warn(f"{cause} Fix: {fix}", PluginWarning, stacklevel=2)

    # --- lookup -----------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The entry called ``name``; a ``PluginError`` for a broken plugin of that name, an
        ``UnknownNameError`` suggesting close names otherwise."""
        self._load()
        if name in self._entries:
            return self._entries[name]
        if name in self._problems:
            raise self._problems[name].error()
        listing = f" `{self.list_command}` lists them." if self.list_command else ""
        raise UnknownNameError(
            f"Unknown {self.family} {name!r}.{suggest(name, self.names())}",
            f"Use one of: {', '.join(self.names())}.{listing}",
        )

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style ``pattern``: built-ins in module order, then plugins."""
        self._load()
        return [n for n in self._entries if fnmatch.fnmatchcase(n, pattern)]

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(list(self._entries.items()))

    def origin(self, name: str) -> str:
        """'nn2hw' for a built-in entry, else the name of the package that declared it."""
        self.get(name)
        return self._origin[name]

    def problems(self) -> list[PluginProblem]:
        """The plugins that were left out, and why."""
        self._load()
        return list(self._problems.values())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

