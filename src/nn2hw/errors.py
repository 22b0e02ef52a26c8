"""Errors that name their cause and the fix.

Library code raises these; only the CLI turns them into exit code 2. Each error is one
paragraph a user can act on: what is wrong, then how to fix it.
"""

from __future__ import annotations

Problem = tuple[str, str]
"""A (cause, fix) pair: one thing wrong with an input and how to fix it."""


class Nn2hwError(Exception):
    """Base of every nn2hw error: a cause and a fix, both plain sentences."""

    def __init__(self, cause: str, fix: str = "") -> None:
        self.cause = cause.strip()
        self.fix = fix.strip()
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.cause} Fix: {self.fix}" if self.fix else self.cause

    def __reduce__(self):  # keep cause/fix through pickling (multiprocessing workers)
        return (type(self), (self.cause, self.fix))


class ConfigError(Nn2hwError, ValueError):
    """A parameter, option or configuration file is malformed or out of range."""


class UnknownNameError(ConfigError, KeyError):
    """A name (model, template, device, strategy, transform...) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return Nn2hwError.__str__(self)


class PluginError(ConfigError):
    """A plugin (a package declaring an nn2hw entry point) cannot be used: it fails to import, is
    of the wrong kind, or takes a built-in's name."""


class ModelError(Nn2hwError):
    """A model cannot be built, traced or parsed (malformed ONNX, untraceable module...)."""


class CheckpointError(Nn2hwError):
    """A checkpoint is missing, corrupt, fails its checksum or has mismatched keys."""


class DatasetError(Nn2hwError):
    """A dataset is absent, incomplete or malformed."""


class HardwareError(Nn2hwError):
    """A layer cannot run on a template, or a design exceeds a resource."""


class InfeasibleError(Nn2hwError):
    """No design or plan can meet the limits or specs; carries the best bound found."""

    def __init__(self, cause: str, fix: str = "", best_bound: float | None = None) -> None:
        self.best_bound = best_bound
        super().__init__(cause, fix)

    def __reduce__(self):
        return (type(self), (self.cause, self.fix, self.best_bound))


class PlanError(Nn2hwError):
    """A plan names layers the model lacks, or choices outside the library."""


class StudyError(Nn2hwError):
    """A study cannot be created, reached or resumed."""
