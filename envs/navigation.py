"""2-D point navigation to a goal (MAML, Finn et al. 2017, §5.2 "2D Navigation").

A point starts at the origin; the observation is its position, the action a velocity command
clipped to ``[-0.1, 0.1]`` per axis, the reward the negative Euclidean distance to the goal
``-‖p - g‖₂``, and the horizon ``H = 100``. An episode terminates early when the point is within
0.01 of the goal on both axes. Goals are drawn from ``U[-0.5, 0.5]²``. Facts from the paper and
its reference code (``rllab/envs/point_env_randgoal.py`` in cbfinn/maml_rl).

Default task (for plain ``gym.make`` users): the first held-out task. Goals outside
``goal_range`` are allowed (any finite point: an extrapolation task, possibly out of reach in
``H`` steps); ``goal_range`` only bounds what :meth:`sample_tasks` draws.

>>> import gymnasium as gym, metarl.envs
>>> env = gym.make("metarl/Navigation2D-v0")
>>> task = env.unwrapped.sample_tasks(1, seed=0)[0]
>>> obs, _ = env.reset(seed=0, options={"task": task})
>>> obs
array([0., 0.], dtype=float32)
>>> obs, reward, terminated, truncated, _ = env.step([0.5, 0.0])   # clipped to 0.1
>>> obs
array([0.1, 0. ], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from metarl.errors import ConfigError
from metarl.meta_env import (
    BatchedMetaEnv,
    SingleMetaEnv,
    TaskDistribution,
    check_count,
    check_range,
)
from metarl.portable import uniform
from metarl.tasks import Task, array_field

__all__ = ["Navigation2DTask", "Navigation2DDistribution", "Navigation2DVecEnv", "Navigation2DEnv"]


@dataclass(frozen=True, eq=False)
class Navigation2DTask(Task):
    """A goal position in the plane."""

    goal: np.ndarray = array_field((2,), doc="goal position (x, y)")


class Navigation2DDistribution(TaskDistribution[Navigation2DTask]):
    """Goals ``U[low, high]²``; MAML uses ``(-0.5, 0.5)``."""

    task_type = Navigation2DTask

    def __init__(self, goal_range: Sequence[float] = (-0.5, 0.5)) -> None:
        low, high = check_range("goal_range", goal_range)
        self.low, self.high = low, high

    def sample(self, rng: np.random.Generator, n: int) -> list[Navigation2DTask]:
        goals = uniform(rng, self.low, self.high, (n, 2))  # exact on every machine (metarl.portable)
        return [Navigation2DTask(goal=g) for g in goals]

    def contains(self, task: Navigation2DTask) -> bool:
        return bool(((task.goal >= self.low) & (task.goal <= self.high)).all())

    def held_out_key(self) -> str | None:
        return "Navigation2D-v0" if (self.low, self.high) == (-0.5, 0.5) else None


class Navigation2DVecEnv(BatchedMetaEnv[Navigation2DTask]):
    """Native batched Navigation2D: positions ``[N, 2]``, goals ``[N, 2]``, pure numpy."""

    def __init__(
        self,
        num_envs: int = 1,
        *,
        goal_range: Sequence[float] = (-0.5, 0.5),
        max_episode_steps: int = 100,
        action_bound: float = 0.1,
        goal_tolerance: float = 0.01,
        **kwargs,
    ) -> None:
        num_envs = check_count(num_envs, "num_envs")  # before any [num_envs, ...] array
        if not (np.isfinite(action_bound) and action_bound > 0):
            raise ConfigError(f"action_bound must be a positive number, got {action_bound!r}")
        self.action_bound = float(action_bound)
        self.goal_tolerance = float(goal_tolerance)
        self._pos = np.zeros((num_envs, 2))
        reach = np.float32(max_episode_steps * self.action_bound) if isinstance(max_episode_steps, int) else np.inf
        self._goals = np.zeros((num_envs, 2))
        super().__init__(
            num_envs,
            Navigation2DDistribution(goal_range),
            max_episode_steps=max_episode_steps,
            # Reachable positions: at most max_episode_steps moves of action_bound from the origin.
            single_observation_space=spaces.Box(-reach, reach, (2,), np.float32),
            # Finite actions outside the box are clipped into it, as in the reference code.
            single_action_space=spaces.Box(-self.action_bound, self.action_bound, (2,), np.float32),
            **kwargs,
        )

    def _apply_tasks(self, idx: np.ndarray, tasks: Sequence[Navigation2DTask]) -> None:
        self._goals[idx] = np.stack([t.goal for t in tasks])

    def _reset_state(self, mask: np.ndarray) -> None:
        self._pos[mask] = 0.0

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._pos += np.clip(actions, -self.action_bound, self.action_bound)
        delta = self._pos - self._goals
        reward = -np.sqrt((delta**2).sum(axis=1))
        terminated = (np.abs(delta) < self.goal_tolerance).all(axis=1)
        return reward, terminated

    def _observe(self) -> np.ndarray:
        return self._pos.astype(np.float32)


class Navigation2DEnv(SingleMetaEnv[Navigation2DTask]):
    __doc__ = __doc__
    batched_cls = Navigation2DVecEnv

