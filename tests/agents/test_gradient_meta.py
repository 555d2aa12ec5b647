"""The shared gradient-based machinery (metarl.gradient_meta) and its inner-loss estimators.

- MAML's result is pinned across the move of its machinery into metarl.gradient_meta;
- DiCE (Foerster et al. 2018): value, first and second derivatives against their definitions
  (exactly), and the Hessian in expectation against the analytic Hessian of the expected return,
  which the REINFORCE loss's Hessian (MAML's second-order term) misses;
- LVC (Rothfuss et al. 2019): value, gradient and Hessian against its formula.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from metarl.agents import MAML, MAMLConfig
from metarl.gradient_meta import dice_loss, lvc_loss, reinforce_loss

TINY = MAMLConfig(meta_batch_size=3, episodes_per_task=2, horizon=6, hidden_sizes=(8,), cg_iters=3)


# ---- MAML before/after the move ------------------------------------------------------------------
# Recorded with agents/maml.py before its machinery moved to metarl/gradient_meta.py (commit
# d6ba13e, CPU, one thread): the move must not change a bit on the machine that recorded them;
# the tolerance only absorbs BLAS/libm differences between machines.
PINNED = {
    "trpo": (-2.528104782104492, {"log_std": 0.13748335093259811, "net.0.weight": 1.3107338845729828, "net.0.bias": 0.44970682822167873,
                                  "net.2.weight": -0.5063901245594025, "net.2.bias": -0.040235597640275955}),
    "fo2": (-2.6592414379119873, {"log_std": 0.027265949174761772, "net.0.weight": 1.2458807304501534, "net.0.bias": 0.04038270190358162,
                                  "net.2.weight": -0.5153772942721844, "net.2.bias": 0.045740336179733276}),
}


@pytest.mark.parametrize("variant", sorted(PINNED))
def test_maml_iterations_are_pinned_across_the_refactor(variant: str) -> None:
    changes = {} if variant == "trpo" else {"first_order": True, "num_inner_steps": 2}
    agent = MAML("metarl/Navigation2D-v0", replace(TINY, **changes), seed=5)
    metrics = [agent.train_iteration() for _ in range(2)]
    post, sums = PINNED[variant]
    assert metrics[-1]["rollout/post_return"] == pytest.approx(post, rel=1e-4)
    for k, v in sums.items():
        assert float(agent.params[k].detach().double().sum()) == pytest.approx(v, rel=1e-4, abs=1e-5), k
