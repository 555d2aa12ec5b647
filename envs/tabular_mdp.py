"""Random tabular MDPs (RL², Duan et al. 2016, §3.2 "Tabular MDPs").

Each task is an MDP with ``num_states`` (10) states and ``num_actions`` (5) actions: transition
rows ``P(·|s, a) ~ Dirichlet(1)`` and mean rewards ``μ(s, a) ~ N(1, 1)``; a step in ``(s, a)``
pays ``r ~ N(μ(s, a), 1)``. Every episode starts in state 0 and lasts ``max_episode_steps``
(10) steps; the observation is the one-hot state.

Default task (for plain ``gym.make`` users): the first held-out task. Any finite mean rewards are
allowed (not only typical ``N(1, 1)`` draws); transition rows must be probability vectors
(entries in ``[0, 1]`` summing to 1) of the env's sizes, else
:class:`~metarl.errors.InvalidTaskError`.

>>> import gymnasium as gym, metarl.envs
>>> env = gym.make("metarl/TabularMDP-v0")
>>> obs, _ = env.reset(seed=0)
>>> obs.tolist()
[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from metarl.errors import ConfigError, InvalidTaskError
from metarl.meta_env import (
    BatchedMetaEnv,
    SingleMetaEnv,
    TaskDistribution,
    check_count,
    held_out_rng,
)
from metarl.portable import normal, unit_spacings
from metarl.tasks import Task, array_field

__all__ = ["TabularMDPTask", "TabularMDPDistribution", "TabularMDPVecEnv", "TabularMDPEnv"]


@dataclass(frozen=True, eq=False)
class TabularMDPTask(Task):
    """Transition probabilities ``[S, A, S]`` and mean rewards ``[S, A]``."""

    transitions: np.ndarray = array_field((-1, -1, -1), low=0.0, high=1.0, doc="P[s, a, s']")
    mean_rewards: np.ndarray = array_field((-1, -1), doc="mu[s, a]")

    def _check(self) -> None:
        s, a, s2 = self.transitions.shape
        if s != s2 or s < 1 or a < 1:
            raise InvalidTaskError("transitions", f"shape {self.transitions.shape}", "must have shape [S, A, S]")
        if self.mean_rewards.shape != (s, a):
            raise InvalidTaskError("mean_rewards", f"shape {self.mean_rewards.shape}", f"must have shape ({s}, {a})")
        sums = self.transitions.sum(axis=2)
        if not np.allclose(sums, 1.0, atol=1e-6):
            bad = np.unravel_index(np.argmax(np.abs(sums - 1.0)), sums.shape)
            raise InvalidTaskError(
                "transitions", f"row {tuple(int(i) for i in bad)} sums to {sums[bad]:.6g}", "each P[s, a, :] must sum to 1"
            )


class TabularMDPDistribution(TaskDistribution[TabularMDPTask]):
    """``P(·|s,a) ~ Dirichlet(1)``, ``μ(s,a) ~ N(1, 1)``."""

    task_type = TabularMDPTask

    def __init__(self, num_states: int = 10, num_actions: int = 5) -> None:
        for name, v in (("num_states", num_states), ("num_actions", num_actions)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"{name} must be a positive int, got {v!r}")
        self.num_states, self.num_actions = int(num_states), int(num_actions)

    def sample(self, rng: np.random.Generator, n: int) -> list[TabularMDPTask]:
        S, A = self.num_states, self.num_actions
        P = rng.dirichlet(np.ones(S), size=(n, S, A))
        mu = rng.normal(1.0, 1.0, size=(n, S, A))
        return [TabularMDPTask(transitions=P[i], mean_rewards=mu[i]) for i in range(n)]

    def generate_held_out(self) -> list[TabularMDPTask]:
        """The shipped size (10 × 5): :meth:`sample`'s recipe (its file defines the tasks). Other
        sizes: exact on every machine (numpy's ``dirichlet``/``normal`` call libm in their
        tails): rows are spacings of sorted uniforms, means the polar method in :mod:`decimal`
        (:mod:`metarl.portable`)."""
        if self.held_out_key() is not None:
            return super().generate_held_out()
        rng = held_out_rng(self.held_out_seed)
        n, S, A = self.num_held_out, self.num_states, self.num_actions
        P = unit_spacings(rng, S, (n, S, A))
        mu = normal(rng, 1.0, 1.0, (n, S, A))
        return [TabularMDPTask(transitions=P[i], mean_rewards=mu[i]) for i in range(n)]

    def contains(self, task: TabularMDPTask) -> bool:
        return task.transitions.shape == (self.num_states, self.num_actions, self.num_states)

    def check(self, task):  # type: ignore[override]
        task = super().check(task)
        if not self.contains(task):
            raise InvalidTaskError(
                "transitions", f"shape {task.transitions.shape}",
                f"this env has {self.num_states} states and {self.num_actions} actions",
            )
        return task

    def relabel(self, task: TabularMDPTask, rng: np.random.Generator) -> TabularMDPTask:
        """States other than the start state 0 in a random order, and each state's actions in a
        random order of their own (i.i.d. rows and means: the distribution does not change)."""
        S, A = task.mean_rewards.shape
        old = np.concatenate([[0], 1 + rng.permutation(S - 1)])  # new state -> old state
        acts = np.stack([rng.permutation(A) for _ in range(S)])  # [new state, new action] -> old action
        rows = old[:, None]
        return TabularMDPTask(transitions=task.transitions[rows, acts][:, :, old], mean_rewards=task.mean_rewards[rows, acts])

    def held_out_key(self) -> str | None:
        return "TabularMDP-v0" if (self.num_states, self.num_actions) == (10, 5) else None


class TabularMDPVecEnv(BatchedMetaEnv[TabularMDPTask]):
    """Native batched tabular MDPs: cumulative ``P`` ``[N, S, A, S]``, ``μ`` ``[N, S, A]``."""

    def __init__(
        self, num_envs: int = 1, *, num_states: int = 10, num_actions: int = 5, max_episode_steps: int = 10, **kwargs
    ) -> None:
        num_envs = check_count(num_envs, "num_envs")  # before any [num_envs, ...] array
        dist = TabularMDPDistribution(num_states, num_actions)
        S, A = dist.num_states, dist.num_actions
        self._cum_p = np.zeros((num_envs, S, A, S))
        self._mu = np.zeros((num_envs, S, A))
        self._state = np.zeros(num_envs, dtype=np.int64)
        self._rows = np.arange(num_envs)
        self._eye = np.eye(S, dtype=np.float32)
        super().__init__(
            num_envs,
            dist,
            max_episode_steps=max_episode_steps,
            single_observation_space=spaces.Box(0.0, 1.0, (S,), np.float32),
            single_action_space=spaces.Discrete(A),
            **kwargs,
        )
        self.num_states, self.num_actions = S, A

    def _apply_tasks(self, idx: np.ndarray, tasks: Sequence[TabularMDPTask]) -> None:
        self._cum_p[idx] = np.cumsum(np.stack([t.transitions for t in tasks]), axis=-1)
        self._mu[idx] = np.stack([t.mean_rewards for t in tasks])

    def _reset_state(self, mask: np.ndarray) -> None:
        self._state[mask] = 0

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self._state
        reward = self._mu[self._rows, s, actions] + self.rng.standard_normal(self.num_envs)
        cum = self._cum_p[self._rows, s, actions]  # [N, S]
        u = self.rng.random(self.num_envs)[:, None]
        # Inverse-CDF draw; the min guards a last cumulative value a rounding error below 1.
        self._state = np.minimum((u >= cum).sum(axis=1), self.num_states - 1)
        return reward, np.zeros(self.num_envs, dtype=bool)

    def _observe(self) -> np.ndarray:
        return self._eye[self._state]


class TabularMDPEnv(SingleMetaEnv[TabularMDPTask]):
    __doc__ = __doc__
    batched_cls = TabularMDPVecEnv
