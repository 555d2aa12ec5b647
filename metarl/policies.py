"""Stochastic MLP policies as pure functions of a parameter dict.

A policy module only describes an architecture; every computation takes the parameters
explicitly (a pure forward: the module itself is never touched), so MAML can hold one parameter
set per task and run all of them at once with ``torch.func.vmap`` (DESIGN.md, "Agents").

- :class:`GaussianMLPPolicy` — Box actions: an MLP gives the mean, a learned state-independent
  ``log_std`` vector the spread (the MAML policy, Finn et al. 2017 §5.3; rllab's
  ``GaussianMLPPolicy`` with ``learn_std=True``).
- :class:`CategoricalMLPPolicy` — Discrete actions: an MLP gives the logits.

Distribution parameters are plain tensors (``(mean, log_std)`` or ``(logits,)``), and
log-probabilities, KL and entropy are closed-form tensor math, so they vmap and differentiate to
any order.

>>> import torch
>>> policy = GaussianMLPPolicy(obs_dim=2, act_dim=2, hidden_sizes=(8,))
>>> params = policy.init_params(torch.Generator().manual_seed(0))
>>> sorted(params)
['log_std', 'net.0.bias', 'net.0.weight', 'net.2.bias', 'net.2.weight']
>>> obs = torch.zeros(5, 2)
>>> dist = policy.dist_params(params, obs)
>>> actions = policy.sample(dist, torch.Generator().manual_seed(1))
>>> tuple(policy.log_prob(dist, actions).shape)
(5,)
>>> float(policy.kl(dist, dist).abs().max())
0.0
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from metarl.errors import ConfigError

__all__ = [
    "Params",
    "StochasticPolicy",
    "GaussianMLPPolicy",
    "CategoricalMLPPolicy",
    "MaskReLU",
    "make_policy",
    "batched_dist_params",
    "stack_params",
]

#: A policy's parameters by name (as ``named_parameters``); with a leading task axis when batched.
Params = dict[str, Tensor]


class MaskReLU(nn.Module):
    """ReLU computed as ``x · 1[x > 0]`` when autograd records it; without a graph, ``torch.relu``.

    The values are ``nn.ReLU``'s (a negative input gives ``-0.0``, which equals ``0.0``). The mask
    is a constant of the graph, so every derivative, of any order, is a multiplication by it:
    exact, because ReLU's second derivative is zero almost everywhere. ``nn.ReLU``'s backward
    (``threshold_backward``) re-compares its input on every pass and its double backward adds a
    second one. The TRPO meta-update's curvature products are such higher-order passes, and the
    mask makes each ~20–30% cheaper on CPU (benchmarks/RESULTS.md, issue 10).
    """

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            return torch.relu(x)
        return x * (x > 0).to(x.dtype)


_ACTIVATIONS = {"tanh": nn.Tanh, "relu": MaskReLU}


def _mlp(in_dim: int, out_dim: int, hidden_sizes: Sequence[int], activation: str) -> nn.Sequential:
    if activation not in _ACTIVATIONS:
        raise ConfigError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    sizes = [int(in_dim), *(int(h) for h in hidden_sizes), int(out_dim)]
    if any(s < 1 for s in sizes):
        raise ConfigError(f"layer sizes must be positive, got hidden_sizes={tuple(hidden_sizes)!r}")
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def _mlp_apply(net: nn.Sequential, prefix: str, param: Callable[[str], Tensor], x: Tensor) -> Tensor:
    """``net(x)`` with each Linear's weight and bias read through ``param`` (what ``nn.Linear`` computes)."""
    for i, layer in enumerate(net):
        if isinstance(layer, nn.Linear):
            x = F.linear(x, param(f"{prefix}{i}.weight"), param(f"{prefix}{i}.bias"))
        else:  # a parameter-free activation
            x = layer(x)
    return x


class StochasticPolicy(nn.Module, ABC):
    """Base class: an architecture whose computations take a parameter dict explicitly."""

    #: Whether ``∇_new KL(old ‖ new)`` vanishes in the distribution parameters at ``new == old``
    #: (free parameters such as a Gaussian's mean and log-std). Then the KL's Hessian in the network
    #: parameters is exactly the Gauss-Newton matrix ``Jᵀ (∇²KL) J`` (metarl.optim.gauss_newton_product);
    #: constrained parameters such as log-probabilities (which sum to one) keep a second-order term.
    kl_stationary_in_dist_params: bool = False

    def init_params(self, generator: torch.Generator, device: torch.device | str = "cpu") -> Params:
        """Fresh parameters (detached leaf tensors): Xavier-uniform weights, zero biases.

        The draw uses only ``generator`` (never the global torch RNG), so a seed fixes them.
        """
        out: Params = {}
        for name, p in self.named_parameters():
            if name.endswith("weight"):
                fan_out, fan_in = p.shape
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                value = (torch.rand(p.shape, generator=generator, dtype=p.dtype) * 2 - 1) * bound
            else:
                value = self._initial_value(name, p)
            out[name] = value.to(device)
        return out

    def _initial_value(self, name: str, p: Tensor) -> Tensor:
        return torch.zeros_like(p, device="cpu")

    def dist_params(self, params: Params, obs: Tensor) -> tuple[Tensor, ...]:
        """Distribution parameters for ``obs [..., obs_dim]`` under ``params``.

        Pure: the module is never touched (``torch.func.functional_call`` swaps its attributes
        for the call), so threads may evaluate different parameter sets at once (the TRPO
        meta-update's task groups). A name missing from ``params`` takes the module's own value.
        """
        return self._dist(lambda name: params[name] if name in params else self.get_parameter(name), obs)

    def forward(self, obs: Tensor) -> tuple[Tensor, ...]:
        return self._dist(self.get_parameter, obs)

    @abstractmethod
    def _dist(self, param: Callable[[str], Tensor], obs: Tensor) -> tuple[Tensor, ...]:
        """Distribution parameters for ``obs``, reading each parameter by name through ``param``."""

    @abstractmethod
    def log_prob(self, dist: tuple[Tensor, ...], actions: Tensor) -> Tensor:
        """Log-likelihood ``[...]`` of ``actions`` under the distribution ``dist``."""

    @abstractmethod
    def kl(self, old: tuple[Tensor, ...], new: tuple[Tensor, ...]) -> Tensor:
        """``KL(old ‖ new)`` per sample, ``[...]``."""

    @abstractmethod
    def entropy(self, dist: tuple[Tensor, ...]) -> Tensor:
        """Entropy per sample, ``[...]``."""

    @abstractmethod
    def sample(self, dist: tuple[Tensor, ...], generator: torch.Generator) -> Tensor:
        """Draw actions with ``generator`` (a CPU generator: same draws on every device)."""

    @abstractmethod
    def mode(self, dist: tuple[Tensor, ...]) -> Tensor:
        """The most likely action."""


class GaussianMLPPolicy(StochasticPolicy):
    """Diagonal Gaussian with an MLP mean and a learned state-independent ``log_std``.

    Args:
        obs_dim, act_dim: flat observation and action sizes.
        hidden_sizes: MLP hidden layers (MAML: ``(100, 100)``, Finn et al. 2017 §5.3).
        activation: ``"tanh"`` or ``"relu"``.
        init_std: initial standard deviation (rllab/MAML default 1.0).
        min_log_std: floor on ``log_std`` (keeps the likelihood finite; pytorch-maml-rl uses 1e-6 on σ).
    """

    kl_stationary_in_dist_params = True

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int] = (100, 100),
        activation: str = "tanh",
        init_std: float = 1.0,
        min_log_std: float = math.log(1e-6),
    ) -> None:
        super().__init__()
        if not (math.isfinite(init_std) and init_std > 0):
            raise ConfigError(f"init_std must be a positive number, got {init_std!r}")
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.net = _mlp(obs_dim, act_dim, hidden_sizes, activation)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        self.init_std = float(init_std)
        self.min_log_std = float(min_log_std)

    def _initial_value(self, name: str, p: Tensor) -> Tensor:
        if name == "log_std":
            return torch.full(p.shape, math.log(self.init_std), dtype=p.dtype)
        return super()._initial_value(name, p)

    def _dist(self, param: Callable[[str], Tensor], obs: Tensor) -> tuple[Tensor, Tensor]:
        mean = _mlp_apply(self.net, "net.", param, obs)
        log_std = param("log_std").clamp_min(self.min_log_std).expand_as(mean)
        return mean, log_std

    def log_prob(self, dist: tuple[Tensor, ...], actions: Tensor) -> Tensor:
        mean, log_std = dist
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def kl(self, old: tuple[Tensor, ...], new: tuple[Tensor, ...]) -> Tensor:
        (m0, s0), (m1, s1) = old, new
        # KL of diagonal Gaussians, summed over action dimensions.
        var_ratio = torch.exp(2 * (s0 - s1))
        return (s1 - s0 + 0.5 * (var_ratio + ((m0 - m1) * torch.exp(-s1)) ** 2 - 1.0)).sum(-1)

    def entropy(self, dist: tuple[Tensor, ...]) -> Tensor:
        _, log_std = dist
        return (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)

    def sample(self, dist: tuple[Tensor, ...], generator: torch.Generator) -> Tensor:
        mean, log_std = dist
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
        return mean + noise * torch.exp(log_std)

    def mode(self, dist: tuple[Tensor, ...]) -> Tensor:
        return dist[0]


class CategoricalMLPPolicy(StochasticPolicy):
    """Categorical distribution over ``num_actions`` with MLP logits.

    Args:
        obs_dim: flat observation size.
        num_actions: number of discrete actions.
        hidden_sizes, activation: as :class:`GaussianMLPPolicy`.
    """

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes: Sequence[int] = (100, 100), activation: str = "tanh") -> None:
        super().__init__()
        self.obs_dim, self.num_actions = int(obs_dim), int(num_actions)
        self.net = _mlp(obs_dim, num_actions, hidden_sizes, activation)

    def _dist(self, param: Callable[[str], Tensor], obs: Tensor) -> tuple[Tensor]:
        return (torch.log_softmax(_mlp_apply(self.net, "net.", param, obs), dim=-1),)

    def log_prob(self, dist: tuple[Tensor, ...], actions: Tensor) -> Tensor:
        (logp,) = dist
        return torch.gather(logp, -1, actions.long().unsqueeze(-1)).squeeze(-1)

    def kl(self, old: tuple[Tensor, ...], new: tuple[Tensor, ...]) -> Tensor:
        (l0,), (l1,) = old, new
        return (torch.exp(l0) * (l0 - l1)).sum(-1)

    def entropy(self, dist: tuple[Tensor, ...]) -> Tensor:
        (logp,) = dist
        return -(torch.exp(logp) * logp).sum(-1)

    def sample(self, dist: tuple[Tensor, ...], generator: torch.Generator) -> Tensor:
        (logp,) = dist
        # Gumbel-max with CPU noise: the same draws on every device.
        u = torch.rand(logp.shape, generator=generator, dtype=logp.dtype).clamp_(1e-12, 1.0).to(logp.device)
        return torch.argmax(logp - torch.log(-torch.log(u)), dim=-1)

    def mode(self, dist: tuple[Tensor, ...]) -> Tensor:
        return torch.argmax(dist[0], dim=-1)


def make_policy(
    observation_space: spaces.Space,
    action_space: spaces.Space,
    hidden_sizes: Sequence[int] = (100, 100),
    activation: str = "tanh",
    init_std: float = 1.0,
) -> StochasticPolicy:
    """The policy for a pair of spaces: Gaussian for ``Box`` actions, categorical for ``Discrete``.

    >>> from gymnasium import spaces
    >>> type(make_policy(spaces.Box(-1, 1, (3,)), spaces.Discrete(4))).__name__
    'CategoricalMLPPolicy'
    """
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise ConfigError(f"MLP policies need a flat Box observation space, got {observation_space}")
    obs_dim = observation_space.shape[0]
    if isinstance(action_space, spaces.Discrete):
        return CategoricalMLPPolicy(obs_dim, int(action_space.n), hidden_sizes, activation)
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        return GaussianMLPPolicy(obs_dim, action_space.shape[0], hidden_sizes, activation, init_std)
    raise ConfigError(f"MLP policies support Box (flat) or Discrete actions, got {action_space}")


def batched_dist_params(policy: StochasticPolicy, params: Params, obs: Tensor) -> tuple[Tensor, ...]:
    """Distribution parameters of ``M`` parameter sets at once (one vmapped forward).

    Args:
        params: every tensor with a leading task axis ``[M, ...]``.
        obs: ``[M, ..., obs_dim]``: task ``m``'s observations go through its own parameters.
    """
    return torch.func.vmap(policy.dist_params)(params, obs)


def stack_params(params: Params, num: int) -> Params:
    """``num`` copies of ``params`` along a new leading task axis (a view; gradients sum back)."""
    return {k: v.unsqueeze(0).expand(num, *v.shape) for k, v in params.items()}
