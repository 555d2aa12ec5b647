"""One logger with namespaced keys and pluggable outputs (stdout, JSONL, TensorBoard).

Keys are ``namespace/name`` with the namespaces ``rollout/`` (sampled data), ``train/`` (the
update), ``adapt/`` (inner-loop adaptation), ``eval/`` (held-out evaluation) and ``time/``
(phase timings), as in stable-baselines3's ``logger.record("train/approx_kl", ...)``. The bookkeeping keys
``iteration``, ``env_steps`` and ``wall_s`` are the only keys without a namespace.

>>> import io
>>> out = io.StringIO()
>>> log = Logger([JSONLOutput(out)])
>>> log.record("rollout/return", -12.5)
>>> log.record("train/loss", 0.25)
>>> _ = log.dump({"iteration": 0, "env_steps": 400, "wall_s": 0.1})
>>> out.getvalue()
'{"iteration": 0, "env_steps": 400, "wall_s": 0.1, "rollout/return": -12.5, "train/loss": 0.25}\\n'
>>> log.record("loss", 1.0)
Traceback (most recent call last):
...
metarl.errors.ConfigError: metric key 'loss' needs a namespace: one of rollout/, train/, adapt/, eval/, time/
"""

from __future__ import annotations

import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from metarl.errors import ConfigError

__all__ = [
    "NAMESPACES",
    "BOOKKEEPING",
    "Logger",
    "Output",
    "JSONLOutput",
    "StdoutOutput",
    "TensorBoardOutput",
    "read_metrics",
    "truncate_metrics",
]

NAMESPACES = ("rollout/", "train/", "adapt/", "eval/", "time/")
BOOKKEEPING = ("iteration", "env_steps", "wall_s")


def _scalar(key: str, value: Any) -> float | int:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ConfigError(f"metric {key!r} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    elif isinstance(value, np.ndarray | np.generic):
        if np.size(value) != 1:
            raise ConfigError(f"metric {key!r} must be a scalar, got an array of shape {np.shape(value)}")
        value = np.asarray(value).item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"metric {key!r} must be a number, got {value!r}")
    return value


class Output(ABC):
    """Where a logger writes each dumped row."""

    @abstractmethod
    def write(self, row: Mapping[str, float | int], step: int) -> None: ...

    def close(self) -> None:  # noqa: B027 (optional hook)
        pass


class JSONLOutput(Output):
    """One JSON object per line; NaN/inf are written as ``null`` (strict JSON), flushed per line."""

    def __init__(self, target: str | os.PathLike | IO[str]) -> None:
        if isinstance(target, (str, os.PathLike)):
            self._file: IO[str] = open(target, "a", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        else:
            self._file, self._owned = target, False

    def write(self, row: Mapping[str, float | int], step: int) -> None:
        clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in row.items()}
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._owned:
            self._file.close()


class StdoutOutput(Output):
    """A compact ``key=value`` line every ``every`` dumps, through a rich console if given."""

    def __init__(self, every: int = 1, console: Any = None, keys: Iterable[str] | None = None) -> None:
        self.every = max(1, int(every))
        self.console = console
        self.keys = list(keys) if keys is not None else None

    def write(self, row: Mapping[str, float | int], step: int) -> None:
        if step % self.every:
            return
        items = [(k, row[k]) for k in (self.keys or row) if k in row]
        text = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)
        if self.console is not None:
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)
        else:
            print(text, flush=True)


class TensorBoardOutput(Output):
    """TensorBoard event files via ``torch.utils.tensorboard``.

    ``purge_step`` discards events at steps >= it that an earlier, killed process wrote after its
    last checkpoint, so a resumed run's curves have no duplicated tail.
    """

    def __init__(self, log_dir: str | os.PathLike, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def write(self, row: Mapping[str, float | int], step: int) -> None:
        for k, v in row.items():
            if k != "iteration":
                self.writer.add_scalar(k, v, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Logger:
    """Collects namespaced scalars with :meth:`record` and writes a row to every output on :meth:`dump`."""

    def __init__(self, outputs: Iterable[Output] = (), step: int = 0) -> None:
        self.outputs = list(outputs)
        self.step = int(step)
        self._row: dict[str, float | int] = {}

    def record(self, key: str, value: Any) -> None:
        """Record ``key`` (``namespace/name``) for the current row; a later record overwrites."""
        if not isinstance(key, str) or (key not in BOOKKEEPING and not key.startswith(NAMESPACES)):
            raise ConfigError(f"metric key {key!r} needs a namespace: one of {', '.join(NAMESPACES)}")
        self._row[key] = _scalar(key, value)

    def record_dict(self, metrics: Mapping[str, Any]) -> None:
        for k, v in metrics.items():
            self.record(k, v)

    def dump(self, bookkeeping: Mapping[str, Any] | None = None) -> dict[str, float | int]:
        """Write ``bookkeeping`` (first) and the recorded keys as one row; advance the step."""
        row: dict[str, float | int] = {k: _scalar(k, v) for k, v in (bookkeeping or {}).items()}
        row.update(self._row)
        for out in self.outputs:
            out.write(row, self.step)
        self._row = {}
        self.step += 1
        return row

    def close(self) -> None:
        for out in self.outputs:
            out.close()


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl``; a torn last line (a killed writer) is ignored."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ConfigError(f"{path}: line {i + 1} is not valid JSON") from None
    return rows


def truncate_metrics(path: str | os.PathLike, next_iteration: int) -> int:
    """Keep only rows with ``iteration < next_iteration`` (atomically); returns how many were dropped.

    Rows after a run's last checkpoint are re-generated by the resumed run, so dropping them
    makes the file end as a straight run's would.
    """
    path = Path(path)
    rows = read_metrics(path)
    keep = [r for r in rows if r.get("iteration", -1) < next_iteration]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in keep:
            f.write(json.dumps(r) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(rows) - len(keep)
