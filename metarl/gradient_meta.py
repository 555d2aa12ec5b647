"""Machinery shared by the gradient-based meta-learners (MAML, ProMP, E-MAML, Reptile).

What every agent of the family does the same way lives here; each agent module owns only its
loss and update:

- :class:`GradientMetaConfig`: the fields they share (meta-batch, sampling, inner step, policy,
  returns and baseline, evaluation);
- :class:`TaskBatch`: a meta-batch's episodes, task-major ``[M, T, E]``;
- inner-loss estimators of one task: :func:`reinforce_loss` (Finn et al. 2017, eq. 4),
  :func:`lvc_loss` (Rothfuss et al. 2019, eq. 12) and :func:`dice_loss` (Foerster et al. 2018);
- :class:`GradientMetaAgent`: sampling through :mod:`metarl.samplers`, returns and per-task
  linear baselines, the batched (``vmap(grad(·))``) inner step, evaluation, checkpoints, and the
  meta-objectives through the adaptation (the post-adaptation surrogate and its TRPO step with
  the KL curvature through the adaptation) that MAML and E-MAML both use.

>>> import torch
>>> logp = torch.zeros(3, 1, requires_grad=True); adv = torch.tensor([[1.0], [-1.0], [2.0]])
>>> mask = torch.ones(3, 1)
>>> g_lvc, = torch.autograd.grad(lvc_loss(logp, adv, mask), logp)
>>> g_dice, = torch.autograd.grad(dice_loss(logp, adv, mask), logp)
>>> g_reinforce, = torch.autograd.grad(reinforce_loss(logp, adv, mask), logp)
>>> torch.equal(g_lvc, g_reinforce) and torch.allclose(g_dice, g_reinforce)  # one step; they differ from the second derivative on
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

import metarl
from metarl.agent import Agent, EvalResult, resolve_device
from metarl.baselines import LinearFeatureBaseline
from metarl.config import check_numbers
from metarl.errors import CheckpointError, ConfigError, SpaceMismatchError, TrainingDivergedError
from metarl.losses import normalize_advantages
from metarl.meta_env import check_seed
from metarl.optim import (
    backtracking_line_search,
    conjugate_gradient,
    flatten,
    gauss_newton_product,
    hessian_vector_product,
    unflatten,
)
from metarl.policies import Params, StochasticPolicy, batched_dist_params, make_policy, stack_params
from metarl.returns import discounted_returns, gae
from metarl.samplers import EnvSpec, LocalSampler, Sampler, TaskPolicySpec
from metarl.sampling import Rollout
from metarl.tasks import Task
from metarl.threads import parallel_map

__all__ = [
    "GradientMetaConfig",
    "TRPOMetaConfig",
    "GradientMetaAgent",
    "TaskBatch",
    "Adaptation",
    "InnerEstimator",
    "reinforce_loss",
    "lvc_loss",
    "dice_loss",
    "magic_box",
    "eval_lr_schedule",
    "check_common_config",
    "task_mean",
]

InnerEstimator = Literal["reinforce", "lvc", "dice"]


# ==== config =====================================================================================
@dataclass
class GradientMetaConfig:
    """Hyper-parameters every gradient-based meta-learner shares (defaults: MAML's 2-D navigation)."""

    meta_batch_size: int = 20
    """Tasks per meta-iteration ``M`` (MAML paper: 20 for navigation, 40 for locomotion)."""
    episodes_per_task: int = 20
    """Episodes per task and per gradient step ``E`` (MAML paper: K = 20 trajectories)."""
    horizon: int = 0
    """Steps per episode ``T``; 0 means the env's time limit (paper: 100 navigation, 200 locomotion)."""
    num_inner_steps: int = 1
    """Inner gradient steps during meta-training (paper: 1)."""
    inner_lr: float = 0.1
    """Inner step size α (paper: 0.1)."""
    hidden_sizes: tuple[int, ...] = (100, 100)
    """Policy MLP hidden layers (paper: two layers of 100)."""
    activation: Literal["tanh", "relu"] = "relu"
    """Hidden nonlinearity (paper: ReLU)."""
    init_std: float = 1.0
    """Initial action standard deviation of the Gaussian policy (rllab default)."""
    gamma: float = 0.99
    """Discount factor (reference code: 0.99)."""
    gae_lambda: float = 1.0
    """GAE λ for advantages against the linear baseline (reference code: 1.0, i.e. G_t − b(s_t))."""
    normalize_advantages: bool = True
    """Standardise advantages per task (rllab ``center_adv``)."""
    baseline_reg: float = 1e-5
    """Ridge coefficient of the linear feature baseline (rllab: 1e-5)."""
    eval_steps: int = 3
    """Gradient steps of the evaluation curve (the paper plots 0..3)."""
    iterations: int = 25
    """Meta-iterations ``metarl train`` runs when ``--iterations`` is not given."""



@dataclass
class TRPOMetaConfig(GradientMetaConfig):
    """The fields of a TRPO meta-update through the adaptation (MAML, E-MAML)."""

    first_order: bool = False
    """First-order variant: treat the inner gradient as a constant (no second derivatives)."""
    max_kl: float = 0.01
    """TRPO trust-region size δ on the mean KL (paper/reference: 0.01)."""
    cg_iters: int = 10
    """Conjugate-gradient iterations (reference: 10)."""
    cg_damping: float = 1e-5
    """Damping added to the KL Hessian-vector product (pytorch-maml-rl: 1e-5)."""
    cg_subsample: int = 4
    """Curvature on every k-th episode of each task: 1 = all (exact; the paper's presets); k > 1
    makes each conjugate-gradient product k times cheaper, as OpenAI baselines' TRPO does with
    every 5th sample: the KL Hessian through the adaptation on the subsample, at the adapted
    parameters of the full data. The gradient, the adapted parameters and the line search stay
    exact (an approximation of the step direction only; benchmarks/maml_equivalence.py)."""
    update_task_groups: int = 2
    """The TRPO meta-update splits the meta-batch into this many groups of tasks and computes
    each group's surrogate, meta-gradient, curvature products and line-search checks on its own
    thread (at most one per usable core; :func:`metarl.threads.parallel_map`), then sums them
    weighted by group size. The same update as one group up to floating-point summation order;
    results depend on this number, never on how many cores ran the groups."""
    ls_max_steps: int = 15
    """Backtracking line-search candidates (pytorch-maml-rl: 15)."""
    ls_backtrack_ratio: float = 0.8
    """Line-search shrink factor (pytorch-maml-rl: 0.8)."""


def _positive_int(cfg: Any, name: str) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ConfigError(f"{name} must be a positive int, got {v!r}")


def _positive_number(cfg: Any, name: str) -> None:
    v = getattr(cfg, name)
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
        raise ConfigError(f"{name} must be a positive number, got {v!r}")


def check_common_config(cfg: Any, *, positive_ints: Sequence[str] = (), positive: Sequence[str] = (), estimators: Sequence[str] = ()) -> None:
    """Check the :class:`GradientMetaConfig` fields of ``cfg`` and the agent's own named fields.

    Raises:
        ConfigError: naming the first bad field and its value.
    """
    for name in ("meta_batch_size", "episodes_per_task", "num_inner_steps", "eval_steps", "iterations", *positive_ints):
        _positive_int(cfg, name)
    if isinstance(cfg.horizon, bool) or not isinstance(cfg.horizon, (int, np.integer)) or cfg.horizon < 0:
        raise ConfigError(f"horizon must be a non-negative int (0 = the env's time limit), got {cfg.horizon!r}")
    for name in ("inner_lr", "init_std", *positive):
        _positive_number(cfg, name)
    for name in ("gamma", "gae_lambda"):
        v = getattr(cfg, name)
        if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
            raise ConfigError(f"{name} must lie in [0, 1], got {v!r}")
    if cfg.baseline_reg < 0:
        raise ConfigError(f"baseline_reg must be >= 0, got {cfg.baseline_reg!r}")
    if isinstance(cfg, TRPOMetaConfig):
        for name in ("cg_iters", "ls_max_steps", "cg_subsample", "update_task_groups"):
            _positive_int(cfg, name)
        _positive_number(cfg, "max_kl")
        if not 0.0 < cfg.ls_backtrack_ratio < 1.0:
            raise ConfigError(f"ls_backtrack_ratio must lie in (0, 1), got {cfg.ls_backtrack_ratio!r}")
        if cfg.cg_damping < 0:
            raise ConfigError(f"cg_damping must be >= 0, got {cfg.cg_damping!r}")
    if estimators and getattr(cfg, "inner_estimator", None) not in estimators:
        raise ConfigError(f"inner_estimator must be one of {list(estimators)}, got {getattr(cfg, 'inner_estimator', None)!r}")
    check_numbers(cfg, source=type(cfg).__name__)  # every other float field: finite and >= 0


def eval_lr_schedule(inner_lr: float, num_steps: int) -> list[float]:
    """Evaluation step sizes: α for the first step, α/2 after (Finn et al. 2017, §5.3)."""
    return [inner_lr] + [inner_lr / 2] * (num_steps - 1)


# ==== inner-loss estimators of ONE task (axes [T, E]; ``logp`` differentiable) ====================
def reinforce_loss(logp: Tensor, adv: Tensor, mask: Tensor) -> Tensor:
    """REINFORCE loss ``-mean_t log π(a_t|s_t) Â_t`` over the valid steps (Finn et al. 2017, eq. 4).

    Its Hessian lacks the score-function outer products, so MAML's meta-gradient through it is
    biased (Rothfuss et al. 2019, §4; Foerster et al. 2018, §4).
    """
    return -(logp * adv * mask).sum() / mask.sum().clamp_min(1.0)


def lvc_loss(logp: Tensor, adv: Tensor, mask: Tensor) -> Tensor:
    """Low-variance curvature (LVC) loss: ``-mean_t [π(a_t|s_t) / ⊥π(a_t|s_t)] Â_t``.

    Rothfuss et al. 2019 (ProMP), eq. 12, with the reward-to-go replaced by the baselined
    advantage as in their code. Its value is ``-mean_t Â_t``, its gradient that of
    :func:`reinforce_loss`; the Hessian is
    ``-mean_t Â_t (∇log π_t ∇log π_tᵀ + ∇²log π_t)``: the per-step score products, without
    DiCE's cross-step terms (biased in the curvature, low variance).
    """
    ratio = torch.exp(logp - logp.detach())  # 1 in value; ⊥ stops every order of derivative
    return -(ratio * adv * mask).sum() / mask.sum().clamp_min(1.0)


def magic_box(x: Tensor) -> Tensor:
    """DiCE's ⧖ operator ``exp(x - ⊥x)``: 1 in value, ``∇⧖(x) = ⧖(x) ∇x`` (Foerster et al. 2018, eq. 4)."""
    return torch.exp(x - x.detach())


def dice_loss(logp: Tensor, adv: Tensor, mask: Tensor) -> Tensor:
    """DiCE loss in its advantage form: ``-mean_t [⧖(Σ_{t'≤t} log π_t') - ⧖(Σ_{t'<t} log π_t')] Â_t``.

    Foerster et al. 2018 (eq. 5) written with advantages as in Farquhar et al. 2019 ("loaded
    DiCE", §4, with no discount on past dependencies); the baseline inside ``Â_t = G_t - b(s_t)``
    enters as Mao et al. 2019's ``⧖(a_{<t})(1 - ⧖(a_t)) b(s_t)``, which also lowers the variance of
    the second derivative. Value 0 (⧖ is 1). First derivative: ``-mean_t ∇log π_t Â_t``, the
    step of :func:`reinforce_loss` with the same ``Â`` (so one α serves both); second derivative:
    ``-mean_t Â_t (∇S_≤t ∇S_≤tᵀ - ∇S_<t ∇S_<tᵀ + ∇²log π_t)`` with ``S`` the summed log-probs
    of the episode: the cross-step score products that REINFORCE's Hessian drops. With
    ``Â_t = γ^t (Σ_{t'≥t} γ^{t'-t} r_t' - b_t)`` every derivative is unbiased for the discounted
    return; the agents pass the same (γ^t-free, normalised) advantages as REINFORCE, matching its
    first-order step exactly (the usual practice; Finn et al. 2017 and ProMP's code drop γ^t too).
    """
    logp = logp * mask
    upto = logp.cumsum(0)  # S_≤t: every action of the same episode up to t (causality)
    return -((magic_box(upto) - magic_box(upto - logp)) * adv * mask).sum() / mask.sum().clamp_min(1.0)


_INNER_LOSSES: dict[str, Callable[..., Tensor]] = {"reinforce": reinforce_loss, "lvc": lvc_loss, "dice": dice_loss}


# ==== batches ====================================================================================
class TaskBatch(NamedTuple):
    """Episodes of a meta-batch, task-major. Axes: ``M`` tasks, ``T`` steps, ``E`` episodes.

    Attributes:
        obs: ``[M, T, E, obs_dim]``.
        actions: ``[M, T, E, act_dim]`` (``[M, T, E]`` for discrete actions), as sampled.
        advantages: ``[M, T, E]`` (baseline-subtracted, normalised per task when configured).
        mask: ``[M, T, E]`` 1 for steps inside each episode.
        episode_returns: ``[M, E]`` undiscounted returns.
        episode_success: ``[M, E]`` 1 where the episode succeeded (envs reporting
            ``info["success"]``, e.g. Meta-World), else None.
    """

    obs: Tensor
    actions: Tensor
    advantages: Tensor
    mask: Tensor
    episode_returns: Tensor
    episode_success: Tensor | None = None


class Adaptation(NamedTuple):
    """Result of :meth:`GradientMetaAgent.adapt`.

    Attributes:
        params: the adapted parameters (a dict like the policy's, no task axis).
        returns: mean episode return before adaptation and after each step (``num_steps + 1``).
    """

    params: Params
    returns: list[float]


def task_major(x: Tensor, M: int, E: int) -> Tensor:
    """``[T, M·E, ...] -> [M, T, E, ...]`` (sub-env ``i`` holds task ``i // E``)."""
    T = x.shape[0]
    return x.reshape(T, M, E, *x.shape[2:]).transpose(0, 1)


def task_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Masked mean over each task's steps ``[M, T, E] -> [M]``."""
    return (x * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1.0)


#: Samples per vmap chunk of the inner step (see GradientMetaAgent._adapt_step).
_VMAP_CHUNK_SAMPLES = 16384


def _weighted_sum(weights: Sequence[float], xs: Sequence[Tensor]) -> Tensor:
    """``Σ w_i x_i`` in a fixed order (one term: ``x`` itself, bit for bit)."""
    if len(xs) == 1 and weights[0] == 1.0:
        return xs[0]
    out = weights[0] * xs[0]
    for w, x in zip(weights[1:], xs[1:], strict=True):
        out = out + w * x
    return out


class _Linearisation(NamedTuple):
    """The TRPO meta-objective at the current θ (see :meth:`GradientMetaAgent._linearise`)."""

    loss: float
    grad: Tensor
    hvp: Callable[[Tensor], Tensor]


def _at(iteration: int) -> str:
    return f"iteration {iteration}" if iteration >= 0 else "evaluation"


def task_groups(M: int, n: int) -> list[slice]:
    """``min(n, M)`` contiguous groups of the ``M`` tasks, sizes as equal as possible (larger first).

    >>> task_groups(5, 2)
    [slice(0, 3, None), slice(3, 5, None)]
    """
    n = max(1, min(n, M))
    sizes = [M // n + (i < M % n) for i in range(n)]
    starts = np.cumsum([0, *sizes]).tolist()
    return [slice(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]


def task_slice(batch: TaskBatch, s: slice) -> TaskBatch:
    """The tasks ``s`` of a task-major batch."""
    return TaskBatch(*(None if x is None else x[s] for x in batch))


def every_kth_episode(batch: TaskBatch, k: int) -> TaskBatch:
    """The batch restricted to every ``k``-th episode of each task."""
    return TaskBatch(*(x[:, :, ::k] for x in batch[:4]), batch.episode_returns[:, ::k], None)


# ==== the shared agent ===========================================================================
class GradientMetaAgent(Agent):
    """Base of the gradient-based meta-learners: ``Cls(env_id, config, seed=, device=, env_kwargs=)``.

    A subclass sets ``name``, ``config_cls`` (a :class:`GradientMetaConfig` subclass) and
    ``display``, checks its config in :meth:`_check_config`, and implements
    :meth:`train_iteration` (its loss and update); everything else is here.

    Args:
        env_id: a registered metarl env id (default ``metarl/Navigation2D-v0``).
        config: the agent's config dataclass (or a dict of its fields); ``None`` means the defaults.
        seed: fixes initial parameters, task draws, env resets and action noise.
        device: where the policy and all updates run (envs step on CPU).
        env_kwargs: keyword arguments for the env (e.g. ``velocity_range``).
    """

    config_cls: ClassVar[type] = GradientMetaConfig
    default_env: ClassVar[str] = "metarl/Navigation2D-v0"
    headline: ClassVar[str] = "rollout/post_return"
    #: Name in messages and the progress bar ("MAML", "ProMP", ...).
    display: ClassVar[str] = "agent"

    def __init__(
        self,
        env_id: str | None = None,
        config: Any = None,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        env_id = env_id or self.default_env
        config_cls = self.config_cls
        if config is None:
            config = config_cls()
        elif isinstance(config, dict):
            known = {f.name for f in fields(config_cls)}
            unknown = sorted(set(config) - known)
            if unknown:
                raise ConfigError(f"unknown {self.display} config field(s) {unknown}; known: {sorted(known)}")
            config = config_cls(**config)
        if isinstance(config.hidden_sizes, list):
            config.hidden_sizes = tuple(config.hidden_sizes)
        self._check_config(config)
        seed = check_seed(seed)  # an int in [0, 2**63), as everywhere in metarl
        device = resolve_device(device)
        super().__init__(env_id, config, seed=int(seed), device=str(device))
        self.env_kwargs = dict(env_kwargs or {})
        self._device = device

        # One native batched env for the meta-batch (the local sampler steps it; evaluation envs
        # are made per size on demand).
        M, E = config.meta_batch_size, config.episodes_per_task
        self.venv = metarl.make_vec(env_id, M * E, **self.env_kwargs)
        self.horizon = config.horizon or self.venv.unwrapped.max_episode_steps
        obs_space, act_space = self.venv.single_observation_space, self.venv.single_action_space
        self.policy: StochasticPolicy = make_policy(obs_space, act_space, config.hidden_sizes, config.activation, config.init_std)
        self.policy.to(device)
        self.discrete = isinstance(act_space, spaces.Discrete)
        self._act_low = self._act_high = None
        if not self.discrete and np.isfinite(act_space.low).all() and np.isfinite(act_space.high).all():
            self._act_low = torch.as_tensor(act_space.low, dtype=torch.float32, device=device)
            self._act_high = torch.as_tensor(act_space.high, dtype=torch.float32, device=device)
        self.baseline = LinearFeatureBaseline(config.baseline_reg)
        #: Where rollouts come from (metarl.samplers): local by default, ``RaySampler`` to distribute.
        self.sampler: Sampler = LocalSampler()
        self.sampler.adopt(EnvSpec(env_id, self.env_kwargs), self.venv)

        init = self.policy.init_params(torch.Generator().manual_seed(self.seed), device)
        self.params: Params = {k: v.requires_grad_(True) for k, v in init.items()}
        self.optimizer: torch.optim.Optimizer | None = self._make_optimizer()
        self.iteration = 0

    def _check_config(self, cfg: Any) -> None:
        """Raise :class:`ConfigError` for a bad field (subclasses check their own fields too)."""
        check_common_config(cfg)

    def _make_optimizer(self) -> torch.optim.Optimizer | None:
        """The outer optimiser over :attr:`params`, if the agent uses one (its state is checkpointed)."""
        return None

    @property
    def inner_estimator(self) -> str:
        """The inner-loss estimator: the config's ``inner_estimator``, else REINFORCE."""
        return getattr(self.config, "inner_estimator", "reinforce")

    # ---- seeding: every random draw of iteration `it` comes from (seed, it, purpose) -------------
    def _seed_for(self, *key: int) -> int:
        return int(np.random.SeedSequence([self.seed, *key]).generate_state(1)[0] & 0x7FFFFFFF)

    def held_out_tasks(self) -> list[Task]:
        """The env family's fixed held-out tasks."""
        return self.venv.unwrapped.held_out_tasks()

    # ---- sampling --------------------------------------------------------------------------------
    def _sample(self, params: Params, tasks: Sequence[Task], episodes: int, seed: int) -> Rollout:
        """Roll out task ``m`` with ``params[·][m]`` on ``episodes`` sub-envs each, through :attr:`sampler`."""
        spec = TaskPolicySpec(self.policy, params, episodes, seed, self._act_low, self._act_high)
        env = EnvSpec(self.env_id, self.env_kwargs)
        return self.sampler.sample(env, spec, tasks, episodes=episodes, horizon=self.horizon, seed=seed, device=self._device)

    def _process(self, ro: Rollout, M: int, E: int, iteration: int = -1) -> TaskBatch:
        """Discounted returns, per-task linear baseline, advantages (Finn et al. 2017 §5.3)."""
        cfg = self.config
        mask = ro.valid
        returns = discounted_returns(ro.rewards, cfg.gamma, mask)
        self._check_finite(returns, "discounted return (NaN/inf rewards from the env)", iteration)
        obs = ro.obs.reshape(ro.obs.shape[0], M, E, -1)
        values = self.baseline.fit_predict(obs, returns.reshape(-1, M, E), mask.reshape(-1, M, E)).reshape_as(returns)
        if cfg.gae_lambda == 1.0:
            adv = (returns - values) * mask  # GAE(λ=1) without bootstrap: the reference's choice
        else:
            # Episode end = last valid step; no bootstrap past it (the baseline pads with 0).
            next_valid = torch.cat([mask[1:], torch.zeros_like(mask[:1])])
            end = (mask > 0) & (next_valid == 0)
            next_values = torch.cat([values[1:], torch.zeros_like(values[:1])]) * next_valid
            adv, _ = gae(ro.rewards * mask, values, next_values, end, end, cfg.gamma, cfg.gae_lambda)
            adv = adv * mask
        adv = adv.reshape(-1, M, E)
        if cfg.normalize_advantages:
            adv = normalize_advantages(adv, mask.reshape(-1, M, E), dim=(0, 2))
        actions = ro.extras.get("raw_action", ro.actions)
        return TaskBatch(
            obs=task_major(ro.obs, M, E),
            actions=task_major(actions, M, E),
            advantages=adv.transpose(0, 1),
            mask=task_major(mask, M, E),
            episode_returns=ro.episode_returns.reshape(M, E),
            episode_success=None if ro.success is None else ro.episode_success.reshape(M, E),
        )

    # ---- inner loop (Finn et al. 2017, eq. 1; the estimator is the config's) --------------------
    def _inner_loss(self, params: Params, obs: Tensor, actions: Tensor, adv: Tensor, mask: Tensor) -> Tensor:
        """Inner loss of ONE task (axes ``[T, E]``): :func:`reinforce_loss`, :func:`lvc_loss` or :func:`dice_loss`."""
        logp = self.policy.log_prob(self.policy.dist_params(params, obs), actions)
        return _INNER_LOSSES[self.inner_estimator](logp, adv, mask)

    def _adapt_step(self, params: Params, batch: TaskBatch, lr: float, *, first_order: bool, iteration: int) -> Params:
        """One inner step for all tasks at once: ``θ'_m = θ_m - α ∇ L_m(θ_m)``, vmapped over ``m``.

        Differentiable in ``params`` to second order unless ``first_order`` (then the inner
        gradient is a constant: FO-MAML, Finn et al. 2017 §5.2).
        """
        M, T, E = batch.mask.shape
        # Tasks go through vmap in chunks of ~16k samples: past that, the batched intermediates
        # fall out of cache and one huge vmap runs 2x slower than chunks (benchmarks/bench_maml.py).
        chunk = max(1, _VMAP_CHUNK_SAMPLES // (T * E))
        grad_fn = torch.func.vmap(torch.func.grad(self._inner_loss), chunk_size=chunk if chunk < M else None)
        grads = grad_fn(params, batch.obs, batch.actions, batch.advantages, batch.mask)
        for name, g in grads.items():
            if not torch.isfinite(g).all():
                raise TrainingDivergedError(f"{_at(iteration)}: inner-loop gradient of {name!r} is not finite")
        if first_order:
            grads = {k: g.detach() for k, g in grads.items()}
        return {k: params[k] - lr * grads[k] for k in params}

    def _adapt(self, params: Params, batches: Sequence[TaskBatch], lrs: Sequence[float], *, first_order: bool, iteration: int) -> Params:
        """Adapted parameters ``[M, ...]`` from shared ``params`` through all inner steps."""
        p = stack_params(params, batches[0].obs.shape[0])
        for batch, lr in zip(batches, lrs, strict=True):
            p = self._adapt_step(p, batch, lr, first_order=first_order, iteration=iteration)
        return p

    def _sample_and_adapt(
        self, tasks: Sequence[Task], lrs: Sequence[float], episodes: int, seed: int, iteration: int, timers: dict[str, float]
    ) -> tuple[list[TaskBatch], TaskBatch, Params]:
        """Steps 1-3: sample, adapt (no graph: only the sampling policies), sample again."""
        M, E = len(tasks), episodes
        params = {k: v.detach() for k, v in self.params.items()}
        p = stack_params(params, M)
        batches: list[TaskBatch] = []
        for k in range(len(lrs) + 1):
            t0 = time.perf_counter()
            ro = self._sample(p, tasks, E, self._seed_for(seed, k))
            batches.append(self._process(ro, M, E, iteration))
            timers["sample"] += time.perf_counter() - t0
            if k == len(lrs):
                break
            t0 = time.perf_counter()
            with torch.no_grad():
                p = self._adapt_step(p, batches[-1], lrs[k], first_order=True, iteration=iteration)
            timers["adapt"] += time.perf_counter() - t0
        return batches[:-1], batches[-1], p

    # ---- outer objective ---------------------------------------------------------------------------
    def _adapted(self, batches: Sequence[TaskBatch], iteration: int) -> Params:
        """``θ'(θ)`` for every task, differentiable in :attr:`params` (to first order only in a ``first_order`` config)."""
        lrs = [self.config.inner_lr] * len(batches)
        return self._adapt(self.params, batches, lrs, first_order=getattr(self.config, "first_order", False), iteration=iteration)

    def _outer_terms(self, adapted: Params, valid: TaskBatch, old_dist: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        """``(log-ratio, surrogate loss, mean KL)`` of adapted parameters on the post-adaptation episodes.

        Surrogate: ``-mean_m mean_t r_t Â_t`` with ``r_t = π_θ'(a|s) / π_θ'old(a|s)``; KL:
        ``mean_m mean_t KL(π_θ'old ‖ π_θ')`` (Finn et al. 2017 §5.3, TRPO as meta-optimiser;
        as pytorch-maml-rl ``MAMLTRPO.surrogate_loss``).
        """
        return self._surrogate(batched_dist_params(self.policy, adapted, valid.obs), valid, old_dist)

    def _surrogate(self, dist: tuple[Tensor, ...], valid: TaskBatch, old_dist: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`_outer_terms` from the adapted policies' distribution parameters on ``valid.obs``."""
        log_ratio = self.policy.log_prob(dist, valid.actions) - self.policy.log_prob(old_dist, valid.actions)
        loss = -task_mean(torch.exp(log_ratio) * valid.advantages, valid.mask).mean()
        return log_ratio, loss, self._mean_kl(old_dist, dist, valid.mask)

    def _mean_kl(self, old_dist: tuple[Tensor, ...], dist: tuple[Tensor, ...], mask: Tensor) -> Tensor:
        """``mean_m mean_t KL(π_old ‖ π)`` over each task's valid steps."""
        return task_mean(self.policy.kl(old_dist, dist), mask).mean()

    def _optimizer_step(self, loss: Tensor, iteration: int) -> None:
        """One step of :attr:`optimizer` on ``loss`` (its gradient in :attr:`params` must be finite)."""
        assert self.optimizer is not None
        self.optimizer.zero_grad()
        loss.backward()
        for n, p in self.params.items():
            self._check_finite(p.grad, f"outer gradient of {n!r}", iteration)
        self.optimizer.step()

    def _check_finite(self, value: Tensor, quantity: str, iteration: int) -> None:
        if not torch.isfinite(value).all():
            raise TrainingDivergedError(f"{_at(iteration)}: {quantity} is not finite")


    @property
    def _group_workers(self) -> int | None:
        """Threads for the task groups: one per usable core on CPU; on a GPU the groups' kernels
        share one stream anyway, so they run one after another (same results either way)."""
        return None if self._device.type == "cpu" else 1

    def _groups(self, batches: Sequence[TaskBatch], valid: TaskBatch, old_dist: tuple[Tensor, ...]) -> list[tuple[list[TaskBatch], TaskBatch, tuple[Tensor, ...], float]]:
        """The meta-batch split into ``update_task_groups`` groups: per group its inner batches,
        post-adaptation batch, old distribution and weight (its share of the tasks)."""
        M = valid.mask.shape[0]
        return [([task_slice(b, s) for b in batches], task_slice(valid, s), tuple(d[s] for d in old_dist), (s.stop - s.start) / M)
                for s in task_groups(M, self.config.update_task_groups)]

    def _linearise(self, batches: Sequence[TaskBatch], valid: TaskBatch, old_dist: tuple[Tensor, ...], iteration: int) -> _Linearisation:
        """The TRPO meta-objective at the current θ (:meth:`_linearise_group`), over the task groups.

        Each of the ``update_task_groups`` groups is linearised, and each curvature product taken,
        on its own thread; loss, gradient and products are the group-size-weighted sums (every
        term is a mean over tasks). ``hvp`` includes the damping.
        """
        cfg = self.config
        groups = self._groups(batches, valid, old_dist)
        weights = [g[3] for g in groups]

        def linearise(group: tuple) -> _Linearisation:
            inner, post, old_d, _ = group
            with torch.enable_grad():
                return self._linearise_group(inner, post, old_d, iteration)

        parts = parallel_map(linearise, groups, self._group_workers)
        loss = sum(w * p.loss for w, p in zip(weights, parts, strict=True))
        grad = _weighted_sum(weights, [p.grad for p in parts])

        def hvp(v: Tensor) -> Tensor:
            products = parallel_map(lambda p: p.hvp(v), parts, self._group_workers)
            return _weighted_sum(weights, products) + cfg.cg_damping * v

        return _Linearisation(loss, grad, hvp)

    def _linearise_group(self, batches: Sequence[TaskBatch], valid: TaskBatch, old_dist: tuple[Tensor, ...], iteration: int) -> _Linearisation:
        """The TRPO meta-objective of a group of tasks at the current θ: surrogate loss, meta-gradient and KL curvature (undamped).

        With ``θ'(θ)`` the adaptation (per task, through every inner step) and ``J = ∂θ'/∂θ``:

        - meta-gradient ``Jᵀ ∇_θ' L`` (one vector-Jacobian product through the adaptation);
        - KL Hessian ``Jᵀ F J``: exactly the Hessian of the mean KL through the adaptation because
          ``∇_θ' KL = 0`` at the old θ (a test checks it against the double-backward Hessian).
          ``F = ∇²_θ' KL`` is the Gauss-Newton form ``J_πᵀ (∇²KL) J_π`` where the policy's
          distribution parameters are free (Gaussian), the double-backward Hessian otherwise.

        One inner step ``θ_{k+1} = θ_k - α ∇L_k(θ_k)`` has the Jacobian ``I - α ∇²L_k``, symmetric,
        so ``J v`` is the same vector-Jacobian product as ``Jᵀ v`` taken in the other order: both
        reuse the graphs of the inner steps (built once per outer step, at leaf copies of ``θ_k``),
        and no product differentiates the adaptation more than twice. With ``cg_subsample = k > 1``
        the curvature uses every k-th episode of each task, at the same ``θ_k`` and ``θ'``.
        """
        cfg = self.config
        names = list(self.params)
        M = valid.mask.shape[0]

        def inner_graphs(inner: Sequence[TaskBatch], starts: Sequence[Params] | None) -> tuple[list, list[Params]]:
            # Per step: a leaf copy of θ_k (per task; the given starts, else the chain from θ) and
            # θ_{k+1}(θ_k) with its graph. In FO mode the graph is the identity (detached gradient).
            graphs, points = [], []
            theta = stack_params({n: p.detach() for n, p in self.params.items()}, M)
            for k, batch in enumerate(inner):
                if starts is not None:
                    theta = starts[k]
                leaf = {n: theta[n].detach().clone().requires_grad_(True) for n in names}
                out = self._adapt_step(leaf, batch, cfg.inner_lr, first_order=cfg.first_order, iteration=iteration)
                graphs.append(([leaf[n] for n in names], [out[n] for n in names]))
                points.append(leaf)
                theta = {n: out[n].detach() for n in names}
            return graphs, [*points, theta]

        def pull_back(graphs: list, u: Sequence[Tensor]) -> list[Tensor]:  # Jᵀ u: [M, ...] -> shared
            for leaf, out in reversed(graphs):
                u = torch.autograd.grad(out, leaf, grad_outputs=list(u), retain_graph=True)
            return [x.sum(0) for x in u]

        def push_forward(graphs: list, v: Sequence[Tensor]) -> list[Tensor]:  # J v: shared -> [M, ...]
            u = [x.unsqueeze(0).expand(M, *x.shape) for x in v]
            for leaf, out in graphs:  # each step's Jacobian is symmetric: J_k v = J_kᵀ v
                u = torch.autograd.grad(out, leaf, grad_outputs=list(u), retain_graph=True)
            return list(u)

        def fisher(
            adapted: list[Tensor], data: TaskBatch, old: tuple[Tensor, ...], dist: tuple[Tensor, ...] | None = None
        ) -> Callable[[list[Tensor]], list[Tensor]]:
            if dist is None:
                dist = batched_dist_params(self.policy, dict(zip(names, adapted, strict=True)), data.obs)
            if self.policy.kl_stationary_in_dist_params:
                return gauss_newton_product(dist, adapted, lambda d: self._mean_kl(old, tuple(d), data.mask))
            hvp = hessian_vector_product(lambda: self._mean_kl(old, dist, data.mask), adapted)
            return lambda u: unflatten(hvp(flatten(u)), adapted)

        graphs, points = inner_graphs(batches, None)
        adapted = [points[-1][n].requires_grad_(True) for n in names]
        dist = batched_dist_params(self.policy, dict(zip(names, adapted, strict=True)), valid.obs)
        _, loss, _ = self._surrogate(dist, valid, old_dist)
        self._check_finite(loss, "outer surrogate loss", iteration)
        k = cfg.cg_subsample
        grad = flatten(pull_back(graphs, torch.autograd.grad(loss, adapted, retain_graph=k == 1)))
        self._check_finite(grad, "outer (meta-)gradient", iteration)
        if k == 1:  # the curvature reuses the gradient's graphs
            curv_graphs, curv_fisher = graphs, fisher(adapted, valid, old_dist, dist)
        else:
            curv_graphs, _ = inner_graphs([every_kth_episode(b, k) for b in batches], points[:-1])
            leaf = [a.detach().requires_grad_(True) for a in adapted]
            curv_fisher = fisher(leaf, every_kth_episode(valid, k), tuple(d[:, :, ::k] for d in old_dist))
        plist = list(self.params.values())

        def hvp(v: Tensor) -> Tensor:
            with torch.enable_grad():
                u = curv_fisher(push_forward(curv_graphs, unflatten(v, plist)))
                return flatten(pull_back(curv_graphs, u))

        return _Linearisation(float(loss.detach()), grad, hvp)

    def _trpo_step(
        self, batches: Sequence[TaskBatch], valid: TaskBatch, old_dist, iteration: int, extra: Callable[[], Tensor] | None = None
    ) -> dict[str, float]:
        """TRPO meta-update (Schulman et al. 2015 §6, appendix C) through the adaptation.

        ``extra``: a further loss term of :attr:`params` themselves (not through the adaptation,
        e.g. E-MAML's exploration term), added to the surrogate's value and gradient; the trust
        region stays the KL of the adapted policies.
        """
        cfg = self.config
        plist = list(self.params.values())
        t0 = time.perf_counter()
        loss_old, grad, hvp = self._linearise(batches, valid, old_dist, iteration)
        if extra is not None:
            extra_loss = extra()
            self._check_finite(extra_loss, "extra outer loss term", iteration)
            loss_old += float(extra_loss.detach())
            grad = grad + flatten(torch.autograd.grad(extra_loss, plist))
        t1 = time.perf_counter()
        # H·step_dir comes from CG's residual (b - r), not from an 11th product.
        step_dir, h_step_dir = conjugate_gradient(hvp, grad, cfg.cg_iters, with_product=True)
        # Largest step along step_dir with ½ sᵀHs = δ (Schulman et al. 2015, appendix C).
        shs = 0.5 * (step_dir @ h_step_dir)
        self._check_finite(shs, "KL curvature along the step", iteration)
        step = step_dir * torch.sqrt(cfg.max_kl / shs.clamp_min(1e-12))
        del hvp
        old = [p.detach().clone() for p in plist]
        deltas = unflatten(step, plist)
        groups = self._groups(batches, valid, old_dist)
        weights = [g[3] for g in groups]

        def group_terms(group: tuple) -> tuple[Tensor, Tensor]:
            inner, post, old_d, _ = group
            with torch.no_grad():
                _, loss, kl = self._outer_terms(self._adapted(inner, iteration), post, old_d)
            return loss, kl

        def evaluate(fraction: float) -> tuple[float, float]:
            with torch.no_grad():
                for p, p0, d in zip(plist, old, deltas, strict=True):
                    p.copy_(p0 - fraction * d)
                terms = parallel_map(group_terms, groups, self._group_workers)
                new_loss = _weighted_sum(weights, [t[0] for t in terms])
                new_kl = _weighted_sum(weights, [t[1] for t in terms])
                if extra is not None:
                    new_loss = new_loss + extra()
            return loss_old - float(new_loss), float(new_kl)

        t2 = time.perf_counter()
        result = backtracking_line_search(evaluate, cfg.max_kl, cfg.ls_max_steps, cfg.ls_backtrack_ratio)
        if not result.accepted:
            with torch.no_grad():
                for p, p0 in zip(plist, old, strict=True):
                    p.copy_(p0)
        return {
            "time/outer_grad_s": t1 - t0,
            "time/outer_cg_s": t2 - t1,
            "time/outer_line_search_s": time.perf_counter() - t2,
            "train/kl": result.kl if result.accepted else 0.0,
            "train/surrogate_improvement": result.improvement if result.accepted else 0.0,
            "train/line_search_steps": float(result.steps),
            "train/line_search_accepted": float(result.accepted),
            "train/outer_loss": loss_old,
            "train/grad_norm": float(grad.norm()),
        }


    # ---- training loop -------------------------------------------------------------------------------
    def train_iteration(self, iteration: int | None = None) -> dict[str, float]:
        """One meta-iteration: draw tasks, sample and adapt (:meth:`_draw_and_adapt`), then the agent's
        :meth:`outer_update`; returns the rollout/time metrics and the update's ``train/`` ones."""
        it = self.iteration if iteration is None else int(iteration)
        start = time.perf_counter()
        timers = {"sample": 0.0, "adapt": 0.0}
        batches, valid, adapted = self._draw_and_adapt(it, [self.config.inner_lr] * self.config.num_inner_steps, timers)
        t0 = time.perf_counter()
        stats = self.outer_update(batches, valid, adapted, it)
        for n, p in self.params.items():
            self._check_finite(p, f"parameter {n!r} after the outer update", it)
        outer_s = time.perf_counter() - t0
        self.iteration = it + 1
        return {**self._iteration_metrics(batches, valid, timers, start, outer_s), **stats}

    def outer_update(self, batches: Sequence[TaskBatch], valid: TaskBatch, adapted: Params, iteration: int) -> dict[str, float]:
        """The agent's meta-update of :attr:`params` from the inner batches, the post-adaptation batch
        and the adapted parameters ``[M, ...]``; returns its ``train/`` metrics."""
        raise NotImplementedError(f"{type(self).__name__} must define outer_update")

    def _draw_and_adapt(self, iteration: int, lrs: Sequence[float], timers: dict[str, float]) -> tuple[list[TaskBatch], TaskBatch, Params]:
        """Steps 1-3 of a meta-iteration: draw ``M`` training tasks (from ``(seed, iteration)``),
        sample, adapt with ``lrs``, sample again (see :meth:`_sample_and_adapt`)."""
        cfg = self.config
        tasks = self.venv.unwrapped.distribution.sample(np.random.default_rng(self._seed_for(iteration, 0)), cfg.meta_batch_size)
        return self._sample_and_adapt(tasks, lrs, cfg.episodes_per_task, self._seed_for(iteration, 1), iteration, timers)

    def _iteration_metrics(
        self, batches: Sequence[TaskBatch], valid: TaskBatch, timers: dict[str, float], start: float, outer_s: float
    ) -> dict[str, float]:
        """The ``rollout/``, ``adapt/``, ``time/`` metrics and ``env_steps`` of one meta-iteration."""
        cfg = self.config
        pre = float(batches[0].episode_returns.mean())
        post = float(valid.episode_returns.mean())
        success = {}
        if valid.episode_success is not None:  # Meta-World's metric, beside the return
            success = {"rollout/pre_success_rate": float(batches[0].episode_success.mean()),
                       "rollout/success_rate": float(valid.episode_success.mean())}
        return {
            "rollout/pre_return": pre,
            "rollout/post_return": post,
            "adapt/gain": post - pre,
            **success,
            "time/sample_s": timers["sample"],
            "time/adapt_s": timers["adapt"],
            "time/outer_s": outer_s,
            "time/iteration_s": time.perf_counter() - start,
            "env_steps": (len(batches) + 1) * cfg.meta_batch_size * cfg.episodes_per_task * self.horizon,
        }

    def learn(
        self, iterations: int | None = None, *, progress: bool = True, callback: Callable[[dict[str, float]], None] | None = None
    ) -> list[dict[str, float]]:
        """Run ``iterations`` (default ``config.iterations``) more meta-iterations; returns their metrics."""
        iterations = self.config.iterations if iterations is None else iterations
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
            raise ConfigError(f"iterations must be a non-negative int, got {iterations!r}")
        history: list[dict[str, float]] = []
        from rich.progress import Progress

        with Progress(transient=True, disable=not progress) as bar:
            job = bar.add_task(self.display, total=iterations)
            for _ in range(iterations):
                m = self.train_iteration()
                history.append(m)
                if callback is not None:
                    callback(m)
                bar.update(job, advance=1, description=f"{self.display} post {m['rollout/post_return']:.2f} gain {m['adapt/gain']:+.2f}")
        return history


    # ---- adaptation and evaluation -------------------------------------------------------------------
    def eval_lrs(self, num_steps: int) -> list[float]:
        """Step sizes of ``num_steps`` evaluation steps: α, then α/2 (:func:`eval_lr_schedule`)."""
        return eval_lr_schedule(self.config.inner_lr, num_steps) if num_steps else []

    def _curve(self, tasks: Sequence[Task], num_steps: int, seed: int, episodes: int) -> tuple[np.ndarray, Params, np.ndarray | None]:
        checked = [self.venv.unwrapped.distribution.check(t) for t in tasks]
        if not checked:
            raise ConfigError("need at least one task to adapt to")
        timers = {"sample": 0.0, "adapt": 0.0}
        lrs = self.eval_lrs(num_steps)
        batches, final, adapted = self._sample_and_adapt(checked, lrs, episodes, seed, -1, timers)
        rets = [b.episode_returns.mean(1) for b in [*batches, final]]
        success = None
        if final.episode_success is not None:  # [M, K+1] success rate of each task at each step
            success = torch.stack([b.episode_success.mean(1) for b in [*batches, final]], 1).cpu().double().numpy()
        return torch.stack(rets, 1).cpu().double().numpy(), adapted, success

    def adapt(self, task: Task | dict | str, num_steps: int = 1, *, seed: int = 0, episodes: int | None = None) -> Adaptation:
        """Adapt to one task with ``num_steps`` policy-gradient steps (step sizes :meth:`eval_lrs`),
        sampling ``episodes`` (default ``episodes_per_task``) per step."""
        if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 0:
            raise ConfigError(f"num_steps must be a non-negative int, got {num_steps!r}")
        returns, params, _ = self._curve([task], int(num_steps), seed, episodes or self.config.episodes_per_task)
        return Adaptation({k: v[0].detach() for k, v in params.items()}, returns[0].tolist())

    def evaluate(self, tasks: Sequence[Task], *, seed: int, num_steps: int | None = None) -> EvalResult:
        """Held-out adaptation curve: mean return of each task after 0..K steps (no meta-training)."""
        K = self.config.eval_steps if num_steps is None else num_steps
        if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 0:
            raise ConfigError(f"num_steps must be a non-negative int, got {K!r}")
        returns, _, success = self._curve(list(tasks), int(K), seed, self.config.episodes_per_task)
        return EvalResult(
            x="gradient_steps",
            returns=returns,
            success=success,
            extra={"inner_lrs": self.eval_lrs(K), "episodes_per_task": self.config.episodes_per_task},
        )

    # ---- state -----------------------------------------------------------------------------------------
    def spaces_signature(self) -> dict[str, str]:
        return {"observation_space": str(self.venv.single_observation_space), "action_space": str(self.venv.single_action_space)}

    def state_dict(self) -> dict[str, Any]:
        """Parameters, optimiser state and the iteration counter. Every random draw of iteration
        ``it`` is derived from ``(seed, it)``, so these (and the seed) are the whole RNG state."""
        return {
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "iteration": self.iteration,
            "seed": self.seed,
            "config": asdict(self.config),
            "spaces": self.spaces_signature(),
            **self._extra_state(),
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (:mod:`metarl.checkpoint` format: JSON + tensors, atomic, no pickle)."""
        from metarl.checkpoint import save_checkpoint

        return save_checkpoint(
            path,
            {"agent_name": self.name, "env_id": self.env_id, "env_kwargs": self.env_kwargs, "config": asdict(self.config),
             "seed": self.seed, "spaces": self.spaces_signature(), "agent": self.state_dict()},
        )

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu") -> Any:
        """Rebuild an agent saved by :meth:`save` (same env, config, parameters and iteration)."""
        from metarl.checkpoint import load_checkpoint

        state = load_checkpoint(path, required=("agent",))
        missing = [k for k in ("env_id", "config", "seed") if k not in state]
        if missing or state.get("agent_name", cls.name) != cls.name:
            raise CheckpointError(
                f"{path} is not a checkpoint written by {cls.display}.save (missing {missing}); for a run directory "
                "use `metarl eval DIR` or build the agent and call load_state_dict(state['agent'])"
            )
        agent = cls(state["env_id"], state["config"], seed=int(state["seed"]), device=device, env_kwargs=state.get("env_kwargs"))
        agent.load_state_dict(state["agent"])
        return agent

    @classmethod
    def from_preset(cls, name: str, *, seed: int = 0, device: str | torch.device = "cpu", **overrides: Any) -> Any:
        """An agent configured by a preset (``metarl/presets/<name>.yaml``), with field overrides.

        >>> from metarl.agents import MAML
        >>> MAML.from_preset("maml-trpo-navigation2d", meta_batch_size=2).config.meta_batch_size
        2
        """
        from metarl.config import build_config, load_preset

        preset = load_preset(name)
        if preset.agent != cls.name:
            raise ConfigError(f"preset {name!r} is for agent {preset.agent!r}, not {cls.name!r}")
        config = build_config(cls.config_cls, {**preset.config, **overrides}, source=f"preset {name}")
        return cls(preset.env, config, seed=seed, device=device, env_kwargs=preset.env_kwargs)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        spaces_ = state.get("spaces")
        if spaces_ is not None and spaces_ != self.spaces_signature():
            raise SpaceMismatchError(f"checkpoint spaces {spaces_} differ from the env's {self.spaces_signature()}")
        params = state.get("params", {})
        if set(params) != set(self.params):
            raise CheckpointError(f"checkpoint parameters {sorted(params)} differ from the policy's {sorted(self.params)}")
        with torch.no_grad():
            for k, v in params.items():
                if v.shape != self.params[k].shape:
                    raise CheckpointError(f"parameter {k!r} has shape {tuple(v.shape)}, the policy {tuple(self.params[k].shape)}")
                self.params[k].copy_(v.to(self._device))
        if self.optimizer is not None and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state.get("iteration", 0))
        self.seed = int(state.get("seed", self.seed))
        self._load_extra_state(state)

    def _extra_state(self) -> dict[str, Any]:
        """State of the subclass beyond parameters, optimiser and iteration (JSON-able or tensors)."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_state` saved."""
