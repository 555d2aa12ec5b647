"""Batched rollouts: step a native batched env in lock-step into preallocated ``[T, N, ...]`` tensors.

This is the one rollout loop of metarl; agents pass a policy callable and get a :class:`Rollout`.
One policy forward per step for all ``N`` sub-envs; observations go to the policy's device once
per step and actions come back once per step.

>>> import torch, metarl
>>> venv = metarl.make_vec("metarl/Navigation2D-v0", num_envs=3)
>>> def act(obs, t):
...     return torch.full((obs.shape[0], 2), 0.1), {}
>>> ro = collect(venv, act, horizon=5, seed=0)
>>> tuple(ro.obs.shape), tuple(ro.rewards.shape)
((5, 3, 2), (5, 3))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from metarl.meta_env import BatchedMetaEnv
from metarl.tasks import Task

__all__ = ["Rollout", "collect", "Policy"]

#: ``act(obs [N, ...] on device, t) -> (actions [N, ...] on device, extras {name: [N, ...]})``
Policy = Callable[[Tensor, int], tuple[Tensor, dict[str, Tensor]]]


class Rollout(NamedTuple):
    """One batched rollout. Axes: ``T`` steps, ``N`` sub-envs (``tasks × episodes``).

    Attributes:
        obs: ``[T, N, *obs_shape]`` observation the action was taken in.
        actions: ``[T, N, *act_shape]`` (``[T, N]`` long for discrete spaces).
        rewards: ``[T, N]``.
        terminated: ``[T, N]`` bool, true terminal transitions.
        truncated: ``[T, N]`` bool, time-limit ends.
        valid: ``[T, N]`` float, 1 for steps of each sub-env's *first* episode (up to and
            including its last step), 0 after: a fixed-horizon meta-batch uses one episode per
            sub-env and masks what autoreset would start after an early termination.
        next_obs: ``[N, *obs_shape]`` observation after the last step.
        extras: what the policy returned per step, stacked to ``[T, N, ...]``.
        success: ``[T, N]`` bool, the env's per-step ``info["success"]`` (Meta-World's flag),
            or None when the env does not report it.
    """

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    valid: Tensor
    next_obs: Tensor
    extras: dict[str, Tensor]
    success: Tensor | None = None

    @property
    def episode_returns(self) -> Tensor:
        """``[N]`` undiscounted return of each sub-env's first episode."""
        return (self.rewards * self.valid).sum(0)

    @property
    def episode_success(self) -> Tensor | None:
        """``[N]`` float, 1 where the first episode succeeded at any step (Meta-World's
        definition), or None when the env reports no success."""
        if self.success is None:
            return None
        return ((self.success & (self.valid > 0)).any(0)).to(self.rewards.dtype)


def collect(
    env: BatchedMetaEnv,
    act: Policy,
    horizon: int,
    *,
    device: torch.device | str = "cpu",
    tasks: Sequence[Task] | None = None,
    seed: int | None = None,
    reset: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Rollout:
    """Run ``horizon`` lock-step steps of ``env`` with policy ``act``.

    Args:
        env: a native batched env (``N = env.num_envs``).
        act: policy callable (see :data:`Policy`), called once per step with all ``N`` observations.
        horizon: number of steps ``T``.
        device: where the returned tensors (and the observations passed to ``act``) live.
        tasks: one task per sub-env, set before the reset.
        seed: reset seed (sub-env ``i`` gets ``seed + i``).
        reset: reset first (``False`` continues from the env's current state; then
            ``tasks``/``seed`` must be ``None``).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    device = torch.device(device)
    N = env.num_envs
    if reset:
        options = {"tasks": list(tasks)} if tasks is not None else None
        obs_np, _ = env.reset(seed=seed, options=options)
    else:
        if tasks is not None or seed is not None:
            raise ValueError("tasks and seed need reset=True")
        obs_np = env.observe()
    obs_shape = env.single_observation_space.shape
    discrete = isinstance(env.single_action_space, spaces.Discrete)
    act_shape = () if discrete else env.single_action_space.shape

    obs_buf = torch.empty((horizon, N, *obs_shape), dtype=dtype, device=device)
    act_buf = torch.empty((horizon, N, *act_shape), dtype=torch.long if discrete else dtype, device=device)
    rew_buf = np.empty((horizon, N), dtype=np.float64)
    term_buf = np.empty((horizon, N), dtype=bool)
    trunc_buf = np.empty((horizon, N), dtype=bool)
    extras: dict[str, Tensor] = {}
    succ_buf: np.ndarray | None = None  # allocated when the env first reports info["success"]

    obs = torch.as_tensor(obs_np, dtype=dtype).to(device, non_blocking=True)
    for t in range(horizon):
        obs_buf[t] = obs
        with torch.no_grad():
            action, extra = act(obs, t)
        act_buf[t] = action
        for name, value in extra.items():
            if name not in extras:
                extras[name] = torch.empty((horizon, *value.shape), dtype=value.dtype, device=value.device)
            extras[name][t] = value
        obs_np, rew_buf[t], term_buf[t], trunc_buf[t], info = env.step(action.detach().cpu().numpy())
        if "success" in info:
            if succ_buf is None:
                succ_buf = np.zeros((horizon, N), dtype=bool)
            succ_buf[t] = info["success"]
        obs = torch.as_tensor(obs_np, dtype=dtype).to(device, non_blocking=True)

    done = term_buf | trunc_buf
    # valid[t] = no episode end strictly before t.
    ended_before = np.concatenate([np.zeros((1, N), dtype=bool), np.cumsum(done, axis=0)[:-1] > 0])
    to = dict(device=device)
    return Rollout(
        obs=obs_buf,
        actions=act_buf,
        rewards=torch.as_tensor(rew_buf, dtype=dtype).to(**to),
        terminated=torch.as_tensor(term_buf).to(**to),
        truncated=torch.as_tensor(trunc_buf).to(**to),
        valid=torch.as_tensor(~ended_before, dtype=dtype).to(**to),
        next_obs=obs,
        extras=extras,
        success=None if succ_buf is None else torch.as_tensor(succ_buf).to(**to),
    )

