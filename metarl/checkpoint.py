"""Checkpoints: JSON metadata + tensors in one file, checksummed, written atomically, loaded without pickle.

Format (version 2). A checkpoint file is one header line followed by a ``torch.save`` zip::

    metarl-checkpoint 2 sha256=<64 hex digits of everything after this line>\n
    <torch.save zip of {"format": "metarl-checkpoint", "version": 2,
                        "metadata": "<JSON text>",           # everything that is not a tensor
                        "tensors": {"0": Tensor, "1": ...},  # every tensor, flat
                        "checksums": {"metadata": sha256, "tensors": {"0": sha256, ...}}}>

The zip is read back with ``torch.load(weights_only=True)``, so loading never runs pickled code.
**Verification.** Loading recomputes the SHA-256 of the zip and compares it with the header, so a
changed byte anywhere in the file (tensor data, metadata, zip structure, the header itself) is a
:class:`~metarl.errors.CheckpointError` naming the file, never a silently different model; each
tensor's payload (dtype, shape, bytes) and the metadata text also carry their own SHA-256, checked
after deserialising, which names the tensor that differs. Checkpoints of format version 1
(metarl 0.1.0: a bare zip, no checksums) still load, with a
:class:`~metarl.errors.CheckpointWarning` saying they could not be verified.
:func:`load_latest_checkpoint` falls back from a checkpoint that fails to load to the next older
one, warning which it skipped and why.
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

Writes go to a temporary file in the same folder (``.<name>.<random>.tmp``), are fsynced, then
``os.replace``d onto the final name: a reader (or a resumed run after SIGKILL) sees the old file
or the new one, never a torn one. Temporary files a killed write left behind never match the
checkpoint name pattern; the next save in that folder removes them (:func:`remove_stray_temps`).

>>> import tempfile, torch
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "ckpt.pt"
>>> _ = save_checkpoint(path, {"w": torch.ones(2), "step": 3, "nested": [{"b": torch.zeros(1)}]})
>>> state = load_checkpoint(path)
>>> state["step"], state["w"].tolist(), state["nested"][0]["b"].tolist()
(3, [1.0, 1.0], [0.0])
"""

from __future__ import annotations

import hashlib
import io
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

from metarl.errors import CheckpointError, CheckpointWarning, SpaceMismatchError

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
    "load_latest_checkpoint",
    "remove_stray_temps",
    "TRAINING_KEYS",
]

FORMAT = "metarl-checkpoint"
VERSION = 2
_HEADER = re.compile(rb"^metarl-checkpoint (\d+) sha256=([0-9a-f]{64})\n")
_ZIP_MAGIC = b"PK\x03\x04"
_TEMP = re.compile(r"^\..+\.tmp$")
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
    metadata = json.dumps(_split(dict(state), tensors, "state"), allow_nan=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "metadata": metadata,
        "tensors": tensors,
        "checksums": {"metadata": _sha256_text(metadata), "tensors": {k: _sha256_tensor(t) for k, t in tensors.items()}},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stray_temps(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"%s %d sha256=%s\n" % (FORMAT.encode(), VERSION, hashlib.sha256(body).hexdigest().encode()))
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sha256_tensor(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and raw bytes (so a reinterpreted payload differs too)."""
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    flat = t.detach().cpu().contiguous().reshape(-1)
    h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return h.hexdigest()


def remove_stray_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the ``.<name>.<random>.tmp`` files a killed atomic write left in ``folder``; returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        if _TEMP.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


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
    """Read and verify a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``).

    Raises:
        CheckpointError: the file is missing, truncated, corrupt (a checksum differs), not a
            metarl checkpoint, of a newer version, or lacks one of the ``required`` top-level keys
            (the file and the reason are named in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} cannot be read: {e.strerror or e}") from None
    header = _HEADER.match(data[:200])
    if header is not None:
        version = int(header.group(1))
        if version > VERSION:
            raise CheckpointError(f"checkpoint {path} has format version {version}; this metarl reads <= {VERSION}")
        body = data[header.end():]
        digest = hashlib.sha256(body).hexdigest()
        if digest != header.group(2).decode():
            raise CheckpointError(
                f"checkpoint {path} is corrupt (truncated or changed after it was written): the SHA-256 of "
                f"its contents is {digest[:16]}..., its header records {header.group(2).decode()[:16]}..."
            )
    elif data.startswith(_ZIP_MAGIC):  # format version 1: a bare zip without checksums
        body, version = data, None
    elif data.startswith(FORMAT.encode()[:8]):
        raise CheckpointError(f"checkpoint {path} is corrupt: its header line is damaged ({data[:40]!r}...)")
    else:
        body, version = data, None
    payload = _torch_load(body, path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is not a metarl checkpoint: missing 'format': {FORMAT!r} "
            f"(found {type(payload).__name__}{' with keys ' + str(sorted(map(str, payload))) if isinstance(payload, dict) else ''})"
        )
    inner = payload.get("version")
    if not isinstance(inner, int) or inner > VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {inner!r}; this metarl reads <= {VERSION}")
    if version is not None and inner != version:
        raise CheckpointError(f"checkpoint {path} is corrupt: header says version {version}, contents say {inner}")
    if version is None and inner >= 2:
        raise CheckpointError(f"checkpoint {path} is corrupt: its checksum header line is missing")
    missing = [k for k in ("metadata", "tensors") + (("checksums",) if inner >= 2 else ()) if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} is missing {missing}")
    if inner >= 2:
        _verify_payload(payload, path)
    else:
        warnings.warn(
            f"checkpoint {path} has format version {inner} (no checksums): loaded without verification; "
            "the next save writes a verified checkpoint",
            CheckpointWarning,
            stacklevel=2,
        )
    try:
        metadata = json.loads(payload["metadata"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} has corrupt metadata: {e}") from None
    state = _join(metadata, payload["tensors"], path)
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is missing {', '.join(map(repr, missing))}")
    return state


def _torch_load(body: bytes, path: Path) -> Any:
    try:
        with warnings.catch_warnings():  # foreign pickles warn about their protocol before failing
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, random bytes: all unreadable here
        # torch's own first line can be a paragraph advising weights_only=False, which a metarl
        # checkpoint never needs: keep its first sentence only.
        first = str(e).strip().splitlines()[0].split(". ")[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated or not a metarl checkpoint): {first}"
        ) from None


def _verify_payload(payload: dict[str, Any], path: Path) -> None:
    """Compare the metadata's and every tensor's SHA-256 with the recorded ones."""
    sums, tensors = payload["checksums"], payload["tensors"]
    if not isinstance(sums, dict) or not isinstance(sums.get("tensors"), dict) or not isinstance(tensors, dict):
        raise CheckpointError(f"checkpoint {path} is corrupt: malformed checksums or tensors")
    if not isinstance(payload["metadata"], str) or _sha256_text(payload["metadata"]) != sums.get("metadata"):
        raise CheckpointError(f"checkpoint {path} is corrupt: its metadata does not match its checksum")
    if set(tensors) != set(sums["tensors"]):
        raise CheckpointError(f"checkpoint {path} is corrupt: its tensors {sorted(tensors)} differ from the checksummed {sorted(sums['tensors'])}")
    for key, t in tensors.items():
        if not isinstance(t, torch.Tensor) or _sha256_tensor(t) != sums["tensors"][key]:
            raise CheckpointError(f"checkpoint {path} is corrupt: tensor {key!r} does not match its checksum")


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


def load_latest_checkpoint(
    folder: str | os.PathLike, *, required: tuple[str, ...] = ()
) -> tuple[Path, dict[str, Any]]:
    """``(path, state)`` of the newest checkpoint in ``folder`` that loads and verifies.

    Each newer checkpoint that fails (corrupt, truncated, ...) is skipped with a
    :class:`~metarl.errors.CheckpointWarning` naming it, the reason and the one used instead.

    Raises:
        CheckpointError: ``folder`` holds no checkpoint, or none verifies (each one's reason listed).
    """
    found = list_checkpoints(folder)
    if not found:
        raise CheckpointError(f"no checkpoint (ckpt-NNNNNN.pt) in {folder}")
    skipped: list[tuple[Path, str]] = []
    for _, path in reversed(found):
        try:
            state = load_checkpoint(path, required=required)
        except CheckpointError as e:
            skipped.append((path, str(e)))
            continue
        for bad, reason in skipped:  # only when falling back; if none verifies, the error lists them
            warnings.warn(f"skipping checkpoint {bad.name}: {reason}; using {path.name}", CheckpointWarning, stacklevel=2)
        return path, state
    reasons = [reason for _, reason in skipped]
    raise CheckpointError(
        f"no checkpoint in {folder} verifies ({len(found)} tried; restore one from a copy, or start the run "
        "over in a new directory): " + "; ".join(reasons)
    )


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
