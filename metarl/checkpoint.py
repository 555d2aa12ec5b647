"""Checkpoints: JSON metadata + tensors in one file, written atomically, loaded without pickle.

Format (version 1). A checkpoint is one ``torch.save`` file (a zip) holding a plain dict::

    {"format": "metarl-checkpoint", "version": 1,
     "metadata": "<JSON text>",          # everything that is not a tensor
     "tensors": {"0": Tensor, "1": ...}} # every tensor, flat

and is read back with ``torch.load(weights_only=True)``, so loading never runs pickled code.
In the JSON metadata, each tensor of the original nested state is replaced by
``{"__tensor__": "<key>"}`` and each numpy array by ``{"__ndarray__": "<key>", "dtype": ...}``; a
dict with int keys (a torch optimizer's state) becomes ``{"__items__": [[key, value], ...]}``;
tuples come back as lists (except the RNG states this module restores itself). The metadata of a
training checkpoint (:func:`training_state`) holds::

    iteration      next iteration to run (the checkpoint is taken after iteration - 1)
    env_steps      cumulative env steps
    wall_s         cumulative training wall time
    logger_step    the logger's step
    rng            python ``random``, numpy global and torch global (and CUDA) RNG states
    spaces         observation/action spaces of the env the agent was built for
    agent          Agent.state_dict() (its own RNG and task-sampler states included)

Writes go to a temporary file in the same folder, are fsynced, then ``os.replace``d onto the
final name: a reader (or a resumed run after SIGKILL) sees the old file or the new one, never a
torn one.

>>> import tempfile, torch
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "ckpt.pt"
>>> _ = save_checkpoint(path, {"w": torch.ones(2), "step": 3, "nested": [{"b": torch.zeros(1)}]})
>>> state = load_checkpoint(path)
>>> state["step"], state["w"].tolist(), state["nested"][0]["b"].tolist()
(3, [1.0, 1.0], [0.0])
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarl.errors import CheckpointError, SpaceMismatchError

__all__ = [
    "FORMAT",
    "VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_states",
    "restore_rng_states",
    "check_spaces",
    "checkpoint_path",
    "list_checkpoints",
    "latest_checkpoint",
    "TRAINING_KEYS",
]

FORMAT = "metarl-checkpoint"
VERSION = 1
#: Keys every training checkpoint's metadata must hold.
TRAINING_KEYS = ("iteration", "env_steps", "wall_s", "logger_step", "rng", "spaces", "agent")
_NAME = re.compile(r"^ckpt-(\d{6,})\.pt$")


# --- splitting nested state into JSON + tensors -------------------------------------------------
def _split(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = obj.detach().cpu().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = str(len(tensors))
        arr = obj.astype(np.int64) if obj.dtype.kind == "u" else obj  # torch lacks most uint dtypes
        tensors[key] = torch.from_numpy(np.ascontiguousarray(arr)).clone()
        return {"__ndarray__": key, "dtype": obj.dtype.str}
    if isinstance(obj, Mapping):
        if any(not isinstance(k, str) for k in obj):
            # e.g. torch optimizer state keyed by parameter index: JSON objects need string keys.
            for k in obj:
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise CheckpointError(f"state key {k!r} at {where} is neither a string nor an int")
            return {"__items__": [[k, _split(v, tensors, f"{where}[{k!r}]")] for k, v in obj.items()]}
        out = {}
        for k, v in obj.items():
            if k.startswith("__") and k.endswith("__"):
                raise CheckpointError(f"state key {k!r} at {where} is reserved by the checkpoint format")
            out[k] = _split(v, tensors, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_split(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CheckpointError(
        f"state value at {where} has type {type(obj).__name__}; checkpoints hold tensors, arrays and "
        "JSON values (dict/list/str/int/float/bool/None) only"
    )


def _join(obj: Any, tensors: Mapping[str, torch.Tensor], path: Path) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj or "__ndarray__" in obj:
            key = obj.get("__tensor__", obj.get("__ndarray__"))
            if key not in tensors:
                raise CheckpointError(f"checkpoint {path} is missing tensor {key!r} referenced by its metadata")
            if "__ndarray__" in obj:
                return tensors[key].numpy().astype(np.dtype(obj["dtype"]))
            return tensors[key]
        if "__items__" in obj:
            return {k: _join(v, tensors, path) for k, v in obj["__items__"]}
        return {k: _join(v, tensors, path) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, tensors, path) for v in obj]
    return obj


# --- files ------------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` (nested dicts/lists of tensors, arrays and JSON values) atomically to ``path``."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    metadata = _split(dict(state), tensors, "state")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "metadata": json.dumps(metadata, allow_nan=True),
        "tensors": tensors,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:  # make the rename itself durable (POSIX); not possible on every platform
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``).

    Raises:
        CheckpointError: the file is missing, truncated, not a metarl checkpoint, of a newer
            version, or lacks one of the ``required`` top-level keys (all named in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # foreign pickles warn about their protocol before failing
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, random bytes: all unreadable here
        # torch's own first line can be a paragraph advising weights_only=False, which a metarl
        # checkpoint never needs: keep its first sentence only.
        first = str(e).strip().splitlines()[0].split(". ")[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated or not a metarl checkpoint): {first}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is not a metarl checkpoint: missing 'format': {FORMAT!r} "
            f"(found {type(payload).__name__}{' with keys ' + str(sorted(map(str, payload))) if isinstance(payload, dict) else ''})"
        )
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {version!r}; this metarl reads <= {VERSION}")
    missing = [k for k in ("metadata", "tensors") if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} is missing {missing}")
    try:
        metadata = json.loads(payload["metadata"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} has corrupt metadata: {e}") from None
    state = _join(metadata, payload["tensors"], path)
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is missing {', '.join(map(repr, missing))}")
    return state


def checkpoint_path(folder: str | os.PathLike, iteration: int) -> Path:
    """``folder/ckpt-<iteration:06d>.pt``: the checkpoint taken before ``iteration`` runs."""
    return Path(folder) / f"ckpt-{iteration:06d}.pt"


def list_checkpoints(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of the checkpoints in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(folder: str | os.PathLike) -> Path:
    """The newest checkpoint in ``folder``, or :class:`CheckpointError` if there is none."""
    found = list_checkpoints(folder)
    if not found:
        raise CheckpointError(f"no checkpoint (ckpt-NNNNNN.pt) in {folder}")
    return found[-1][1]


# --- RNG states -------------------------------------------------------------------------------
def capture_rng_states() -> dict[str, Any]:
    """Python ``random``, numpy global and torch global (CPU and CUDA) RNG states."""
    version, internal, gauss = random.getstate()
    states: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss},
        "numpy": np.random.get_state(legacy=False),  # noqa: NPY002 (the global RNG itself is saved/seeded here)
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch_cuda"] = list(torch.cuda.get_rng_state_all())
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_states`."""
    try:
        py = states["python"]
        random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
        np.random.set_state(dict(states["numpy"]))  # noqa: NPY002 (the global RNG itself is saved/seeded here)
        torch.set_rng_state(states["torch"].to(torch.uint8))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint RNG states are incomplete or corrupt: {e!r}") from None
    if "torch_cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in states["torch_cuda"]])


# --- spaces -------------------------------------------------------------------------------------
def check_spaces(saved: Mapping[str, str], current: Mapping[str, str], *, source: str) -> None:
    """Raise :class:`SpaceMismatchError` listing both signatures if ``saved`` != ``current``."""
    keys = sorted(set(saved) & set(current))
    diff = [k for k in keys if saved[k] != current[k]]
    if diff:
        lines = "; ".join(f"{k}: checkpoint {saved[k]} vs env {current[k]}" for k in diff)
        raise SpaceMismatchError(f"{source} was saved for different spaces than the env's: {lines}")
