"""RL² trials: ``episodes_per_trial`` episodes on one task, as a batched env and as a single env.

A *trial* (Duan et al. 2016, §2.2) is a sequence of episodes of one sampled task. The agent sees,
at every step, the observation concatenated with the previous action (one-hot for discrete
spaces), the previous reward and the previous-done flag: ``obs ⊕ a_{t-1} ⊕ r_{t-1} ⊕ d_{t-1}``.
All three are zero at the first step of a trial; ``d_{t-1} = 1`` on the first step of every later
episode. The recurrent agent keeps its memory across the episodes of a trial and clears it only
at a trial boundary, so its objective is the total reward of the trial.

Two views share one implementation:

- :class:`TrialVecEnv` wraps a native batched env (``N`` trials stepped in lock-step). It resets
  finished episodes in place, and when the last episode of a trial ends it draws a new task for
  that sub-env and starts a new trial in the same step (``trial_start`` marks it).
- :class:`TrialEnv` is a single Gymnasium env whose episode is one whole trial, so any recurrent
  single-env learner (``sb3_contrib.RecurrentPPO``, whose LSTM resets at episode starts) trains
  RL² out of the box.

A trial ends as a *termination* of the meta-episode (``terminated=True``): RL²'s objective is the
finite sum of rewards over the trial and nothing is bootstrapped past it. The episode-level flags
are in ``info`` (``episode_end``, ``episode_terminated``, ``episode_truncated``).

>>> import numpy as np, metarl
>>> venv = TrialVecEnv.make("metarl/Bandit-v0", num_trials=4, episodes_per_trial=3, num_arms=2, horizon=1)
>>> obs, info = venv.reset(seed=0)
>>> obs.shape                      # obs (1) + one-hot action (2) + reward + done
(4, 5)
>>> for _ in range(3):
...     obs, reward, terminated, truncated, info = venv.step(np.zeros(4, dtype=int))
>>> terminated.tolist(), info["trial_start"].tolist()   # trial over, new trials started
([True, True, True, True], [True, True, True, True])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from metarl.errors import ConfigError, InvalidTaskError, TaskNotSetError
from metarl.meta_env import BatchedMetaEnv, reset_options
from metarl.tasks import Task

__all__ = ["TrialVecEnv", "TrialEnv", "trial_observation_space"]

#: ``sampler(n) -> n tasks``: where new trials get their tasks (default: the env's training draw).
TaskSampler = Callable[[int], Sequence[Task]]


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def trial_observation_space(observation_space: spaces.Space, action_space: spaces.Space) -> spaces.Box:
    """The flat Box of ``obs ⊕ previous action ⊕ previous reward ⊕ previous done``."""
    if not isinstance(observation_space, spaces.Box):
        raise ConfigError(f"RL² trials need a Box observation space, got {observation_space}")
    if isinstance(action_space, spaces.Discrete):
        act_dim = int(action_space.n)
    elif isinstance(action_space, spaces.Box):
        act_dim = int(np.prod(action_space.shape))
    else:
        raise ConfigError(f"RL² trials need a Discrete or Box action space, got {action_space}")
    dim = int(np.prod(observation_space.shape)) + act_dim + 2
    return spaces.Box(-np.inf, np.inf, (dim,), np.float32)


class TrialVecEnv(VectorEnv):
    """``N`` RL² trials over a native batched env, stepped in lock-step.

    Args:
        env: a native batched env made with ``autoreset_mode="disabled"`` (this wrapper owns the
            resets). :meth:`make` builds one from an id.
        episodes_per_trial: episodes per trial (the RL² paper's ``n``).
        task_sampler: draws the tasks of new trials; default ``env.sample_tasks`` (the env's own
            task generator, seeded by ``reset(seed=...)``).
        autoreset: start a new trial (new task) in the step where a trial ends. ``False`` leaves
            finished sub-envs stopped until :meth:`reset` (stepping them raises).

    Attributes:
        trial_start: ``bool[N]``, whether the current observation is the first of a trial (an
            agent clears its memory there).
        episode_index: ``int[N]``, index within its trial of the episode the next step belongs to.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        env: BatchedMetaEnv,
        episodes_per_trial: int,
        *,
        task_sampler: TaskSampler | None = None,
        autoreset: bool = True,
    ) -> None:
        if not isinstance(env, BatchedMetaEnv):
            raise ConfigError(f"TrialVecEnv wraps a native batched meta-env, got {type(env).__name__}")
        if env.autoreset_mode is not AutoresetMode.DISABLED:
            raise ConfigError(
                f"TrialVecEnv resets episodes itself: build the env with autoreset_mode=AutoresetMode.DISABLED "
                f"(got {env.autoreset_mode.value!r}); TrialVecEnv.make(env_id, ...) does this"
            )
        self.env = env
        self.episodes_per_trial = _check_positive_int("episodes_per_trial", episodes_per_trial)
        self.task_sampler: TaskSampler = task_sampler if task_sampler is not None else env.sample_tasks
        #: ``sampler(sub-env indices) -> one task each``; when set, replaces ``task_sampler`` for new trials.
        self.indexed_task_sampler: Callable[[np.ndarray], Sequence[Task]] | None = None
        self.autoreset = bool(autoreset)
        self.num_envs = env.num_envs
        self.base_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.single_observation_space = trial_observation_space(env.single_observation_space, env.single_action_space)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = env.action_space
        self.metadata = {**type(self).metadata}
        self._discrete = isinstance(env.single_action_space, spaces.Discrete)
        self._obs_dim = int(np.prod(env.single_observation_space.shape))
        self._act_dim = self.single_observation_space.shape[0] - self._obs_dim - 2
        #: Upper bound of a trial's length in steps (episodes can end early where the env terminates).
        self.max_trial_steps = self.episodes_per_trial * env.max_episode_steps
        N = self.num_envs
        self._buf = np.zeros((N, self.single_observation_space.shape[0]), dtype=np.float32)
        self.trial_start = np.zeros(N, dtype=bool)
        self.episode_index = np.zeros(N, dtype=np.int64)
        self._finished = np.zeros(N, dtype=bool)
        self._has_reset = False

    @classmethod
    def make(
        cls,
        env_id: str,
        num_trials: int,
        episodes_per_trial: int,
        *,
        task_sampler: TaskSampler | None = None,
        autoreset: bool = True,
        **env_kwargs: Any,
    ) -> TrialVecEnv:
        """Build the native batched env of ``env_id`` (``num_trials`` sub-envs) and wrap it."""
        from metarl.registry import make_vec

        if "autoreset_mode" in env_kwargs:
            raise ConfigError("TrialVecEnv.make sets autoreset_mode itself; do not pass it")
        env = make_vec(env_id, _check_positive_int("num_trials", num_trials), autoreset_mode=AutoresetMode.DISABLED, **env_kwargs)
        return cls(env, episodes_per_trial, task_sampler=task_sampler, autoreset=autoreset)

    # --- tasks -------------------------------------------------------------------------------
    def get_tasks(self) -> list[Task]:
        """The task of each sub-env's current trial."""
        return self.env.get_tasks()

    def _new_tasks(self, n: int) -> list[Task]:
        tasks = list(self.task_sampler(n))
        if len(tasks) != n:
            raise InvalidTaskError("task_sampler", f"{len(tasks)} tasks", f"asked for {n}")
        return tasks

    # --- gymnasium API -----------------------------------------------------------------------
    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new trial in every sub-env.

        ``options={"tasks": [...]}`` gives the trials their tasks (one per sub-env); otherwise
        they are drawn from ``task_sampler`` (after seeding, so a seed fixes them).
        """
        options = reset_options(options, ("tasks",))
        if seed is not None:
            self.env.reset(seed=seed)  # seeds the env's step and task generators
        tasks = options["tasks"] if "tasks" in options else self._new_tasks(self.num_envs)
        obs, _ = self.env.reset(options={"tasks": list(tasks)})
        self._buf[:] = 0.0
        self._buf[:, : self._obs_dim] = obs.reshape(self.num_envs, -1)
        self.trial_start[:] = True
        self.episode_index[:] = 0
        self._finished[:] = False
        self._has_reset = True
        return self._buf.copy(), {"trial_start": self.trial_start.copy()}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every trial once. ``terminated[i]`` is true where sub-env ``i``'s trial ended."""
        if not self._has_reset:
            raise TaskNotSetError("call reset() before step()")
        if self._finished.any():
            raise TaskNotSetError(
                f"trials {np.flatnonzero(self._finished)[:8].tolist()} have ended (autoreset=False): call reset()"
            )
        actions = np.asarray(actions)
        obs, reward, ep_term, ep_trunc, env_info = self.env.step(actions)
        ep_end = ep_term | ep_trunc
        trial_end = ep_end & (self.episode_index == self.episodes_per_trial - 1)
        info: dict[str, Any] = {
            "episode_end": ep_end,
            "episode_terminated": ep_term,
            "episode_truncated": ep_trunc,
            "episode_index": self.episode_index.copy(),
        }
        if "success" in env_info:  # the env's per-step success flag (Meta-World), passed through
            info["success"] = env_info["success"]
        # Previous action/reward/done for the next step (Duan et al. 2016, §2.2).
        buf = self._buf
        buf[:, self._obs_dim : self._obs_dim + self._act_dim] = 0.0
        if self._discrete:
            # env.step validated the actions: integers in [start, start + n)
            index = actions.astype(np.int64) - self.env.single_action_space.start
            buf[np.arange(self.num_envs), self._obs_dim + index] = 1.0
        else:
            buf[:, self._obs_dim : self._obs_dim + self._act_dim] = actions.reshape(self.num_envs, -1)
        buf[:, -2] = reward
        buf[:, -1] = ep_end
        buf[:, : self._obs_dim] = obs.reshape(self.num_envs, -1)
        self.trial_start[:] = False

        next_episode = ep_end & ~trial_end
        if next_episode.any():
            self.episode_index[next_episode] += 1
            obs_reset, _ = self.env.reset(options={"reset_mask": next_episode})
            buf[next_episode, : self._obs_dim] = obs_reset.reshape(self.num_envs, -1)[next_episode]
        if trial_end.any():
            info["final_obs"] = buf.copy()
            info["_final_obs"] = trial_end.copy()
            if self.autoreset:
                self._start_trials(trial_end)
            else:
                self._finished |= trial_end
        info["trial_start"] = self.trial_start.copy()
        return buf.copy(), reward, trial_end, np.zeros(self.num_envs, dtype=bool), info

    def _start_trials(self, mask: np.ndarray) -> None:
        idx = np.flatnonzero(mask)
        # A sampler keyed by sub-env draws each restarted trial's task from that sub-env's own
        # stream, so a sharded meta-batch draws what the unsharded one does (metarl.samplers).
        new = self._new_tasks(len(idx)) if self.indexed_task_sampler is None else list(self.indexed_task_sampler(idx))
        self.env.set_tasks(new, indices=idx)  # only the restarted sub-envs get new tasks
        obs, _ = self.env.reset(options={"reset_mask": mask})
        self._buf[mask] = 0.0
        self._buf[mask, : self._obs_dim] = obs.reshape(self.num_envs, -1)[mask]
        self.trial_start[mask] = True
        self.episode_index[mask] = 0

    def observe(self) -> np.ndarray:
        """The current trial observations (as :func:`metarl.sampling.collect` continues from)."""
        return self._buf.copy()

    def __repr__(self) -> str:
        return f"TrialVecEnv({self.env!r}, episodes_per_trial={self.episodes_per_trial})"


class TrialEnv(gym.Env):
    """A single Gymnasium env whose episode is one whole RL² trial (for single-env learners).

    Each ``reset`` starts a trial on a new task (drawn from the training distribution with the
    env's task generator, which ``reset(seed=...)`` seeds), or on ``options={"task": task}``.
    The observation is ``obs ⊕ previous action ⊕ previous reward ⊕ previous done``.

    Train RL² with sb3-contrib's recurrent PPO (its LSTM state resets at episode starts, which
    are trial starts here)::

        from sb3_contrib import RecurrentPPO
        env = TrialEnv("metarl/Bandit-v0", episodes_per_trial=10, num_arms=5, horizon=1)
        RecurrentPPO("MlpLstmPolicy", env, n_steps=100, seed=0).learn(20_000)

    >>> env = TrialEnv("metarl/Bandit-v0", episodes_per_trial=2, num_arms=3, horizon=1)
    >>> obs, _ = env.reset(seed=0)
    >>> obs.tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    >>> obs, r, terminated, truncated, info = env.step(2)
    >>> obs[1:4].tolist(), float(obs[5]), terminated         # one-hot of arm 2, done flag of episode 0
    ([0.0, 0.0, 1.0], 1.0, False)
    >>> terminated = env.step(0)[2]
    >>> terminated
    True
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, env_id: str, episodes_per_trial: int, render_mode: str | None = None, **env_kwargs: Any) -> None:
        if render_mode is not None:
            raise ConfigError(f"render_mode {render_mode!r} is not supported by TrialEnv")
        self._trials = TrialVecEnv.make(env_id, 1, episodes_per_trial, autoreset=False, **env_kwargs)
        self.env_id = env_id
        self.episodes_per_trial = self._trials.episodes_per_trial
        self.observation_space = self._trials.single_observation_space
        self.action_space = self._trials.single_action_space

    def sample_tasks(self, n: int, *, seed: int | None = None) -> list[Task]:
        return self._trials.env.sample_tasks(n, seed=seed)

    def held_out_tasks(self) -> list[Task]:
        return self._trials.env.held_out_tasks()

    def get_task(self) -> Task:
        return self._trials.get_tasks()[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = reset_options(options, ("task",))
        opts = {"tasks": [options["task"]]} if "task" in options else None
        obs, _ = self._trials.reset(seed=seed, options=opts)
        return obs[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action)
        obs, reward, terminated, truncated, info = self._trials.step(a.reshape(1, *a.shape))
        out = {k: (v[0] if isinstance(v, np.ndarray) and v.shape[:1] == (1,) else v) for k, v in info.items()}
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), out
