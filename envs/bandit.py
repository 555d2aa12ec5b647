"""Multi-armed Bernoulli bandits (RL², Duan et al. 2016, §3.1 "Multi-armed bandits").

A task is a vector of ``num_arms`` success probabilities, each drawn ``U[0, 1]``; pulling arm
``a`` pays 1 with probability ``p[a]``, else 0. One episode is ``horizon`` pulls (the RL² paper
uses k ∈ {5, 10, 50} arms and n ∈ {10, 100, 500} pulls; defaults k = 5, n = 100). The bandit has a
single state, so the observation is a constant ``[0.]``: what an agent learns it learns from its
own actions and rewards (the RL² trial wrapper feeds those back).

Default task (for plain ``gym.make`` users): the first held-out task. Arm probabilities outside
``[0, 1]`` (and a task with a different number of arms than the env) are rejected with
:class:`~metarl.errors.InvalidTaskError`: they are not Bernoulli parameters.

>>> import gymnasium as gym, metarl.envs
>>> env = gym.make("metarl/Bandit-v0", num_arms=3, horizon=2)
>>> _ = env.reset(seed=0, options={"task": {"type": "BanditTask", "probs": [0.0, 1.0, 0.0]}})
>>> env.step(1)[1:4]
(1.0, False, False)
>>> env.step(0)[1:4]
(0.0, False, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from metarl.errors import ConfigError, InvalidTaskError
from metarl.meta_env import BatchedMetaEnv, SingleMetaEnv, TaskDistribution, check_count
from metarl.portable import uniform
from metarl.tasks import Task, array_field

__all__ = ["BanditTask", "BanditDistribution", "BanditVecEnv", "BanditEnv"]


@dataclass(frozen=True, eq=False)
class BanditTask(Task):
    """Success probability of each arm."""

    probs: np.ndarray = array_field((-1,), low=0.0, high=1.0, doc="Bernoulli p of each arm")

    def _check(self) -> None:
        if self.probs.size < 2:
            raise InvalidTaskError("probs", self.probs.tolist(), "a bandit needs at least 2 arms")


class BanditDistribution(TaskDistribution[BanditTask]):
    """Arm probabilities i.i.d. ``U[0, 1]``."""

    task_type = BanditTask

    def __init__(self, num_arms: int = 5) -> None:
        if isinstance(num_arms, bool) or not isinstance(num_arms, (int, np.integer)) or num_arms < 2:
            raise ConfigError(f"num_arms must be an int >= 2, got {num_arms!r}")
        self.num_arms = int(num_arms)

    def sample(self, rng: np.random.Generator, n: int) -> list[BanditTask]:
        # Exactly rng.random(): the same bits on every machine (metarl.portable).
        return [BanditTask(probs=p) for p in uniform(rng, 0.0, 1.0, (n, self.num_arms))]

    def contains(self, task: BanditTask) -> bool:
        return task.probs.shape == (self.num_arms,)

    def check(self, task):  # type: ignore[override]
        task = super().check(task)
        if task.probs.shape != (self.num_arms,):
            raise InvalidTaskError("probs", task.probs.tolist(), f"this env has {self.num_arms} arms")
        return task

    def relabel(self, task: BanditTask, rng: np.random.Generator) -> BanditTask:
        """The arms in a random order (i.i.d. arms: the distribution does not change)."""
        return BanditTask(probs=task.probs[rng.permutation(task.probs.size)])

    def held_out_key(self) -> str | None:
        return f"Bandit-v0-k{self.num_arms}" if self.num_arms in (5, 10, 50) else None


class BanditVecEnv(BatchedMetaEnv[BanditTask]):
    """Native batched bandits: probabilities ``[N, k]``; one uniform draw per sub-env per pull."""

    def __init__(self, num_envs: int = 1, *, num_arms: int = 5, horizon: int = 100, **kwargs) -> None:
        num_envs = check_count(num_envs, "num_envs")  # before any [num_envs, ...] array
        kwargs.pop("max_episode_steps", None)  # the horizon is this family's time limit
        dist = BanditDistribution(num_arms)
        self._probs = np.zeros((num_envs, dist.num_arms))
        self._rows = np.arange(num_envs)
        super().__init__(
            num_envs,
            dist,
            max_episode_steps=horizon,
            single_observation_space=spaces.Box(0.0, 1.0, (1,), np.float32),
            single_action_space=spaces.Discrete(dist.num_arms),
            **kwargs,
        )
        self.num_arms = dist.num_arms
        self.horizon = self.max_episode_steps
        self._obs = np.zeros((num_envs, 1), dtype=np.float32)

    def _apply_tasks(self, idx: np.ndarray, tasks: Sequence[BanditTask]) -> None:
        self._probs[idx] = np.stack([t.probs for t in tasks])

    def _reset_state(self, mask: np.ndarray) -> None:
        pass  # a bandit has no state

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self._probs[self._rows, actions]
        reward = (self.rng.random(self.num_envs) < p).astype(np.float64)
        return reward, np.zeros(self.num_envs, dtype=bool)

    def _observe(self) -> np.ndarray:
        return self._obs.copy()


class BanditEnv(SingleMetaEnv[BanditTask]):
    __doc__ = __doc__
    batched_cls = BanditVecEnv
