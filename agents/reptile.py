"""Reptile for policies (Nichol, Achiam and Schulman 2018, "On First-Order Meta-Learning
Algorithms", Algorithm 2, the batched version).

One meta-iteration: for ``M`` tasks at once, take ``k`` inner policy-gradient steps
``θ_{j+1} = θ_j - α ∇L_j(θ_j)`` (REINFORCE with the per-task linear baseline; each step on fresh
episodes of the current adapted policy, all tasks in one batched env and one ``vmap``), then move
θ towards the adapted parameters:

``θ ← θ + ε · mean_m (θ'_m - θ)``.

No second derivatives and no outer surrogate: the meta-update is the difference of parameters.
The paper studies supervised few-shot learning; the RL use (policy-gradient inner steps,
MAML's sampling) is ours, with MAML's settings where they carry over (see the presets).
Metrics: the rollout ones of MAML (``rollout/post_return`` after the ``k`` steps) and
``train/meta_step_norm`` (‖ε · mean_m (θ'_m - θ)‖). Presets: ``metarl/presets/reptile-*.yaml``.

>>> from metarl.agents.reptile import Reptile, ReptileConfig
>>> agent = Reptile("metarl/Navigation2D-v0", ReptileConfig(meta_batch_size=2, episodes_per_task=2, hidden_sizes=(8,), horizon=5))
>>> agent.train_iteration(0)["env_steps"]  # k = 3 inner steps: 4 batches of 2 x 2 episodes x 5 steps
80
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from metarl.gradient_meta import GradientMetaAgent, GradientMetaConfig, check_common_config
from metarl.optim import flatten

__all__ = ["ReptileConfig", "Reptile"]


# ==== config =====================================================================================
@dataclass
class ReptileConfig(GradientMetaConfig):
    """Reptile hyper-parameters (sampling and policy: MAML's 2-D navigation defaults)."""

    num_inner_steps: int = 3
    """Inner policy-gradient steps ``k`` per task (k = 1 is joint training; the paper: k > 1)."""
    inner_lr: float = 0.3
    """Inner step size α (ours: on Navigation2D, MAML's 0.1 left no adaptation gain after 20
    iterations of 10 tasks; 0.3 gives one on every held-out task)."""
    outer_lr: float = 1.0
    """Meta step size ε (Nichol et al. 2018 few-shot experiments: 1.0; constant here, our choice)."""


# ==== agent ======================================================================================
class Reptile(GradientMetaAgent):
    """First-order meta-learning, θ moves towards the adapted parameters (Nichol et al. 2018).

    ``Reptile(env_id, config, seed=, device=, env_kwargs=)``; see the module docstring.
    """

    name: ClassVar[str] = "reptile"
    config_cls: ClassVar[type] = ReptileConfig
    display: ClassVar[str] = "Reptile"
    config: ReptileConfig

    def _check_config(self, cfg: Any) -> None:
        check_common_config(cfg, positive=("outer_lr",))

    def eval_lrs(self, num_steps: int) -> list[float]:
        """α at every evaluation step: the schedule of the ``k`` inner steps that meta-training
        optimises for (MAML's α-then-α/2 would evaluate a schedule Reptile never trained for)."""
        return [self.config.inner_lr] * num_steps

    def meta_update(self, adapted: dict[str, torch.Tensor]) -> float:
        """``θ ← θ + ε mean_m (θ'_m - θ)`` for adapted parameters ``[M, ...]``; returns the step's norm."""
        eps = self.config.outer_lr
        with torch.no_grad():
            steps = {n: eps * (adapted[n] - p.unsqueeze(0)).mean(0) for n, p in self.params.items()}
            for n, p in self.params.items():
                p.add_(steps[n])
        return float(flatten(list(steps.values())).norm())

    def outer_update(self, batches, valid, adapted: dict[str, torch.Tensor], iteration: int) -> dict[str, float]:
        """The Reptile step towards the ``k``-step adapted parameters (no outer surrogate)."""
        return {"train/meta_step_norm": self.meta_update(adapted)}
