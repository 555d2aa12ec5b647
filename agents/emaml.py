"""E-MAML: MAML with credit for exploration (Stadie et al. 2018, "Some Considerations on
Learning to Explore via Meta-Reinforcement Learning", §4.1).

MAML's meta-gradient treats the pre-adaptation episodes as given; but which episodes θ samples
decides how well the adapted policy does. The gradient of the post-adaptation return
``E[R(τ')]`` has a second term (Stadie et al. 2018, eq. 4 → E-MAML's objective): the score
function of the pre-adaptation episodes ``τ`` times the post-adaptation return they led to,
``E_τ[R(τ') ∇_θ log π_θ(τ)]``. E-MAML adds it to MAML's meta-objective:

``L(θ) = L_MAML(θ) - λ · mean_m w_m · mean_t log π_θ(a_t|s_t)`` over task ``m``'s pre-adaptation steps,

with ``w_m`` the post-adaptation mean return of task ``m`` standardised over the meta-batch (a
baseline; our choice, as ProMP's E-MAML code subtracts a baseline from the average reward) and
``λ = exploration_weight``. The meta-update is TRPO through the adaptation with the KL trust
region of the adapted policies (E-MAML-TRPO), or one Adam step (``outer="vpg"``, E-MAML-VPG).
With several inner steps, the credited episodes are those θ itself sampled (step 0).

Metrics beside MAML's: ``train/exploration_loss``. Presets: ``metarl/presets/emaml-*.yaml``.

>>> from metarl.agents.emaml import EMAML, EMAMLConfig
>>> agent = EMAML("metarl/Navigation2D-v0", EMAMLConfig(meta_batch_size=2, episodes_per_task=2, hidden_sizes=(8,), horizon=5))
>>> agent.train_iteration(0)["env_steps"]
40
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from metarl.errors import ConfigError
from metarl.gradient_meta import (
    GradientMetaAgent,
    TaskBatch,
    TRPOMetaConfig,
    check_common_config,
    task_mean,
)
from metarl.policies import Params, batched_dist_params

__all__ = ["EMAMLConfig", "EMAML"]


# ==== config =====================================================================================
@dataclass
class EMAMLConfig(TRPOMetaConfig):
    """E-MAML hyper-parameters (the TRPO and sampling fields are MAML's, as in ProMP's E-MAML runs)."""

    outer: Literal["trpo", "vpg"] = "trpo"
    """Outer optimiser: TRPO through the adaptation (E-MAML-TRPO) or one Adam step (E-MAML-VPG)."""
    outer_lr: float = 1e-3
    """Adam step size of the VPG outer step (ProMP's E-MAML-VPG: 1e-3)."""
    exploration_weight: float = 1.0
    """Weight λ of the exploration term (ours; 1 weighs it like the MAML surrogate: both are per-step
    means of standardised quantities, which is a choice of scale, not the exact gradient of the
    post-adaptation return, whose two terms carry the returns' own scales)."""


# ==== agent ======================================================================================
class EMAML(GradientMetaAgent):
    """MAML with credit for pre-adaptation exploration (Stadie et al. 2018).

    ``EMAML(env_id, config, seed=, device=, env_kwargs=)``; see the module docstring.
    """

    name: ClassVar[str] = "emaml"
    config_cls: ClassVar[type] = EMAMLConfig
    display: ClassVar[str] = "E-MAML"
    config: EMAMLConfig

    def _check_config(self, cfg: Any) -> None:
        check_common_config(cfg, positive=("outer_lr",))
        if cfg.outer not in ("trpo", "vpg"):
            raise ConfigError(f"outer must be 'trpo' or 'vpg', got {cfg.outer!r}")

    def _make_optimizer(self) -> torch.optim.Optimizer | None:
        return torch.optim.Adam(list(self.params.values()), lr=self.config.outer_lr) if self.config.outer == "vpg" else None

    # ---- the exploration term --------------------------------------------------------------------
    @staticmethod
    def exploration_weights(valid: TaskBatch) -> Tensor:
        """``w_m``: each task's mean post-adaptation return, standardised over the meta-batch."""
        r = valid.episode_returns.mean(1)
        return (r - r.mean()) / (r.std(unbiased=False) + 1e-8)

    def _exploration_loss(self, pre: TaskBatch, weights: Tensor) -> Tensor:
        """``-λ mean_m w_m mean_t log π_θ(a_t|s_t)`` on the episodes θ sampled (differentiable in θ)."""
        logp = self.policy.log_prob(self.policy.dist_params(self.params, pre.obs), pre.actions)
        return -self.config.exploration_weight * (weights * task_mean(logp, pre.mask)).mean()

    # ---- outer update ----------------------------------------------------------------------------
    def _vpg_step(self, batches: Sequence[TaskBatch], valid: TaskBatch, old_dist, weights: Tensor, iteration: int) -> dict[str, float]:
        """One Adam step on the MAML surrogate plus the exploration term (E-MAML-VPG)."""
        _, loss, _ = self._outer_terms(self._adapted(batches, iteration), valid, old_dist)
        loss = loss + self._exploration_loss(batches[0], weights)
        self._check_finite(loss, "outer loss", iteration)
        self._optimizer_step(loss, iteration)
        with torch.no_grad():
            _, new_loss, kl = self._outer_terms(self._adapted(batches, iteration), valid, old_dist)
            new_loss = new_loss + self._exploration_loss(batches[0], weights)
        return {"train/kl": float(kl), "train/surrogate_improvement": float(loss.detach()) - float(new_loss),
                "train/line_search_steps": 0.0, "train/outer_loss": float(loss.detach())}

    # ---- one meta-iteration ----------------------------------------------------------------------
    def outer_update(self, batches: Sequence[TaskBatch], valid: TaskBatch, adapted: Params, iteration: int) -> dict[str, float]:
        """MAML's objective plus the exploration term, by TRPO or one VPG step."""
        with torch.no_grad():
            old_dist = tuple(d.detach() for d in batched_dist_params(self.policy, adapted, valid.obs))
        weights = self.exploration_weights(valid)
        with torch.no_grad():
            explore_before = float(self._exploration_loss(batches[0], weights))
        if self.config.outer == "trpo":
            stats = self._trpo_step(batches, valid, old_dist, iteration, extra=lambda: self._exploration_loss(batches[0], weights))
        else:
            stats = self._vpg_step(batches, valid, old_dist, weights, iteration)
        return {**stats, "train/exploration_loss": explore_before}
