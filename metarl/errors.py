"""The typed errors of metarl, in one place.

Every error a user can cause derives from :class:`MetaRLError`, so a script (or the CLI) can catch
them all at once; each also derives from the builtin it refines (``ValueError``, ``KeyError``, ...)
so code written against the builtins keeps working.

>>> from metarl.errors import InvalidTaskError
>>> try:
...     raise InvalidTaskError("goal", float("nan"), "must be finite")
... except ValueError as e:
...     print(e)
invalid task field 'goal' = nan: must be finite
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MetaRLError",
    "InvalidTaskError",
    "TaskNotSetError",
    "InvalidActionError",
    "UnknownEnvError",
    "ConfigError",
    "CheckpointError",
    "SpaceMismatchError",
    "TrainingDivergedError",
    "UnknownArgumentError",
    "MetaRLWarning",
    "CheckpointWarning",
    "SamplerError",
]


class MetaRLError(Exception):
    """Base class of every error metarl raises on purpose."""


class InvalidTaskError(MetaRLError, ValueError):
    """A task value failed validation (NaN, wrong shape, out of range, wrong type)."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid task field {field!r} = {_short(value)}: {reason}")


class TaskNotSetError(MetaRLError, RuntimeError):
    """An env was reset or stepped before it was given a task."""


class InvalidActionError(MetaRLError, ValueError):
    """An action with NaN/inf entries, the wrong shape, or out of the action space."""


class UnknownEnvError(MetaRLError, KeyError):
    """An env id that is not registered; the message suggests the closest registered ids."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(MetaRLError, ValueError):
    """A configuration value (preset, flag, kwarg, seed, count, path) that is invalid."""


class UnknownArgumentError(ConfigError, TypeError):
    """A keyword argument an env or function does not take; the message suggests the closest ones.

    Also a ``TypeError``, which is what Python raises for an unexpected keyword argument.
    """


class CheckpointError(MetaRLError, OSError):
    """A checkpoint that is missing, truncated, foreign or inconsistent."""


class SpaceMismatchError(MetaRLError, ValueError):
    """A checkpoint or policy whose spaces differ from the env's; the message lists both."""


class TrainingDivergedError(MetaRLError, FloatingPointError):
    """A loss or gradient became NaN/inf; the message names the iteration and quantity."""


class MetaRLWarning(UserWarning):
    """Base class of the warnings metarl issues (the CLI prints each as one ``warning:`` line)."""


class CheckpointWarning(MetaRLWarning):
    """A checkpoint was skipped (it failed verification) or could not be verified (old format)."""
class SamplerError(MetaRLError, RuntimeError):
    """A sampling worker died and could not be replaced (in time); the message names the worker."""


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
