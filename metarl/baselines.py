"""The linear feature baseline of the MAML reference implementations, batched across tasks.

``V(s_t) = φ(s_t, t)ᵀ w`` with features ``φ = [o, o², t/100, (t/100)², (t/100)³, 1]``, where
``o`` is the observation clipped to ``[-10, 10]`` (rllab ``LinearFeatureBaseline``, used by
cbfinn/maml_rl; tristandeleu/pytorch-maml-rl ``baseline.py``). ``w`` is fitted per task in closed
form by ridge regression on the discounted returns of that task's episodes,
``w = (ΦᵀΦ + λI)⁻¹ Φᵀ G``, with ``λ`` raised tenfold (up to 5 times) while the solve is not finite,
as the reference does. All tasks are fitted in one batched solve.

Axes: ``T`` time, ``M`` tasks, ``E`` episodes per task.

>>> import torch
>>> obs = torch.randn(10, 3, 4, 2)          # [T, M, E, obs_dim]
>>> returns = torch.randn(10, 3, 4)
>>> values = LinearFeatureBaseline().fit_predict(obs, returns)
>>> tuple(values.shape)
(10, 3, 4)
"""

from __future__ import annotations

import torch
from torch import Tensor

from metarl.errors import TrainingDivergedError

__all__ = ["linear_features", "fit_linear", "LinearFeatureBaseline"]


def linear_features(obs: Tensor, time_scale: float = 100.0) -> Tensor:
    """Features ``[T, ..., 2·obs_dim + 4]`` of observations ``[T, ..., obs_dim]`` (time on axis 0)."""
    o = obs.clamp(-10.0, 10.0)
    T = obs.shape[0]
    t = torch.arange(T, dtype=obs.dtype, device=obs.device) / time_scale
    t = t.reshape(T, *([1] * (obs.dim() - 1))).expand(*obs.shape[:-1], 1)
    return torch.cat([o, o**2, t, t**2, t**3, torch.ones_like(t)], dim=-1)


def fit_linear(features: Tensor, targets: Tensor, mask: Tensor | None = None, reg_coeff: float = 1e-5) -> Tensor:
    """Ridge-regression weights per batch entry.

    Args:
        features: ``[B, K, D]`` (``B`` independent problems of ``K`` samples).
        targets: ``[B, K]``.
        mask: ``[B, K]`` sample weights (0 drops a sample), or ``None``.
        reg_coeff: initial ridge coefficient ``λ``.

    Returns:
        ``[B, D]`` weights. Solved in float64.
    """
    f = features.double()
    y = targets.double()
    if mask is not None:
        m = mask.double()
        f = f * m.unsqueeze(-1)
        y = y * m
    gram = f.transpose(-1, -2) @ f
    rhs = (f.transpose(-1, -2) @ y.unsqueeze(-1)).squeeze(-1)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    reg = reg_coeff
    for _ in range(5):
        # Regularisation schedule of rllab's LinearFeatureBaseline.fit.
        w = torch.linalg.solve(gram + reg * eye, rhs.unsqueeze(-1)).squeeze(-1)
        if torch.isfinite(w).all():
            return w.to(features.dtype)
        reg *= 10.0
    raise TrainingDivergedError(f"linear baseline: ridge solve is not finite even with reg_coeff={reg / 10:g}")


class LinearFeatureBaseline:
    """Fit-and-predict linear baseline over a meta-batch (see the module docstring).

    Args:
        reg_coeff: ridge coefficient (reference: 1e-5).
        time_scale: divisor of the time index in the features (reference: 100).
    """

    def __init__(self, reg_coeff: float = 1e-5, time_scale: float = 100.0) -> None:
        self.reg_coeff = float(reg_coeff)
        self.time_scale = float(time_scale)

    def fit_predict(self, obs: Tensor, returns: Tensor, mask: Tensor | None = None) -> Tensor:
        """Fit one baseline per task on its episodes and return its values.

        Args:
            obs: ``[T, M, E, obs_dim]``.
            returns: ``[T, M, E]`` discounted returns (the regression targets).
            mask: ``[T, M, E]`` validity (steps after an episode ended are left out), or ``None``.

        Returns:
            ``[T, M, E]`` baseline values (0 where ``mask`` is 0).
        """
        T, M, E = returns.shape
        phi = linear_features(obs, self.time_scale)  # [T, M, E, D]
        D = phi.shape[-1]
        per_task = phi.permute(1, 0, 2, 3).reshape(M, T * E, D)
        y = returns.permute(1, 0, 2).reshape(M, T * E)
        m = None if mask is None else mask.permute(1, 0, 2).reshape(M, T * E)
        w = fit_linear(per_task, y, m, self.reg_coeff)  # [M, D]
        values = torch.einsum("tmed,md->tme", phi, w)
        return values if mask is None else values * mask
