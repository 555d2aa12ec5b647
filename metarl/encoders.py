"""Permutation-invariant context encoders: a set of transitions -> a Gaussian belief over the task.

A context is a set of transitions ``c_i = (s, a, r[, s'])`` of one task, ``[M, C, D]`` (``M``
tasks, ``C`` transitions, ``D`` features) with an optional ``mask [M, C]`` (1 = a real
transition; rows may hold different numbers). Every encoder maps it to a diagonal Gaussian
``q(z | c) = N(mean, var)`` over a latent ``z [M, L]`` and is invariant to the order of the
transitions. With no transition (``C = 0`` or an all-zero mask row) the belief is the prior
``N(0, I)``. The three encoders are the set functions of the meta-learning literature:

- ``"np"``: per-transition Gaussian factors ``N(μ_i, σ_i²)`` combined by a product of Gaussians
  (PEARL, Rakelly et al. 2019, §4.1 eq. 3; the Neural-Process model, Garnelo et al. 2018);
- ``"mean"``: the mean of per-transition embeddings (a prototype, Snell et al. 2017), then a
  Gaussian head;
- ``"attention"``: a learned query attends over per-transition keys and values (the attention
  kernel of Matching Networks, Vinyals et al. 2016; PEARL's ``z`` is one per task, not per query
  state, so the query is learned, as in pooling by attention, Lee et al. 2019), then a Gaussian
  head.

All three carry PEARL's information bottleneck (KL to the prior, :func:`kl_to_standard_normal`),
so the agent samples ``z`` the same way whatever the encoder.

>>> import torch
>>> enc = make_encoder("np", input_dim=5, latent_dim=3, hidden_sizes=(16,))
>>> ctx = torch.randn(4, 10, 5, generator=torch.Generator().manual_seed(0))
>>> mean, var = enc(ctx)
>>> tuple(mean.shape), bool((var > 0).all())
((4, 3), True)
>>> perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
>>> torch.allclose(enc(ctx[:, perm])[0], mean, atol=1e-6)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from metarl.errors import ConfigError

__all__ = [
    "ENCODERS",
    "ContextEncoder",
    "ProductOfGaussiansEncoder",
    "MeanEncoder",
    "AttentionEncoder",
    "make_encoder",
    "mlp",
    "product_of_gaussians",
    "kl_to_standard_normal",
    "sample_latent",
]

#: Encoder names (``PEARLConfig.encoder``).
ENCODERS = ("np", "mean", "attention")

# Variances are clamped below (oyster clamps σ² at 1e-7 the same way) so precisions stay finite.
_MIN_VAR = 1e-7


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between them."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def product_of_gaussians(means: Tensor, variances: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Normalised product of ``C`` diagonal Gaussian factors per row (PEARL eq. 3).

    ``σ² = 1 / Σ_i 1/σ_i²`` and ``μ = σ² · Σ_i μ_i/σ_i²``, over the factors where ``mask`` is 1.
    A row with no factor gets the prior ``N(0, 1)``.

    Args:
        means, variances: ``[M, C, L]``.
        mask: ``[M, C]`` (1 keeps a factor) or None (all kept).

    Returns:
        ``(mean [M, L], var [M, L])``.

    >>> m, v = product_of_gaussians(torch.tensor([[[0.0], [2.0]]]), torch.tensor([[[1.0], [1.0]]]))
    >>> m.item(), v.item()
    (1.0, 0.5)
    """
    precision = 1.0 / variances.clamp_min(_MIN_VAR)
    if mask is not None:
        precision = precision * mask.unsqueeze(-1).to(precision.dtype)
    total = precision.sum(1)
    empty = total <= 0
    var = 1.0 / torch.where(empty, torch.ones_like(total), total)
    mean = var * (precision * means).sum(1)
    return torch.where(empty, torch.zeros_like(mean), mean), var


def kl_to_standard_normal(mean: Tensor, var: Tensor) -> Tensor:
    """``KL(N(mean, var) || N(0, I))`` per row, summed over the latent axis: ``[M, L] -> [M]``.

    ``½ Σ_l (σ_l² + μ_l² − 1 − log σ_l²)`` (the closed form PEARL's information bottleneck uses).

    >>> kl_to_standard_normal(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])).item()
    0.5
    """
    return 0.5 * (var + mean.pow(2) - 1.0 - torch.log(var)).sum(-1)


def sample_latent(mean: Tensor, var: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Reparameterised ``z = μ + σ ε``, ``ε ~ N(0, I)`` drawn from the CPU ``generator`` (then moved
    to ``mean``'s device, so CPU and GPU runs draw the same noise); gradients reach μ and σ."""
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
    return mean + var.sqrt() * eps


class ContextEncoder(nn.Module):
    """Base class: ``forward(context [M, C, D], mask [M, C] | None) -> (mean [M, L], var [M, L])``."""

    def __init__(self, input_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.input_dim, self.latent_dim = int(input_dim), int(latent_dim)

    def prior(self, num: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """The prior ``N(0, I)`` for ``num`` rows: ``(zeros [num, L], ones [num, L])``."""
        shape = (num, self.latent_dim)
        return torch.zeros(shape, device=device), torch.ones(shape, device=device)

    def _check(self, context: Tensor, mask: Tensor | None) -> None:
        if context.ndim != 3 or context.shape[-1] != self.input_dim:
            raise ConfigError(f"context must have shape [M, C, {self.input_dim}], got {tuple(context.shape)}")
        if mask is not None and tuple(mask.shape) != tuple(context.shape[:2]):
            raise ConfigError(f"mask must have shape {tuple(context.shape[:2])}, got {tuple(mask.shape)}")

    def _gaussian(self, out: Tensor) -> tuple[Tensor, Tensor]:
        mean, pre_var = out.split(self.latent_dim, dim=-1)
        return mean, F.softplus(pre_var).clamp_min(_MIN_VAR)


class ProductOfGaussiansEncoder(ContextEncoder):
    """PEARL's encoder: an MLP gives each transition a factor ``N(μ_i, σ_i²)``; their product is ``q``."""

    def __init__(self, input_dim: int, latent_dim: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__(input_dim, latent_dim)
        self.net = mlp([input_dim, *hidden_sizes, 2 * latent_dim])

    def forward(self, context: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(context, mask)
        means, variances = self._gaussian(self.net(context))
        return product_of_gaussians(means, variances, mask)


def _pooled_or_prior(enc: ContextEncoder, pooled: Tensor, count: Tensor) -> tuple[Tensor, Tensor]:
    """The Gaussian head on ``pooled [M, H]``; rows whose context is empty (``count == 0``) get the prior."""
    mean, var = enc._gaussian(enc.head(pooled))  # type: ignore[attr-defined]
    empty = (count <= 0).unsqueeze(-1)
    return torch.where(empty, torch.zeros_like(mean), mean), torch.where(empty, torch.ones_like(var), var)


class MeanEncoder(ContextEncoder):
    """Prototypical-Network style: ``q`` is a Gaussian head on the mean embedding of the transitions."""

    def __init__(self, input_dim: int, latent_dim: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__(input_dim, latent_dim)
        *body, last = [input_dim, *hidden_sizes]
        self.embed = nn.Sequential(mlp([*body, last]), nn.ReLU()) if body else nn.Identity()
        self.head = nn.Linear(last, 2 * latent_dim)

    def forward(self, context: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(context, mask)
        h = self.embed(context)
        w = torch.ones(context.shape[:2], device=context.device, dtype=h.dtype) if mask is None else mask.to(h.dtype)
        count = w.sum(1)
        pooled = (h * w.unsqueeze(-1)).sum(1) / count.clamp_min(1.0).unsqueeze(-1)
        return _pooled_or_prior(self, pooled, count)


class AttentionEncoder(ContextEncoder):
    """Matching-Network style: a learned query attends (scaled dot product) over the transitions."""

    def __init__(self, input_dim: int, latent_dim: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__(input_dim, latent_dim)
        *body, last = [input_dim, *hidden_sizes]
        self.embed = nn.Sequential(mlp([*body, last]), nn.ReLU()) if body else nn.Identity()
        self.key = nn.Linear(last, last)
        self.value = nn.Linear(last, last)
        self.query = nn.Parameter(torch.randn(last) / math.sqrt(last))
        self.head = nn.Linear(last, 2 * latent_dim)

    def forward(self, context: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(context, mask)
        h = self.embed(context)
        logits = (self.key(h) @ self.query) / math.sqrt(h.shape[-1])  # [M, C]
        if mask is not None:
            logits = logits.masked_fill(mask <= 0, float("-inf"))
        count = (torch.full(context.shape[:1], float(context.shape[1]), device=context.device)
                 if mask is None else mask.to(h.dtype).sum(1))
        # An empty row has only -inf logits (softmax NaN): give it zeros, the prior replaces it.
        weights = torch.softmax(logits.masked_fill((count <= 0).unsqueeze(-1), 0.0), dim=1)
        pooled = (weights.unsqueeze(-1) * self.value(h)).sum(1)
        return _pooled_or_prior(self, pooled, count)


def make_encoder(kind: str, input_dim: int, latent_dim: int, hidden_sizes: Sequence[int]) -> ContextEncoder:
    """The context encoder named ``kind`` (one of :data:`ENCODERS`).

    Raises:
        ConfigError: unknown ``kind`` or non-positive sizes.
    """
    classes = {"np": ProductOfGaussiansEncoder, "mean": MeanEncoder, "attention": AttentionEncoder}
    if kind not in classes:
        raise ConfigError(f"encoder must be one of {list(ENCODERS)}, got {kind!r}")
    for name, v in (("input_dim", input_dim), ("latent_dim", latent_dim), *(("hidden size", h) for h in hidden_sizes)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"encoder {name} must be a positive int, got {v!r}")
    return classes[kind](input_dim, latent_dim, tuple(hidden_sizes))
