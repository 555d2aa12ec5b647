"""ProMP: Proximal Meta-Policy Search (Rothfuss et al. 2019, Algorithm 1).

MAML's sampling and adaptation with two changes to its losses:

1. **Inner loss**: the low-variance curvature (LVC) estimator (eq. 12) instead of REINFORCE:
   ``J_LVC = Σ_t [π_θ(a_t|s_t) / ⊥π_θ(a_t|s_t)] Â_t``. Same step as REINFORCE, but
   differentiating the step again gives the score products the meta-gradient needs, with less
   variance than DiCE (``inner_estimator="dice"``, Foerster et al. 2018, is the unbiased option).
   In the outer steps after the first, θ no longer sampled the inner episodes: each step's
   term is importance-weighted by ``⊥π_θk / π_θk^old`` (ProMP's code).
2. **Outer objective** (eq. 13), optimised with Adam for ``promp_steps`` steps on one meta-batch
   (no re-sampling): PPO's clipped surrogate of the adapted policies on the post-adaptation
   episodes, against the adapted policies that sampled them, plus a KL penalty per inner step,
   ``η_k · mean_m KL(π_θk^old ‖ π_θk(θ))`` on the episodes of step ``k`` (``θ_0 = θ``), which keeps
   the pre-adaptation policies near those that sampled the inner episodes:

   ``L(θ) = -mean_m mean_t min(r_t Â_t, clip(r_t, 1-ε, 1+ε) Â_t) + mean_k η_k KL_k``,
   ``r_t = π_θ'(a_t|s_t) / π_θ'old(a_t|s_t)``.

Metrics beside MAML's rollout ones: ``train/outer_loss`` (first step), ``train/surrogate_improvement``,
``train/kl`` (outer KL after the steps), ``train/inner_kl`` and ``train/inner_kl_coef`` (step 1).
Presets: ``metarl/presets/promp-*.yaml``.

>>> from metarl.agents.promp import ProMP, ProMPConfig
>>> agent = ProMP("metarl/Navigation2D-v0", ProMPConfig(meta_batch_size=2, episodes_per_task=2, hidden_sizes=(8,), horizon=5))
>>> agent.train_iteration(0)["env_steps"]
40
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from metarl.errors import CheckpointError
from metarl.gradient_meta import (
    GradientMetaAgent,
    GradientMetaConfig,
    TaskBatch,
    check_common_config,
    task_mean,
)
from metarl.policies import Params, batched_dist_params, stack_params

__all__ = ["ProMPConfig", "ProMP"]


# ==== config =====================================================================================
@dataclass
class ProMPConfig(GradientMetaConfig):
    """ProMP hyper-parameters. Defaults: ProMP's run script (jonasrothfuss/ProMP
    ``run_scripts/pro-mp_run_mujoco.py``) where it differs from MAML's, MAML's 2-D navigation
    sampling otherwise; ``promp-*`` presets hold the paper's settings per env."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Policy MLP hidden layers (ProMP: two layers of 64)."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden nonlinearity (ProMP's MetaGaussianMLPPolicy: tanh)."""
    inner_estimator: Literal["lvc", "dice"] = "lvc"
    """Inner-loss estimator: LVC (the paper's) or DiCE (unbiased, higher variance)."""
    outer_lr: float = 1e-3
    """Adam step size of the outer steps (ProMP: 1e-3)."""
    promp_steps: int = 5
    """Outer Adam steps per meta-batch, without re-sampling (ProMP ``num_promp_steps``: 5)."""
    clip_eps: float = 0.3
    """Clip range ε of the likelihood ratio (ProMP: 0.3)."""
    inner_kl_coef: float = 5e-4
    """Initial inner-KL penalty η of every inner step (ProMP ``init_inner_kl_penalty``: 5e-4)."""
    adaptive_inner_kl: bool = False
    """Adapt η per step towards ``target_inner_kl`` (ProMP default: fixed)."""
    target_inner_kl: float = 0.01
    """Inner KL the adaptive penalty aims at: η doubles above 1.5x, halves below 1/1.5x (ProMP: 0.01)."""


# ==== agent ======================================================================================
class ProMP(GradientMetaAgent):
    """Proximal Meta-Policy Search, LVC inner loss and clipped outer objective (Rothfuss et al. 2019).

    ``ProMP(env_id, config, seed=, device=, env_kwargs=)``; see the module docstring.
    """

    name: ClassVar[str] = "promp"
    config_cls: ClassVar[type] = ProMPConfig
    display: ClassVar[str] = "ProMP"
    config: ProMPConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: η_k of each inner step (checkpointed: they change when ``adaptive_inner_kl``).
        self.inner_kl_coefs = [float(self.config.inner_kl_coef)] * self.config.num_inner_steps

    def _check_config(self, cfg: Any) -> None:
        check_common_config(cfg, positive_ints=("promp_steps",), positive=("outer_lr", "clip_eps", "target_inner_kl"), estimators=("lvc", "dice"))

    def _make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(list(self.params.values()), lr=self.config.outer_lr)

    # ---- the ProMP objective (eq. 13) -------------------------------------------------------------
    def _promp_terms(
        self, batches: Sequence[TaskBatch], valid: TaskBatch, old: dict[str, Any] | None, iteration: int
    ) -> tuple[Tensor, Tensor, list[Tensor], Tensor, dict[str, Any]]:
        """``(loss, clipped-surrogate loss, inner KLs, outer KL, distributions)`` at the current θ.

        ``old`` holds the distributions of the sampling policies (``"inner"``: one per step, on
        that step's episodes; ``"outer"``: on ``valid``); ``None`` means "the current θ sampled"
        (the first outer step), so that the ratios are 1 and the KLs 0.
        """
        cfg = self.config
        M = valid.mask.shape[0]
        p = stack_params(self.params, M)
        inner_dists = []
        for k, batch in enumerate(batches):  # θ_0 = θ, θ_{k+1} = θ_k - α ∇L_LVC(θ_k): second order throughout
            inner_dists.append(batched_dist_params(self.policy, p, batch.obs))
            if old is not None:
                # The episodes came from the sampling θ_k^old: the LVC term π_θk/⊥π_θk · Â gets the
                # importance weight ⊥π_θk/π_θk^old, i.e. π_θk/π_θk^old · Â (ProMP's code,
                # likelihood_ratio_sym against the sampling distribution); 1 at the first step.
                logp = self.policy.log_prob(tuple(d.detach() for d in inner_dists[-1]), batch.actions)
                weight = torch.exp(logp - self.policy.log_prob(old["inner"][k], batch.actions))
                batch = batch._replace(advantages=batch.advantages * weight)
            p = self._adapt_step(p, batch, cfg.inner_lr, first_order=False, iteration=iteration)
        dist = batched_dist_params(self.policy, p, valid.obs)
        if old is None:
            old = {"inner": [tuple(d.detach() for d in ds) for ds in inner_dists], "outer": tuple(d.detach() for d in dist)}
        ratio = torch.exp(self.policy.log_prob(dist, valid.actions) - self.policy.log_prob(old["outer"], valid.actions))
        adv = valid.advantages
        clipped = torch.minimum(ratio * adv, torch.clamp(ratio, 1.0 - cfg.clip_eps, 1.0 + cfg.clip_eps) * adv)
        surrogate = -task_mean(clipped, valid.mask).mean()  # mean over tasks of each task's step mean
        inner_kls = [self._mean_kl(o, d, b.mask) for o, d, b in zip(old["inner"], inner_dists, batches, strict=True)]
        penalty = torch.stack([eta * kl for eta, kl in zip(self.inner_kl_coefs, inner_kls, strict=True)]).mean()
        outer_kl = self._mean_kl(old["outer"], dist, valid.mask)
        return surrogate + penalty, surrogate, inner_kls, outer_kl, old

    # ---- one meta-iteration (Rothfuss et al. 2019, Algorithm 1) -----------------------------------
    def outer_update(self, batches: Sequence[TaskBatch], valid: TaskBatch, adapted: Params, iteration: int) -> dict[str, float]:
        """``promp_steps`` Adam steps on eq. 13, then the inner-KL coefficients' adaptation."""
        cfg, it = self.config, iteration
        old, first_loss = None, 0.0
        for step in range(cfg.promp_steps):
            loss, _, _, _, old = self._promp_terms(batches, valid, old, it)
            self._check_finite(loss, "ProMP outer loss", it)
            first_loss = float(loss.detach()) if step == 0 else first_loss
            self._optimizer_step(loss, it)
        with torch.no_grad():
            loss, surrogate, inner_kls, outer_kl, _ = self._promp_terms(batches, valid, old, it)
        coef = self.inner_kl_coefs[0]
        if cfg.adaptive_inner_kl:  # ProMP's adapt_kl_coeff: double/halve outside [target/1.5, 1.5 target]
            for k, kl in enumerate(inner_kls):
                if float(kl) > 1.5 * cfg.target_inner_kl:
                    self.inner_kl_coefs[k] *= 2.0
                elif float(kl) < cfg.target_inner_kl / 1.5:
                    self.inner_kl_coefs[k] /= 2.0
        return {
            "train/outer_loss": first_loss,
            "train/surrogate_improvement": first_loss - float(loss),
            "train/clip_surrogate": float(surrogate),
            "train/kl": float(outer_kl),
            "train/inner_kl": float(inner_kls[0]),
            "train/inner_kl_coef": coef,
        }

    # ---- state -----------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {"inner_kl_coefs": list(self.inner_kl_coefs)}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        coefs = state.get("inner_kl_coefs", self.inner_kl_coefs)
        if len(coefs) != self.config.num_inner_steps:
            raise CheckpointError(f"checkpoint has {len(coefs)} inner-KL coefficients, the config {self.config.num_inner_steps} inner steps")
        self.inner_kl_coefs = [float(c) for c in coefs]


