"""Env throughput measurement shared by ``benchmarks/`` scripts and ``metarl bench throughput``.

Throughput is env-steps per second (``num_envs`` sub-env steps per batched step) for a fixed
wall-clock budget, with actions drawn beforehand so only env stepping is timed.

>>> r = env_throughput("metarl/Bandit-v0", 16, mode="native", seconds=0.05)
>>> r.mode, r.num_envs, r.steps_per_s > 0
('native', 16, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from metarl.errors import ConfigError
from metarl.registry import check_env_id

__all__ = ["Throughput", "env_throughput", "MODES"]

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
    if num_envs < 1 or seconds <= 0:
        raise ConfigError(f"num_envs must be >= 1 and seconds > 0, got {num_envs}, {seconds}")
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


