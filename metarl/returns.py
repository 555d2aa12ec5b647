"""Discounted returns and generalized advantage estimation on ``[T, N]`` tensors.

Axes: ``T`` time, ``N`` sub-envs (``tasks × episodes`` in a meta-batch). All functions are pure
torch, run on the tensors' device, and loop only over time (``T`` steps of vector work).

>>> import torch
>>> r = torch.tensor([[1.0], [1.0], [1.0]])
>>> discounted_returns(r, gamma=0.5).squeeze(1).tolist()
[1.75, 1.5, 1.0]
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["discounted_returns", "gae"]


def discounted_returns(rewards: Tensor, gamma: float, mask: Tensor | None = None) -> Tensor:
    """``G_t = r_t + γ G_{t+1}``, restarting after every step where ``mask`` is 0.

    Args:
        rewards: ``[T, N]``.
        gamma: discount in ``[0, 1]``.
        mask: ``[T, N]`` validity (1 while the episode runs, 0 after it ended); steps with mask 0
            contribute nothing and returns do not flow across them. ``None`` means all valid.

    Returns:
        ``[T, N]`` returns (0 where ``mask`` is 0).
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    if mask is not None:
        rewards = rewards * mask
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        if mask is not None:
            running = running * mask[t]
        out[t] = running
    return out


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    episode_end: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016, eq. 16), truncation-aware.

    Args:
        rewards: ``[T, N]`` rewards ``r_t``.
        values: ``[T, N]`` value estimates ``V(s_t)``.
        next_values: ``[T, N]`` ``V(s_{t+1})`` of the state the step led to (for a truncated step,
            the value of the final observation; its value is ignored where ``terminated``).
        terminated: ``[T, N]`` true terminal transitions: no bootstrap.
        episode_end: ``[T, N]`` where an episode ended (terminated or truncated): advantages
            do not flow back across it.
        gamma, lam: discount and GAE λ.

    Returns:
        ``(advantages, returns)``, both ``[T, N]``, with ``returns = advantages + values``.
    """
    if not (0.0 <= gamma <= 1.0 and 0.0 <= lam <= 1.0):
        raise ValueError(f"gamma and lam must lie in [0, 1], got {gamma}, {lam}")
    not_term = 1.0 - terminated.to(rewards.dtype)
    cont = 1.0 - episode_end.to(rewards.dtype)
    deltas = rewards + gamma * next_values * not_term - values
    adv = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * cont[t] * running
        adv[t] = running
    return adv, adv + values
