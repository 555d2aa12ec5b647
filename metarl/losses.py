"""Policy-gradient losses shared by the agents (all pure torch, any leading axes).

>>> import torch
>>> logp = torch.zeros(3); adv = torch.tensor([1.0, -1.0, 2.0])
>>> round(float(ppo_clip_loss(logp, logp, adv, clip=0.2)), 6)   # ratio 1: minus the mean advantage
-0.666667
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["normalize_advantages", "ppo_clip_loss", "weighted_mean"]


def weighted_mean(x: Tensor, weights: Tensor | None = None, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Mean of ``x`` over ``dim`` counting only entries with nonzero ``weights`` (a validity mask)."""
    if weights is None:
        return x.mean() if dim is None else x.mean(dim)
    if dim is None:
        return (x * weights).sum() / weights.sum().clamp_min(1.0)
    return (x * weights).sum(dim) / weights.sum(dim).clamp_min(1.0)


def normalize_advantages(adv: Tensor, mask: Tensor | None = None, dim: int | tuple[int, ...] | None = None, eps: float = 1e-8) -> Tensor:
    """Zero-mean, unit-variance advantages over ``dim`` (masked entries excluded, and zeroed)."""
    mean = weighted_mean(adv, mask, dim)
    if dim is not None:
        mean = _keep(mean, adv, dim)
    centered = adv - mean
    var = weighted_mean(centered**2, mask, dim)
    if dim is not None:
        var = _keep(var, adv, dim)
    out = centered / (var.sqrt() + eps)
    return out if mask is None else out * mask


def ppo_clip_loss(logp: Tensor, logp_old: Tensor, adv: Tensor, clip: float, mask: Tensor | None = None) -> Tensor:
    """The negated clipped surrogate of PPO (Schulman et al. 2017, eq. 7), masked mean."""
    ratio = torch.exp(logp - logp_old)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * adv)
    return -weighted_mean(surrogate, mask)


def _keep(stat: Tensor, like: Tensor, dim: int | tuple[int, ...]) -> Tensor:
    dims = (dim,) if isinstance(dim, int) else dim
    for d in sorted(d % like.ndim for d in dims):
        stat = stat.unsqueeze(d)
    return stat
