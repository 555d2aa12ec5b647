"""The shared gradient-based machinery (metarl.gradient_meta) and its inner-loss estimators.

- MAML's result is pinned across the move of its machinery into metarl.gradient_meta;
- DiCE (Foerster et al. 2018): value, first and second derivatives against their definitions
  (exactly; the first is REINFORCE's inner step, also on an agent's batch), and the Hessian in
  expectation against the analytic Hessian of the expected return, which the REINFORCE loss's
  Hessian (MAML's second-order term) misses;
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


# ---- DiCE ------------------------------------------------------------------------------------------
# A two-step problem with a known expected return: a_t ~ N(θ, σ²) independently at t = 0, 1,
# r_t = -(a_t - g)², so J(θ) = Σ_t γ^t E[r_t] = -(1 + γ)((θ - g)² + σ²) and J'' = -2(1 + γ).
SIGMA, GOAL, GAMMA = 0.7, 0.4, 0.9


def _two_step(theta: torch.Tensor, episodes: int, seed: int):
    """``(log π, Â, score)`` ``[T, E]``, ``Â_t = γ^t (Σ_{t'≥t} γ^{t'-t} r_t' - b_t)``: the advantage
    with which DiCE's derivatives are unbiased for the discounted return (see dice_loss)."""
    g = torch.Generator().manual_seed(seed)
    a = theta.detach() + SIGMA * torch.randn(2, episodes, generator=g, dtype=torch.float64)  # [T, E]
    logp = -0.5 * ((a - theta) / SIGMA) ** 2  # + const
    discount = torch.tensor([[1.0], [GAMMA]], dtype=torch.float64)
    rewards = -((a - GOAL) ** 2) * discount  # γ^t r_t
    values = 0.3 * torch.randn(2, episodes, generator=g, dtype=torch.float64) * discount  # any baseline, γ^t b_t
    adv = rewards.flip(0).cumsum(0).flip(0) - values
    score = (a - theta.detach()) / SIGMA**2  # ∂ log π / ∂θ; ∂² log π / ∂θ² = -1/σ²
    return logp, adv, score


def _dice_hessian_by_hand(adv: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Per episode: Σ_t Â_t (S'_≤t² - S'_<t² - 1/σ²), S' = Σ scores (dice_loss's docstring)."""
    upto = s.cumsum(0)
    return (adv * (upto**2 - (upto - s) ** 2 - 1 / SIGMA**2)).sum(0)


def test_dice_value_and_first_two_derivatives_equal_their_definitions_exactly() -> None:
    theta = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    E = 64
    logp, adv, s = _two_step(theta, E, seed=0)
    mask = torch.ones_like(adv)
    mask[1, 3] = 0  # episode 3 ended after one step: its second step must not count
    n = mask.sum()
    (r1,) = torch.autograd.grad(reinforce_loss(logp, adv, mask), theta, retain_graph=True)
    loss = dice_loss(logp, adv, mask)
    (d1,) = torch.autograd.grad(loss, theta, create_graph=True)
    (d2,) = torch.autograd.grad(d1, theta)
    assert float(loss) == 0.0  # ⧖ is 1: the value carries no information
    # First derivative: REINFORCE's, with the same advantages (the same inner step).
    torch.testing.assert_close(d1.detach(), r1)
    torch.testing.assert_close(d1.detach(), -(s * adv * mask).sum() / n)
    # Second derivative: Σ_t Â_t (S'_≤t² - S'_<t² - 1/σ²) over the valid steps.
    torch.testing.assert_close(d2, -_dice_hessian_by_hand(adv * mask, s * mask).sum() / n)


def test_dice_inner_step_is_the_reinforce_step_on_an_agent_batch() -> None:
    """On a sampled batch (normalised advantages, baseline, γ < 1) DiCE and REINFORCE adapt θ to
    the same θ': the estimators differ only in the meta-gradient (second derivatives)."""
    from metarl.policies import stack_params

    cfg = replace(TINY, meta_batch_size=2, episodes_per_task=5, horizon=20, inner_estimator="dice")
    dice, plain = MAML("metarl/Navigation2D-v0", cfg, seed=0), MAML("metarl/Navigation2D-v0", replace(cfg, inner_estimator="reinforce"), seed=0)
    batches, _, _ = dice._draw_and_adapt(0, [cfg.inner_lr], {"sample": 0.0, "adapt": 0.0})
    theta = stack_params({k: v.detach() for k, v in dice.params.items()}, 2)
    a = dice._adapt_step(theta, batches[0], 0.1, first_order=True, iteration=0)
    b = plain._adapt_step(theta, batches[0], 0.1, first_order=True, iteration=0)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
        assert not torch.equal(a[k], theta[k]), k


def test_dice_hessian_is_unbiased_and_the_reinforce_hessian_is_not() -> None:
    theta = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    E = 200_000
    logp, adv, s = _two_step(theta, E, seed=1)
    exact = -2 * (1 + GAMMA)  # J''(θ)
    ones = torch.ones_like(logp)
    (d1,) = torch.autograd.grad(-dice_loss(logp, adv, ones) * 2, theta, create_graph=True)  # × T: mean over episodes
    (d2,) = torch.autograd.grad(d1, theta)
    # Per-episode Hessian estimates (the formula checked exactly above) give the standard error.
    per_episode = _dice_hessian_by_hand(adv, s)
    torch.testing.assert_close(d2, per_episode.mean())
    se = float(per_episode.std() / E**0.5)
    assert abs(float(d2) - exact) < 4 * se, (float(d2), exact, se)
    # The REINFORCE loss with the same samples (MAML's inner loss): its Hessian is
    # E[Σ_t Â_t ∂²log π] = -(1/σ²) E[Σ_t Â_t], not J''.
    logp, _, _ = _two_step(theta, E, seed=1)
    (g1,) = torch.autograd.grad(reinforce_loss(logp, adv, ones) * -2, theta, create_graph=True)
    (g2,) = torch.autograd.grad(g1, theta)
    assert abs(float(g2) - exact) > 20 * se, (float(g2), exact, se)


# ---- LVC -------------------------------------------------------------------------------------------
def test_lvc_value_gradient_and_hessian_follow_its_formula() -> None:
    # Linear-Gaussian policy a ~ N(w0 + w1 o, σ²) over [T, E] steps, a random mask and advantages.
    g = torch.Generator().manual_seed(2)
    T, E = 5, 3
    obs = torch.randn(T, E, generator=g, dtype=torch.float64)
    w = torch.tensor([0.2, -0.5], dtype=torch.float64)
    act = w[0] + w[1] * obs + SIGMA * torch.randn(T, E, generator=g, dtype=torch.float64)
    adv = torch.randn(T, E, generator=g, dtype=torch.float64)
    mask = torch.ones(T, E, dtype=torch.float64)
    mask[-2:, 0] = 0

    def loss(w: torch.Tensor, fn=lvc_loss) -> torch.Tensor:
        logp = -0.5 * ((act - w[0] - w[1] * obs) / SIGMA) ** 2
        return fn(logp, adv, mask)

    n = mask.sum()
    feats = torch.stack([torch.ones_like(obs), obs], -1)  # ∂μ/∂w
    score = ((act - w[0] - w[1] * obs) / SIGMA**2)[..., None] * feats  # ∇ log π_t  [T, E, 2]
    hess_logp = -feats[..., :, None] * feats[..., None, :] / SIGMA**2  # ∇² log π_t
    wt = (adv * mask)[..., None]
    # Rothfuss et al. 2019, eq. 12: J_LVC = Σ_t π_θ/⊥π_θ · A_t. Value Σ A_t; gradient Σ A_t ∇log π_t;
    # Hessian Σ A_t (∇log π_t ∇log π_tᵀ + ∇² log π_t). Our loss is -J_LVC / n.
    torch.testing.assert_close(loss(w), -(adv * mask).sum() / n)
    torch.testing.assert_close(torch.func.grad(loss)(w), -(wt * score).sum((0, 1)) / n)
    outer = score[..., :, None] * score[..., None, :]
    torch.testing.assert_close(torch.func.hessian(loss)(w), -(wt[..., None] * (outer + hess_logp)).sum((0, 1)) / n)
    # The same gradient as REINFORCE; the Hessians differ by the score outer products.
    torch.testing.assert_close(torch.func.grad(loss)(w), torch.func.grad(lambda v: loss(v, reinforce_loss))(w))
    torch.testing.assert_close(torch.func.hessian(lambda v: loss(v, reinforce_loss))(w), -(wt[..., None] * hess_logp).sum((0, 1)) / n)
