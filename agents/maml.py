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

Rollouts, returns, baselines, policies, optimisers, the batched inner step and the TRPO step
through the adaptation live in :mod:`metarl` (:mod:`metarl.gradient_meta`); this module owns
only what is particular to MAML: its config, the outer update and the iteration. The inner loss
is REINFORCE (the paper's) or DiCE (``inner_estimator="dice"``, Foerster et al. 2018: the
unbiased second-order terms). Hyper-parameter presets: ``metarl/presets/maml-*.yaml``.

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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from metarl.errors import ConfigError
from metarl.gradient_meta import (
    Adaptation,
    GradientMetaAgent,
    TaskBatch,
    TRPOMetaConfig,
    check_common_config,
    eval_lr_schedule,
    every_kth_episode,
)
from metarl.losses import ppo_clip_loss
from metarl.policies import Params, batched_dist_params

# TaskBatch, Adaptation and eval_lr_schedule moved to metarl.gradient_meta; still importable from
# here for code written before the move (as is _every_kth_episode).
__all__ = ["MAMLConfig", "MAML", "TaskBatch", "Adaptation", "eval_lr_schedule"]
_every_kth_episode = every_kth_episode


# ==== config =====================================================================================
@dataclass
class MAMLConfig(TRPOMetaConfig):
    """MAML-RL hyper-parameters (the shared ones are :class:`~metarl.gradient_meta.TRPOMetaConfig`'s).

    Defaults: the paper's 2-D navigation setting (Finn et al. 2017 §5.3), with the KL curvature
    on every 4th episode (``cg_subsample``) and 25 iterations so that ``metarl train maml`` shows
    its adaptation gain in about a minute; the exact paper settings are the ``maml-trpo-*`` presets.
    """

    outer: Literal["trpo", "ppo", "vpg"] = "trpo"
    """Outer optimiser: TRPO (paper), PPO-clip, or vanilla policy gradient (Adam)."""
    outer_lr: float = 3e-4
    """Adam step size of the PPO and VPG outer loops."""
    ppo_epochs: int = 5
    """Outer PPO epochs over the meta-batch."""
    ppo_clip: float = 0.2
    """PPO clip range ε."""
    inner_estimator: Literal["reinforce", "dice"] = "reinforce"
    """Inner-loss estimator: REINFORCE (the paper's) or DiCE (Foerster et al. 2018; unbiased
    second-order terms of the meta-gradient)."""


# ==== agent ======================================================================================
class MAML(GradientMetaAgent):
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
    display: ClassVar[str] = "MAML"
    config: MAMLConfig

    def _check_config(self, cfg: Any) -> None:
        check_common_config(cfg, positive_ints=("ppo_epochs",), positive=("outer_lr", "ppo_clip"), estimators=("reinforce", "dice"))
        if cfg.outer not in ("trpo", "ppo", "vpg"):
            raise ConfigError(f"outer must be 'trpo', 'ppo' or 'vpg', got {cfg.outer!r}")

    def _make_optimizer(self) -> torch.optim.Optimizer | None:
        if self.config.outer in ("ppo", "vpg"):
            return torch.optim.Adam(list(self.params.values()), lr=self.config.outer_lr)
        return None

    # ---- outer update ------------------------------------------------------------------------------
    def _adam_step(self, batches: Sequence[TaskBatch], valid: TaskBatch, old_dist, iteration: int) -> dict[str, float]:
        """PPO-clip (several epochs) or VPG (one step) meta-update with Adam, through the adaptation."""
        cfg = self.config
        epochs = cfg.ppo_epochs if cfg.outer == "ppo" else 1
        first_loss = None
        for _ in range(epochs):
            log_ratio, loss, _ = self._outer_terms(self._adapted(batches, iteration), valid, old_dist)
            if cfg.outer == "ppo":
                zero = torch.zeros_like(log_ratio)
                loss = ppo_clip_loss(log_ratio, zero, valid.advantages, cfg.ppo_clip, valid.mask)
            self._check_finite(loss, "outer loss", iteration)
            first_loss = float(loss.detach()) if first_loss is None else first_loss
            self._optimizer_step(loss, iteration)
        with torch.no_grad():
            _, loss, kl = self._outer_terms(self._adapted(batches, iteration), valid, old_dist)
        return {
            "train/kl": float(kl),
            "train/surrogate_improvement": first_loss - float(loss),
            "train/line_search_steps": 0.0,
            "train/outer_loss": first_loss,
        }

    # ---- one meta-iteration (Finn et al. 2017, Algorithm 3) ----------------------------------------
    def outer_update(self, batches: Sequence[TaskBatch], valid: TaskBatch, adapted: Params, iteration: int) -> dict[str, float]:
        """TRPO (or Adam) on the post-adaptation surrogate, through the adaptation."""
        with torch.no_grad():
            old_dist = tuple(d.detach() for d in batched_dist_params(self.policy, adapted, valid.obs))
        if self.config.outer == "trpo":
            return self._trpo_step(batches, valid, old_dist, iteration)
        return self._adam_step(batches, valid, old_dist, iteration)
