"""MAML-RL: model-agnostic meta-learning for policy gradients (Finn et al. 2017, §3.2 and §5.3).

One meta-iteration (Finn et al. 2017, Algorithm 3), for a meta-batch of ``M`` tasks with ``E``
episodes each, ``T`` steps per episode:

1. **Sample** ``M`` training tasks; roll out the current policy ``θ`` on all of them at once
   (one native batched env of ``M·E`` sub-envs, tasks repeated per episode).
2. **Adapt** (inner loop, eq. 1): a REINFORCE step with a per-task linear feature baseline,
   ``θ'_m = θ - α ∇_θ L_m(θ)``, for every task in one ``vmap(grad(inner_loss))``; repeated for
   several inner steps, each on fresh episodes of the adapted policies.
3. **Sample** post-adaptation episodes, each task with its own ``θ'_m`` (one batched forward per
   step through ``vmap``).
4. **Outer update** of ``θ`` on the post-adaptation surrogate, differentiating *through* the
   adaptation (second order) or not (first-order MAML, ``first_order=True``): TRPO as in the
   paper (conjugate gradient on Hessian-vector products of the mean KL through the adaptation,
   backtracking line search with KL and improvement checks), or PPO-clip / vanilla PG.

Metrics of :meth:`MAML.train_iteration`: ``rollout/pre_return`` and ``rollout/post_return`` (mean
undiscounted episode return before and after adaptation), ``adapt/gain`` (their difference),
``train/kl``, ``train/surrogate_improvement``, ``train/line_search_steps`` (TRPO), ``time/sample_s``
(env stepping, policy forward, returns and baseline fit), ``time/adapt_s`` (inner steps of the
sampling policies), ``time/outer_s`` (meta-update; for TRPO split into ``time/outer_grad_s``:
adaptation graphs and meta-gradient, ``time/outer_cg_s``: conjugate gradient on the KL curvature,
``time/outer_line_search_s``) and ``env_steps``.

Rollouts, returns, baselines, policies and optimisers live in :mod:`metarl`; this module owns
only what is particular to MAML. Hyper-parameter presets: ``metarl/presets/maml-*.yaml``.

>>> from metarl.agents.maml import MAML, MAMLConfig
>>> cfg = MAMLConfig(meta_batch_size=2, episodes_per_task=2, hidden_sizes=(8,), horizon=5)
>>> agent = MAML("metarl/Navigation2D-v0", cfg, seed=0)
>>> metrics = agent.train_iteration(0)
>>> metrics["env_steps"]
40
>>> agent.evaluate(agent.held_out_tasks()[:3], seed=0, num_steps=2).returns.shape
(3, 3)
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
from metarl.agent import Agent, EvalResult
from metarl.baselines import LinearFeatureBaseline
from metarl.config import check_numbers
from metarl.errors import CheckpointError, ConfigError, SpaceMismatchError, TrainingDivergedError
from metarl.losses import normalize_advantages, ppo_clip_loss
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

__all__ = ["MAMLConfig", "MAML", "TaskBatch", "Adaptation"]


# ==== config =====================================================================================
@dataclass
class MAMLConfig:
    """MAML-RL hyper-parameters.

    Defaults: the paper's 2-D navigation setting (Finn et al. 2017 §5.3), with the KL curvature
    on every 4th episode (``cg_subsample``) and 25 iterations so that ``metarl train maml`` shows
    its adaptation gain in about a minute; the exact paper settings are the ``maml-trpo-*`` presets.
    """

    meta_batch_size: int = 20
    """Tasks per meta-iteration ``M`` (paper: 20 for navigation, 40 for locomotion)."""
    episodes_per_task: int = 20
    """Episodes per task and per gradient step ``E`` (paper: K = 20 trajectories)."""
    horizon: int = 0
    """Steps per episode ``T``; 0 means the env's time limit (paper: 100 navigation, 200 locomotion)."""
    num_inner_steps: int = 1
    """Inner gradient steps during meta-training (paper: 1)."""
    inner_lr: float = 0.1
    """Inner step size α (paper: 0.1)."""
    first_order: bool = False
    """First-order MAML: treat the inner gradient as a constant (no second derivatives)."""
    outer: Literal["trpo", "ppo", "vpg"] = "trpo"
    """Outer optimiser: TRPO (paper), PPO-clip, or vanilla policy gradient (Adam)."""
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
    ls_max_steps: int = 15
    """Backtracking line-search candidates (pytorch-maml-rl: 15)."""
    ls_backtrack_ratio: float = 0.8
    """Line-search shrink factor (pytorch-maml-rl: 0.8)."""
    outer_lr: float = 3e-4
    """Adam step size of the PPO and VPG outer loops."""
    ppo_epochs: int = 5
    """Outer PPO epochs over the meta-batch."""
    ppo_clip: float = 0.2
    """PPO clip range ε."""
    eval_steps: int = 3
    """Gradient steps of the evaluation curve (the paper plots 0..3)."""
    iterations: int = 25
    """Meta-iterations ``metarl train`` runs when ``--iterations`` is not given."""


def _check_config(cfg: MAMLConfig) -> None:
    def positive_int(name: str) -> None:
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"{name} must be a positive int, got {v!r}")

    for name in ("meta_batch_size", "episodes_per_task", "num_inner_steps", "cg_iters", "ls_max_steps", "ppo_epochs", "eval_steps", "cg_subsample", "iterations"):
        positive_int(name)
    if isinstance(cfg.horizon, bool) or not isinstance(cfg.horizon, (int, np.integer)) or cfg.horizon < 0:
        raise ConfigError(f"horizon must be a non-negative int (0 = the env's time limit), got {cfg.horizon!r}")
    for name in ("inner_lr", "init_std", "max_kl", "outer_lr", "ppo_clip"):
        v = getattr(cfg, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"{name} must be a positive number, got {v!r}")
    for name in ("gamma", "gae_lambda"):
        v = getattr(cfg, name)
        if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
            raise ConfigError(f"{name} must lie in [0, 1], got {v!r}")
    if not 0.0 < cfg.ls_backtrack_ratio < 1.0:
        raise ConfigError(f"ls_backtrack_ratio must lie in (0, 1), got {cfg.ls_backtrack_ratio!r}")
    if cfg.cg_damping < 0 or cfg.baseline_reg < 0:
        raise ConfigError(f"cg_damping and baseline_reg must be >= 0, got {cfg.cg_damping!r}, {cfg.baseline_reg!r}")
    if cfg.outer not in ("trpo", "ppo", "vpg"):
        raise ConfigError(f"outer must be 'trpo', 'ppo' or 'vpg', got {cfg.outer!r}")
    check_numbers(cfg, source="MAMLConfig")  # every other float field (e.g. NaN damping): finite and >= 0


def eval_lr_schedule(inner_lr: float, num_steps: int) -> list[float]:
    """Evaluation step sizes: α for the first step, α/2 after (Finn et al. 2017, §5.3)."""
    return [inner_lr] + [inner_lr / 2] * (num_steps - 1)


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
    """Result of :meth:`MAML.adapt`.

    Attributes:
        params: the adapted parameters (a dict like the policy's, no task axis).
        returns: mean episode return before adaptation and after each step (``num_steps + 1``).
    """

    params: Params
    returns: list[float]


def _task_major(x: Tensor, M: int, E: int) -> Tensor:
    """``[T, M·E, ...] -> [M, T, E, ...]`` (sub-env ``i`` holds task ``i // E``)."""
    T = x.shape[0]
    return x.reshape(T, M, E, *x.shape[2:]).transpose(0, 1)


def _task_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Masked mean over each task's steps ``[M, T, E] -> [M]``."""
    return (x * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1.0)


#: Samples per vmap chunk of the inner step (see MAML._adapt_step).
_VMAP_CHUNK_SAMPLES = 16384


class _Linearisation(NamedTuple):
    """The TRPO meta-objective at the current θ (see :meth:`MAML._linearise`)."""

    loss: float
    grad: Tensor
    hvp: Callable[[Tensor], Tensor]


def _at(iteration: int) -> str:
    return f"iteration {iteration}" if iteration >= 0 else "evaluation"


def _every_kth_episode(batch: TaskBatch, k: int) -> TaskBatch:
    return TaskBatch(*(x[:, :, ::k] for x in batch[:4]), batch.episode_returns[:, ::k])


# ==== agent ======================================================================================
class MAML(Agent):
    """MAML-RL agent (see the module docstring). ``MAML(env_id, config, seed=, device=)``.

    Args:
        env_id: a registered metarl env id (default ``metarl/Navigation2D-v0``).
        config: a :class:`MAMLConfig` (or a dict of its fields); ``None`` means the defaults.
        seed: fixes initial parameters, task draws, env resets and action noise.
        device: where the policy and all updates run (envs step on CPU).
        env_kwargs: keyword arguments for the env (e.g. ``velocity_range``).
    """

    name: ClassVar[str] = "maml"
    config_cls: ClassVar[type] = MAMLConfig
    default_env: ClassVar[str] = "metarl/Navigation2D-v0"
    headline: ClassVar[str] = "rollout/post_return"

    def __init__(
        self,
        env_id: str | None = None,
        config: MAMLConfig | dict[str, Any] | None = None,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        env_id = env_id or self.default_env
        if config is None:
            config = MAMLConfig()
        elif isinstance(config, dict):
            known = {f.name for f in fields(MAMLConfig)}
            unknown = sorted(set(config) - known)
            if unknown:
                raise ConfigError(f"unknown MAML config field(s) {unknown}; known: {sorted(known)}")
            config = MAMLConfig(**config)
        if isinstance(config.hidden_sizes, list):
            config.hidden_sizes = tuple(config.hidden_sizes)
        _check_config(config)
        seed = check_seed(seed)  # an int in [0, 2**63), as everywhere in metarl
        try:
            device = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"unknown device {device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but CUDA is not available")
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
        self.optimizer = (
            torch.optim.Adam(list(self.params.values()), lr=config.outer_lr) if config.outer in ("ppo", "vpg") else None
        )
        self.iteration = 0

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
            obs=_task_major(ro.obs, M, E),
            actions=_task_major(actions, M, E),
            advantages=adv.transpose(0, 1),
            mask=_task_major(mask, M, E),
            episode_returns=ro.episode_returns.reshape(M, E),
            episode_success=None if ro.success is None else ro.episode_success.reshape(M, E),
        )

    # ---- inner loop (Finn et al. 2017, eq. 1 with the REINFORCE loss of eq. 4) ------------------
    def _inner_loss(self, params: Params, obs: Tensor, actions: Tensor, adv: Tensor, mask: Tensor) -> Tensor:
        """REINFORCE loss of ONE task: ``-mean_t log π(a_t|s_t) Â_t`` over its valid steps."""
        logp = self.policy.log_prob(self.policy.dist_params(params, obs), actions)
        return -(logp * adv * mask).sum() / mask.sum().clamp_min(1.0)

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
        """``θ'(θ)`` for every task, differentiable in :attr:`params` (to first order only in FO mode)."""
        lrs = [self.config.inner_lr] * len(batches)
        return self._adapt(self.params, batches, lrs, first_order=self.config.first_order, iteration=iteration)

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
        loss = -_task_mean(torch.exp(log_ratio) * valid.advantages, valid.mask).mean()
        return log_ratio, loss, self._mean_kl(old_dist, dist, valid.mask)

    def _mean_kl(self, old_dist: tuple[Tensor, ...], dist: tuple[Tensor, ...], mask: Tensor) -> Tensor:
        """``mean_m mean_t KL(π_old ‖ π)`` over each task's valid steps."""
        return _task_mean(self.policy.kl(old_dist, dist), mask).mean()

    def _check_finite(self, value: Tensor, quantity: str, iteration: int) -> None:
        if not torch.isfinite(value).all():
            raise TrainingDivergedError(f"{_at(iteration)}: {quantity} is not finite")

    def _linearise(self, batches: Sequence[TaskBatch], valid: TaskBatch, old_dist: tuple[Tensor, ...], iteration: int) -> _Linearisation:
        """The TRPO meta-objective at the current θ: surrogate loss, meta-gradient and KL curvature.

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
            curv_graphs, _ = inner_graphs([_every_kth_episode(b, k) for b in batches], points[:-1])
            leaf = [a.detach().requires_grad_(True) for a in adapted]
            curv_fisher = fisher(leaf, _every_kth_episode(valid, k), tuple(d[:, :, ::k] for d in old_dist))
        plist = list(self.params.values())

        def hvp(v: Tensor) -> Tensor:
            u = curv_fisher(push_forward(curv_graphs, unflatten(v, plist)))
            return flatten(pull_back(curv_graphs, u)) + cfg.cg_damping * v

        return _Linearisation(float(loss.detach()), grad, hvp)

    def _trpo_step(self, batches: Sequence[TaskBatch], valid: TaskBatch, old_dist, iteration: int) -> dict[str, float]:
        """TRPO meta-update (Schulman et al. 2015 §6, appendix C) through the adaptation."""
        cfg = self.config
        plist = list(self.params.values())
        t0 = time.perf_counter()
        loss_old, grad, hvp = self._linearise(batches, valid, old_dist, iteration)
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

        def evaluate(fraction: float) -> tuple[float, float]:
            with torch.no_grad():
                for p, p0, d in zip(plist, old, deltas, strict=True):
                    p.copy_(p0 - fraction * d)
                _, new_loss, new_kl = self._outer_terms(self._adapted(batches, iteration), valid, old_dist)
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

    def _adam_step(self, batches: Sequence[TaskBatch], valid: TaskBatch, old_dist, iteration: int) -> dict[str, float]:
        """PPO-clip (several epochs) or VPG (one step) meta-update with Adam, through the adaptation."""
        cfg = self.config
        assert self.optimizer is not None
        epochs = cfg.ppo_epochs if cfg.outer == "ppo" else 1
        first_loss = None
        for _ in range(epochs):
            log_ratio, loss, _ = self._outer_terms(self._adapted(batches, iteration), valid, old_dist)
            if cfg.outer == "ppo":
                zero = torch.zeros_like(log_ratio)
                loss = ppo_clip_loss(log_ratio, zero, valid.advantages, cfg.ppo_clip, valid.mask)
            self._check_finite(loss, "outer loss", iteration)
            first_loss = float(loss.detach()) if first_loss is None else first_loss
            self.optimizer.zero_grad()
            loss.backward()
            for n, p in self.params.items():
                self._check_finite(p.grad, f"outer gradient of {n!r}", iteration)
            self.optimizer.step()
        with torch.no_grad():
            _, loss, kl = self._outer_terms(self._adapted(batches, iteration), valid, old_dist)
        return {
            "train/kl": float(kl),
            "train/surrogate_improvement": first_loss - float(loss),
            "train/line_search_steps": 0.0,
            "train/outer_loss": first_loss,
        }

    # ---- one meta-iteration (Finn et al. 2017, Algorithm 3) ----------------------------------------
    def train_iteration(self, iteration: int | None = None) -> dict[str, float]:
        """Sample a meta-batch, adapt every task, update θ; returns namespaced metrics."""
        it = self.iteration if iteration is None else int(iteration)
        cfg = self.config
        M, E = cfg.meta_batch_size, cfg.episodes_per_task
        start = time.perf_counter()
        timers = {"sample": 0.0, "adapt": 0.0}
        tasks = self.venv.unwrapped.distribution.sample(np.random.default_rng(self._seed_for(it, 0)), M)
        lrs = [cfg.inner_lr] * cfg.num_inner_steps
        batches, valid, adapted = self._sample_and_adapt(tasks, lrs, E, self._seed_for(it, 1), it, timers)

        t0 = time.perf_counter()
        with torch.no_grad():
            old_dist = tuple(d.detach() for d in batched_dist_params(self.policy, adapted, valid.obs))
        stats = self._trpo_step(batches, valid, old_dist, it) if cfg.outer == "trpo" else self._adam_step(batches, valid, old_dist, it)
        for n, p in self.params.items():
            self._check_finite(p, f"parameter {n!r} after the outer update", it)
        outer_s = time.perf_counter() - t0

        pre = float(batches[0].episode_returns.mean())
        post = float(valid.episode_returns.mean())
        self.iteration = it + 1
        success = {}
        if valid.episode_success is not None:  # Meta-World's metric, beside the return
            success = {"rollout/pre_success_rate": float(batches[0].episode_success.mean()),
                       "rollout/success_rate": float(valid.episode_success.mean())}
        return {
            "rollout/pre_return": pre,
            "rollout/post_return": post,
            "adapt/gain": post - pre,
            **success,
            **stats,
            "time/sample_s": timers["sample"],
            "time/adapt_s": timers["adapt"],
            "time/outer_s": outer_s,
            "time/iteration_s": time.perf_counter() - start,
            "env_steps": (len(lrs) + 1) * M * E * self.horizon,
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
            job = bar.add_task("MAML", total=iterations)
            for _ in range(iterations):
                m = self.train_iteration()
                history.append(m)
                if callback is not None:
                    callback(m)
                bar.update(job, advance=1, description=f"MAML post {m['rollout/post_return']:.2f} gain {m['adapt/gain']:+.2f}")
        return history

    # ---- adaptation and evaluation -------------------------------------------------------------------
    def _curve(self, tasks: Sequence[Task], num_steps: int, seed: int, episodes: int) -> tuple[np.ndarray, Params, np.ndarray | None]:
        checked = [self.venv.unwrapped.distribution.check(t) for t in tasks]
        if not checked:
            raise ConfigError("need at least one task to adapt to")
        timers = {"sample": 0.0, "adapt": 0.0}
        lrs = eval_lr_schedule(self.config.inner_lr, num_steps) if num_steps else []
        batches, final, adapted = self._sample_and_adapt(checked, lrs, episodes, seed, -1, timers)
        rets = [b.episode_returns.mean(1) for b in [*batches, final]]
        success = None
        if final.episode_success is not None:  # [M, K+1] success rate of each task at each step
            success = torch.stack([b.episode_success.mean(1) for b in [*batches, final]], 1).cpu().double().numpy()
        return torch.stack(rets, 1).cpu().double().numpy(), adapted, success

    def adapt(self, task: Task | dict | str, num_steps: int = 1, *, seed: int = 0, episodes: int | None = None) -> Adaptation:
        """Adapt to one task with ``num_steps`` policy-gradient steps (α, then α/2: the paper's
        evaluation schedule), sampling ``episodes`` (default ``episodes_per_task``) per step."""
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
            extra={"inner_lrs": eval_lr_schedule(self.config.inner_lr, K) if K else [], "episodes_per_task": self.config.episodes_per_task},
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
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu") -> MAML:
        """Rebuild an agent saved by :meth:`save` (same env, config, parameters and iteration)."""
        from metarl.checkpoint import load_checkpoint

        state = load_checkpoint(path, required=("agent",))
        missing = [k for k in ("env_id", "config", "seed") if k not in state]
        if missing or state.get("agent_name", cls.name) != cls.name:
            raise CheckpointError(
                f"{path} is not a checkpoint written by MAML.save (missing {missing}); for a run directory "
                "use `metarl eval DIR` or build the agent and call load_state_dict(state['agent'])"
            )
        agent = cls(state["env_id"], state["config"], seed=int(state["seed"]), device=device, env_kwargs=state.get("env_kwargs"))
        agent.load_state_dict(state["agent"])
        return agent

    @classmethod
    def from_preset(cls, name: str, *, seed: int = 0, device: str | torch.device = "cpu", **overrides: Any) -> MAML:
        """An agent configured by a preset (``metarl/presets/<name>.yaml``), with field overrides.

        >>> MAML.from_preset("maml-trpo-navigation2d", meta_batch_size=2).config.meta_batch_size
        2
        """
        from metarl.config import build_config, load_preset

        preset = load_preset(name)
        if preset.agent != cls.name:
            raise ConfigError(f"preset {name!r} is for agent {preset.agent!r}, not {cls.name!r}")
        config = build_config(MAMLConfig, {**preset.config, **overrides}, source=f"preset {name}")
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
