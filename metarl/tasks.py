"""Tasks: small, frozen, validated, JSON-serialisable values.

A task family declares its task as a frozen dataclass deriving from :class:`Task`, with each field
made by :func:`array_field` or :func:`scalar_field`. Construction converts and validates every
field (NaN/inf, shape, range, allowed values) and raises :class:`~metarl.errors.InvalidTaskError`
naming the field and the value; arrays are stored read-only, so a task cannot change after it
was made. Tasks serialise to JSON (never pickle) with their type name, and compare by value.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True, eq=False)
... class GoalTask(Task):
...     goal: np.ndarray = array_field((2,), low=-1.0, high=1.0, doc="2-D goal")
>>> t = GoalTask(goal=[0.5, -0.25])
>>> t.to_json()
'{"type": "GoalTask", "goal": [0.5, -0.25]}'
>>> Task.from_json(t.to_json()) == t
True
>>> GoalTask(goal=[2.0, 0.0])
Traceback (most recent call last):
...
metarl.errors.InvalidTaskError: invalid task field 'goal' = [2.0, 0.0]: values must lie in [-1.0, 1.0]
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from metarl.errors import InvalidTaskError

__all__ = ["Task", "array_field", "scalar_field", "task_from_json", "tasks_to_json", "tasks_from_json"]

T = TypeVar("T", bound="Task")

_TASK_TYPES: dict[str, type[Task]] = {}


def array_field(
    shape: tuple[int, ...],
    *,
    low: float = -math.inf,
    high: float = math.inf,
    dtype: type = np.float64,
    doc: str = "",
) -> Any:
    """A fixed-shape numeric array field. ``-1`` in ``shape`` matches any length on that axis."""
    return field(
        metadata={"kind": "array", "shape": tuple(shape), "low": low, "high": high, "dtype": dtype, "doc": doc}
    )


def scalar_field(
    *,
    low: float = -math.inf,
    high: float = math.inf,
    integer: bool = False,
    choices: Sequence[float] | None = None,
    doc: str = "",
) -> Any:
    """A finite scalar field (float, or int with ``integer=True``), optionally from ``choices``."""
    return field(
        metadata={
            "kind": "scalar",
            "low": low,
            "high": high,
            "integer": integer,
            "choices": None if choices is None else tuple(choices),
            "doc": doc,
        }
    )


@dataclass(frozen=True, eq=False)
class Task:
    """Base class of every task value. Subclasses are frozen dataclasses of declared fields.

    Subclasses may override :meth:`_check` for constraints across fields (raise
    :class:`InvalidTaskError` naming the field).
    """

    type_name: ClassVar[str] = "Task"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.type_name = cls.__name__
        if cls.__name__ in _TASK_TYPES and _TASK_TYPES[cls.__name__].__module__ != cls.__module__:
            raise TypeError(f"task type name {cls.__name__!r} is already used by {_TASK_TYPES[cls.__name__]}")
        _TASK_TYPES[cls.__name__] = cls

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            meta = f.metadata
            if "kind" not in meta:
                continue
            raw = getattr(self, f.name)
            value = _convert_array(f.name, raw, meta) if meta["kind"] == "array" else _convert_scalar(f.name, raw, meta)
            object.__setattr__(self, f.name, value)
        self._check()

    def _check(self) -> None:
        """Cross-field constraints; the base class has none."""

    # --- value semantics -------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)
        )

    def __hash__(self) -> int:
        return hash(self.to_json())

    # --- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"type": <class name>, <field>: <number or nested list>, ...}``."""
        out: dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):
            out[f.name] = _to_jsonable(getattr(self, f.name))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        """Rebuild a task from :meth:`to_dict`. Called on :class:`Task`, dispatches on ``"type"``."""
        if not isinstance(data, Mapping):
            raise InvalidTaskError("type", data, "a task must be a JSON object")
        data = dict(data)
        type_name = data.pop("type", cls.__name__ if cls is not Task else None)
        target = _TASK_TYPES.get(str(type_name))
        if target is None:
            raise InvalidTaskError("type", type_name, f"unknown task type; known: {sorted(_TASK_TYPES)}")
        if cls is not Task and not issubclass(target, cls):
            raise InvalidTaskError("type", type_name, f"expected a {cls.__name__}")
        names = {f.name for f in dataclasses.fields(target)}
        unknown = set(data) - names
        if unknown:
            raise InvalidTaskError(sorted(unknown)[0], data[sorted(unknown)[0]], f"not a field of {target.__name__}")
        missing = names - set(data)
        if missing:
            raise InvalidTaskError(sorted(missing)[0], None, f"missing from the {target.__name__} JSON")
        return target(**data)  # type: ignore[return-value]

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        """Decode a task from :meth:`to_json` text; :class:`InvalidTaskError` for anything else."""
        return cls.from_dict(_loads(text))

    def replace(self: T, **changes: Any) -> T:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def task_from_json(text: str) -> Task:
    """Decode any registered task type from its JSON."""
    return Task.from_json(text)


def tasks_to_json(tasks: Sequence[Task]) -> str:
    """A JSON array of tasks (as :meth:`Task.to_dict`)."""
    return json.dumps([t.to_dict() for t in tasks])


def tasks_from_json(text: str) -> list[Task]:
    """Decode a JSON array of tasks (:func:`tasks_to_json`); :class:`InvalidTaskError` otherwise."""
    data = _loads(text)
    if not isinstance(data, list):
        raise InvalidTaskError("json", text, f"expected a JSON array of tasks, got a JSON {type(data).__name__}")
    return [Task.from_dict(d) for d in data]


def _loads(text: Any) -> Any:
    if not isinstance(text, (str, bytes, bytearray)):
        raise InvalidTaskError("json", text, f"expected JSON text (str), got {type(text).__name__}")
    try:
        return json.loads(text)
    except ValueError as e:  # JSONDecodeError, and UnicodeDecodeError for bytes
        raise InvalidTaskError("json", text, f"not valid JSON ({e})") from None


# --- conversion and validation ---------------------------------------------------------------
def _to_jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _convert_array(name: str, raw: Any, meta: Mapping[str, Any]) -> np.ndarray:
    dtype = meta["dtype"]
    try:
        arr = np.array(raw, dtype=dtype, copy=True)
    except (TypeError, ValueError):
        raise InvalidTaskError(name, raw, f"must be numeric convertible to {np.dtype(dtype).name}") from None
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise InvalidTaskError(name, _to_jsonable(raw) if isinstance(raw, np.ndarray) else raw, "must be finite (no NaN/inf)")
    if np.issubdtype(np.dtype(dtype), np.integer):
        as_float = np.asarray(raw, dtype=np.float64)
        if not np.array_equal(as_float, arr):
            raise InvalidTaskError(name, raw, "must be integers")
    shape = meta["shape"]
    if arr.ndim != len(shape) or any(want not in (-1, got) for want, got in zip(shape, arr.shape, strict=False)):
        raise InvalidTaskError(name, _short(arr), f"must have shape {shape}, got {arr.shape}")
    low, high = meta["low"], meta["high"]
    if arr.size and ((arr < low).any() or (arr > high).any()):
        raise InvalidTaskError(name, _short(arr), f"values must lie in [{low}, {high}]")
    arr.setflags(write=False)
    return arr


def _convert_scalar(name: str, raw: Any, meta: Mapping[str, Any]) -> float | int:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, np.integer, np.floating)):
        raise InvalidTaskError(name, raw, "must be a number")
    value: float | int = float(raw)
    if not math.isfinite(value):
        raise InvalidTaskError(name, raw, "must be finite (no NaN/inf)")
    if meta["integer"]:
        if value != int(value):
            raise InvalidTaskError(name, raw, "must be an integer")
        value = int(value)
    if not meta["low"] <= value <= meta["high"]:
        raise InvalidTaskError(name, raw, f"must lie in [{meta['low']}, {meta['high']}]")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise InvalidTaskError(name, raw, f"must be one of {list(meta['choices'])}")
    return value


def _short(arr: np.ndarray) -> Any:
    return arr.tolist() if arr.size <= 8 else f"array(shape={arr.shape})"
