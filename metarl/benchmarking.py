"""Env throughput measurement shared by ``benchmarks/`` scripts and ``metarl bench throughput``.

Before measuring, ``metarl bench throughput`` checks the estimated memory of each requested size
against the memory available (:func:`check_memory`), so a ``--num-envs`` too large fails with one
line instead of thrashing or being killed.

Throughput is env-steps per second (``num_envs`` sub-env steps per batched step) for a fixed
wall-clock budget, with actions drawn beforehand so only env stepping is timed.

>>> r = env_throughput("metarl/Bandit-v0", 16, mode="native", seconds=0.05)
>>> r.mode, r.num_envs, r.steps_per_s > 0
('native', 16, True)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.errors import ConfigError
from metarl.meta_env import check_count
from metarl.registry import check_env_id

__all__ = ["Throughput", "env_throughput", "MODES", "estimate_bytes", "available_memory", "check_memory"]

#: ``native``: the family's batched env (``vector_entry_point``); ``sync``: Gymnasium
#: ``SyncVectorEnv`` of the same single envs; ``async``: ``AsyncVectorEnv`` (subprocesses).
MODES = ("native", "sync", "async")


@dataclass(frozen=True)
class Throughput:
    env_id: str
    mode: str
    num_envs: int
    env_steps: int
    seconds: float

    @property
    def steps_per_s(self) -> float:
        return self.env_steps / self.seconds


def make_vector(env_id: str, num_envs: int, mode: str, **env_kwargs: Any) -> gym.vector.VectorEnv:
    """A vector env of ``env_id`` in one of :data:`MODES`."""
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    vmode = "vector_entry_point" if mode == "native" else mode
    return gym.make_vec(check_env_id(env_id), num_envs=num_envs, vectorization_mode=vmode, **env_kwargs)


def env_throughput(
    env_id: str, num_envs: int, *, mode: str = "native", seconds: float = 1.0, seed: int = 0, **env_kwargs: Any
) -> Throughput:
    """Step a vector env with pre-drawn random actions for about ``seconds`` and count env-steps."""
    check_count(num_envs, "num_envs")
    if not (isinstance(seconds, (int, float)) and seconds > 0 and seconds < float("inf")):
        raise ConfigError(f"seconds must be a positive finite number, got {seconds!r}")
    env = make_vector(env_id, num_envs, mode, **env_kwargs)
    try:
        env.action_space.seed(seed)
        actions = [env.action_space.sample() for _ in range(8)]
        env.reset(seed=seed)
        env.step(actions[0])  # warm-up: first-call allocations are not throughput
        steps, i = 0, 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            env.step(actions[i % 8])
            i += 1
            steps += num_envs
            now = time.perf_counter()
            if now >= deadline:
                break
        return Throughput(env_id, mode, num_envs, steps, now - start)
    finally:
        env.close()


def ratio_table(env_id: str, sizes: list[int], modes: tuple[str, ...] = ("native", "sync"), seconds: float = 1.0, **env_kwargs: Any) -> list[dict[str, Any]]:
    """Rows ``{env_id, num_envs, <mode>_steps_per_s..., native_over_sync}`` measured in one run."""
    rows = []
    for n in sizes:
        row: dict[str, Any] = {"env_id": env_id, "num_envs": n}
        for mode in modes:
            row[f"{mode}_steps_per_s"] = env_throughput(env_id, n, mode=mode, seconds=seconds, **env_kwargs).steps_per_s
        if "native" in modes and "sync" in modes:
            row["native_over_sync"] = row["native_steps_per_s"] / row["sync_steps_per_s"]
        rows.append(row)
    return rows




# --- memory check ------------------------------------------------------------------------------
#: Per-worker overhead assumed for AsyncVectorEnv (a Python subprocess with numpy/gymnasium loaded).
ASYNC_WORKER_BYTES = 60 * 2**20
#: Python objects of one single env inside a Sync/AsyncVectorEnv (tracemalloc: ~12 KB for Navigation2D).
SYNC_ENV_BYTES = 12 * 2**10


def _footprint(obj: Any, seen: set[int], depth: int = 0) -> int:
    """Bytes of the numpy arrays and MuJoCo buffers reachable from ``obj``'s attributes (a few levels deep)."""
    if id(obj) in seen or depth > 3:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    name = type(obj).__name__
    if name == "MjModel":
        return int(obj.nbuffer)
    if name == "MjData":  # the arena is reserved, not touched: count its high-water mark
        return int(obj.nbuffer + obj.maxuse_arena)
    if isinstance(obj, (list, tuple)):
        return sum(_footprint(x, seen, depth + 1) for x in obj)
    if isinstance(obj, dict):
        return sum(_footprint(x, seen, depth + 1) for x in obj.values())
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(_footprint(x, seen, depth + 1) for x in vars(obj).values())
    return 0


def estimate_bytes(env_id: str, num_envs: int, mode: str = "native", **env_kwargs: Any) -> int:
    """Estimated memory of a ``num_envs`` vector env in ``mode`` plus the benchmark's action buffers.

    Measured from small instances (the footprint of 1 and 5 sub-envs, or of one single env), then
    extrapolated linearly, so nothing of size ``num_envs`` is allocated.
    """
    num_envs = check_count(num_envs, "num_envs")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "native":
        sizes = []
        for n in (1, 5):
            env = make_vector(env_id, n, "native", **env_kwargs)
            try:
                _exercise(env)
                sizes.append(_footprint(env.unwrapped, set()))
                act = env.unwrapped.single_action_space
            finally:
                env.close()
        per_env = max(0.0, (sizes[1] - sizes[0]) / 4)
        total = sizes[0] + per_env * (num_envs - 1)
    else:
        env = gym.make(check_env_id(env_id), **env_kwargs)
        try:
            _exercise(env)
            per_env = _footprint(env.unwrapped, set())
            act = env.action_space
        finally:
            env.close()
        total = (per_env + SYNC_ENV_BYTES) * num_envs + (ASYNC_WORKER_BYTES * num_envs if mode == "async" else 0)
    action_bytes = 8 * num_envs * max(1, int(np.prod(act.shape or (1,)))) * 8  # 8 pre-drawn batches
    return int(total + action_bytes)


def _exercise(env: Any) -> None:
    """Reset and step once, so lazily allocated buffers (MuJoCo's arena) reach their working size."""
    env.action_space.seed(0)
    env.reset(seed=0)
    env.step(env.action_space.sample())


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(env_id: str, sizes: list[int], modes: tuple[str, ...], *, available: int | None = None, **env_kwargs: Any) -> None:
    """Raise :class:`ConfigError` before allocating if a measurement would not fit in memory.

    Each (size, mode) runs alone (its env is closed before the next), so the largest estimate counts.
    """
    available = available_memory() if available is None else available
    if available is None:
        return
    for n in sorted(set(sizes), reverse=True):
        for mode in modes:
            need = estimate_bytes(env_id, n, mode, **env_kwargs)
            if need > available:
                fits = max(1, int(n * available / need))
                raise ConfigError(
                    f"--num-envs {n} for {env_id} ({mode}) needs about {need / 2**30:.3g} GiB but only "
                    f"{available / 2**30:.3g} GiB is available; use at most about {fits:,}"
                )
