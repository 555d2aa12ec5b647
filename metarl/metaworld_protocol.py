"""Meta-World's own evaluation protocol for metarl agents (``metaworld.evaluation.metalearning_evaluation``).

Meta-World 3.1.1 evaluates a meta-learner through its ``MetaLearningAgent`` protocol
(``docs/evaluation/evaluation.md``): ``init()`` resets to the meta-learned state,
``adapt_action(obs) -> (actions, aux)`` and ``step(Timestep)`` collect ``adaptation_episodes``
episodes, ``adapt()`` ends an adaptation step, then ``eval_action(obs)`` / ``reset(env_mask)`` run
``evaluation_episodes`` episodes whose success (``info["success"]`` at any step) is the metric.

- :class:`MAMLProtocolAgent` wraps a trained :class:`~metarl.agents.maml.MAML`: each ``adapt()`` is
  one of MAML's own inner steps (REINFORCE + linear baseline, step sizes α then α/2 as
  ``metarl eval`` uses) on the episodes Meta-World collected.
- :class:`RL2ProtocolAgent` wraps a trained :class:`~metarl.agents.rl2.RL2`: the hidden state
  carries across all episodes (adaptation and evaluation form one trial); ``adapt()`` does nothing.
- :func:`metalearning_evaluation` builds Meta-World's evaluation vector env from metarl
  :class:`~metarl.envs.metaworld.MetaWorldTask` values (the same tasks ``metarl eval`` uses) and runs
  Meta-World's function on it.

Meta-World's ``evaluation`` counts the first ``evaluation_episodes`` episodes to finish **per task
name**, so sub-envs sharing a class (its PR #577) bias the rate toward quick successes. This module
gives each class exactly one sub-env (cycling through that class's tasks, one per ``num_evals``
round), so every counted episode is that sub-env's own.

The agents are duck-typed (this module never imports an agent at import time).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import torch

from metarl.errors import ConfigError

__all__ = ["MAMLProtocolAgent", "RL2ProtocolAgent", "metaworld_eval_envs", "metalearning_evaluation"]


def metaworld_eval_envs(tasks: Sequence[Any], *, max_episode_steps: int = 500, recurrent_info: bool = False, seed: int = 0) -> Any:
    """Meta-World's evaluation vector env (its own wrappers) over metarl Meta-World ``tasks``.

    One sub-env per class, holding that class's tasks (Meta-World's pseudo-random task select
    visits each once per cycle). ``recurrent_info`` appends previous action, reward and done to the
    observation (Meta-World's ``RNNBasedMetaRLWrapper``, unnormalised reward), as RL² needs.
    """
    import gymnasium as gym

    from metarl.envs.metaworld import MetaWorldTask, _env_class, import_metaworld, to_metaworld_task

    mw = import_metaworld()
    by_class: dict[str, list[Any]] = defaultdict(list)
    for t in tasks:
        if not isinstance(t, MetaWorldTask):
            raise ConfigError(f"Meta-World's protocol needs MetaWorldTask values, got {type(t).__name__}")
        by_class[t.env_name].append(to_metaworld_task(t))
    counts = {name: len(ts) for name, ts in by_class.items()}
    if not counts or len(set(counts.values())) != 1:
        raise ConfigError(f"need the same number of tasks for every class (Meta-World iterates them in lock-step), got {counts}")
    fns = [
        partial(
            mw._init_each_env,  # Meta-World's own wrapper stack of make_ml_envs, on our tasks
            env_cls=_env_class(name), tasks=ts, seed=seed, max_episode_steps=max_episode_steps,
            terminate_on_success=False, task_select="pseudorandom",
            recurrent_info_in_obs=recurrent_info, normalize_reward_in_recurrent_info=False,
        )
        for name, ts in by_class.items()
    ]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def metalearning_evaluation(
    agent: Any,
    tasks: Sequence[Any],
    *,
    adaptation_steps: int = 1,
    adaptation_episodes: int = 10,
    evaluation_episodes: int = 3,
    seed: int = 0,
) -> tuple[float, float, dict[str, float]]:
    """Run ``metaworld.evaluation.metalearning_evaluation`` for a protocol ``agent`` on ``tasks``.

    Returns Meta-World's ``(mean success rate, mean return, success rate per class)``; every task
    is one ``num_evals`` round.
    """
    from metarl.envs.metaworld import import_metaworld

    import_metaworld()
    from metaworld.evaluation import metalearning_evaluation as mw_eval

    envs = metaworld_eval_envs(tasks, max_episode_steps=agent.horizon, recurrent_info=agent.recurrent_info, seed=seed)
    num_evals = len(tasks) // envs.num_envs
    try:
        return mw_eval(
            agent, envs, num_evals=num_evals, adaptation_steps=adaptation_steps,
            adaptation_episodes=adaptation_episodes, evaluation_episodes=evaluation_episodes,
        )
    finally:
        envs.close()


class MAMLProtocolAgent:
    """Meta-World's ``MetaLearningAgent`` over a MAML agent (stochastic actions, as ``metarl eval``).

    Args:
        maml: a :class:`~metarl.agents.maml.MAML` (trained or loaded).
        seed: seeds the action noise.
        deterministic: act with the policy mean in ``eval_action`` (Meta-World's suggestion)
            instead of sampling (what ``metarl eval`` reports).
    """

    recurrent_info = False

    def __init__(self, maml: Any, *, seed: int = 0, deterministic: bool = False) -> None:
        self.maml = maml
        self.horizon = int(maml.horizon)
        self.deterministic = deterministic
        self._gen = torch.Generator().manual_seed(int(seed))
        self.init()

    def init(self) -> None:
        self._params: dict[str, torch.Tensor] | None = None
        self._num_adapted = 0
        self._buffer: list[Any] = []

    def _dist(self, obs: np.ndarray) -> tuple[torch.Tensor, ...]:
        from metarl.policies import batched_dist_params, stack_params

        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.maml._device)
        if self._params is None:
            self._params = stack_params({k: v.detach() for k, v in self.maml.params.items()}, x.shape[0])
        dist = batched_dist_params(self.maml.policy, self._params, x[:, None])
        return tuple(d[:, 0] for d in dist)

    def _clip(self, raw: torch.Tensor) -> np.ndarray:
        low, high = self.maml._act_low, self.maml._act_high
        return (raw if low is None else torch.clamp(raw, low, high)).cpu().numpy()

    def adapt_action(self, observations: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        with torch.no_grad():
            raw = self.maml.policy.sample(self._dist(observations), self._gen)
        return self._clip(raw), {"raw_action": raw.cpu().numpy()}

    def step(self, timestep: Any) -> None:
        self._buffer.append(timestep)

    def adapt(self) -> None:
        """One MAML inner step per task on the episodes collected since the last ``adapt``."""
        from metarl.agents.maml import eval_lr_schedule
        from metarl.sampling import Rollout

        S, H = len(self._buffer), self.horizon
        if S == 0 or S % H:
            raise ConfigError(f"MAML adapts on whole {H}-step episodes; got {S} steps since the last adapt()")
        N, E = self._buffer[0].observation.shape[0], S // H

        def stack(get: Any, dtype: torch.dtype) -> torch.Tensor:
            x = torch.as_tensor(np.stack([get(ts) for ts in self._buffer]), dtype=dtype)
            # [E*H, N, ...] -> [H, N*E, ...]: sub-env n's episode e is column n*E + e (task-major).
            x = x.reshape(E, H, N, *x.shape[2:]).transpose(0, 1).transpose(1, 2)
            return x.reshape(H, N * E, *x.shape[3:]).to(self.maml._device)

        raw = stack(lambda ts: ts.aux_policy_outputs["raw_action"], torch.float32)
        truncated = torch.zeros((H, N * E), dtype=torch.bool, device=raw.device)
        truncated[-1] = True
        ro = Rollout(
            obs=stack(lambda ts: ts.observation, torch.float32),
            actions=raw,
            rewards=stack(lambda ts: ts.reward, torch.float32),
            terminated=torch.zeros_like(truncated),
            truncated=truncated,
            valid=torch.ones((H, N * E), device=raw.device),
            next_obs=torch.zeros(0),
            extras={"raw_action": raw},
        )
        batch = self.maml._process(ro, N, E)
        lr = eval_lr_schedule(self.maml.config.inner_lr, self._num_adapted + 1)[-1]
        self._params = self.maml._adapt_step(self._params, batch, lr, first_order=True, iteration=-1)
        self._params = {k: v.detach() for k, v in self._params.items()}
        self._num_adapted += 1
        self._buffer = []

    def eval_action(self, observations: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            dist = self._dist(observations)
            raw = self.maml.policy.mode(dist) if self.deterministic else self.maml.policy.sample(dist, self._gen)
        return self._clip(raw)

    def reset(self, env_mask: np.ndarray) -> None:
        """MAML's policy is memoryless within a task: nothing to reset."""


class RL2ProtocolAgent:
    """Meta-World's ``MetaLearningAgent`` over an RL² agent: one trial spans all episodes.

    The network's input is ``obs ⊕ previous action ⊕ previous reward ⊕ previous done`` as in
    :class:`~metarl.trials.TrialVecEnv`. During adaptation ``step()`` gives the reward; during
    Meta-World's evaluation (which feeds no rewards) it comes from the ``RNNBasedMetaRLWrapper``
    column of the observation, and ``reset(env_mask)`` gives the done flags.
    """

    recurrent_info = True

    def __init__(self, rl2: Any, *, seed: int = 0, deterministic: bool = False) -> None:
        self.rl2 = rl2
        self.horizon = int(rl2.trials.env.max_episode_steps)
        self.deterministic = deterministic
        self._gen = torch.Generator(device=rl2.torch_device).manual_seed(int(seed))
        self.init()

    def init(self) -> None:
        self._h: torch.Tensor | None = None
        self._prev_action: np.ndarray | None = None
        self._prev_reward: np.ndarray | None = None
        self._prev_done: np.ndarray | None = None

    def _act(self, observations: np.ndarray, reward: np.ndarray | None, deterministic: bool) -> np.ndarray:
        obs = np.asarray(observations, dtype=np.float64)
        N, A = obs.shape[0], int(np.prod(self.rl2.trials.env.single_action_space.shape))
        D = obs.shape[1] - A - 2  # the wrapper appended action, reward, done
        if self._h is None:
            self._h = self.rl2.net.initial_state(N, self.rl2.torch_device)
            self._prev_action, self._prev_reward, self._prev_done = np.zeros((N, A)), np.zeros(N), np.zeros(N)
        if reward is not None:
            self._prev_reward = reward
        x = np.concatenate([obs[:, :D], self._prev_action, self._prev_reward[:, None], self._prev_done[:, None]], 1)
        with torch.no_grad():
            out, _, self._h = self.rl2.net(torch.as_tensor(x, dtype=torch.float32, device=self.rl2.torch_device)[None], self._h)
            action = self.rl2.net.sample(out[0], self._gen, deterministic=deterministic).cpu().numpy()
        self._prev_action, self._prev_done = action.astype(np.float64), np.zeros(N)
        return action

    def adapt_action(self, observations: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self._act(observations, None, False), {}

    def step(self, timestep: Any) -> None:
        self._prev_reward = np.asarray(timestep.reward, dtype=np.float64)
        self._prev_done = np.logical_or(timestep.terminated, timestep.truncated).astype(np.float64)

    def adapt(self) -> None:
        """RL² adapts in its hidden state: nothing to do between adaptation steps."""

    def eval_action(self, observations: np.ndarray) -> np.ndarray:
        return self._act(observations, np.asarray(observations)[:, -2].astype(np.float64), self.deterministic)

    def reset(self, env_mask: np.ndarray) -> None:
        """An episode ended (not the trial): mark done; the memory carries on."""
        if self._prev_done is not None:
            self._prev_done = np.maximum(self._prev_done, np.asarray(env_mask, dtype=np.float64))
