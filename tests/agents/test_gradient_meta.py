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


# ---- DiCE ------------------------------------------------------------------------------------------
# A two-step problem with a known expected return: a_t ~ N(θ, σ²) independently at t = 0, 1,
# r_t = -(a_t - g)², so J(θ) = Σ_t γ^t E[r_t] = -(1 + γ)((θ - g)² + σ²) and J'' = -2(1 + γ).
SIGMA, GOAL, GAMMA = 0.7, 0.4, 0.9


def _two_step(theta: torch.Tensor, episodes: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    a = theta.detach() + SIGMA * torch.randn(2, episodes, generator=g, dtype=torch.float64)  # [T, E]
    logp = -0.5 * ((a - theta) / SIGMA) ** 2  # + const
    discount = torch.tensor([[1.0], [GAMMA]], dtype=torch.float64)
    rewards = -((a - GOAL) ** 2) * discount  # γ^t r_t
    values = 0.3 * torch.randn(2, episodes, generator=g, dtype=torch.float64) * discount  # any baseline
    score = (a - theta.detach()) / SIGMA**2  # ∂ log π / ∂θ; ∂² log π / ∂θ² = -1/σ²
    return logp, rewards, values, score


def _dice_objective(theta: torch.Tensor, episodes: int, seed: int) -> torch.Tensor:
    logp, rewards, values, _ = _two_step(theta, episodes, seed)
    mask = torch.ones_like(rewards)
    return -dice_loss(logp, rewards, values, mask) * 2  # × T: the mean over episodes of the DiCE objective


def test_dice_value_and_first_two_derivatives_equal_their_definitions_exactly() -> None:
    theta = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    E = 64
    _, rewards, values, s = _two_step(theta, E, seed=0)
    obj = _dice_objective(theta, E, seed=0)
    (d1,) = torch.autograd.grad(obj, theta, create_graph=True)
    (d2,) = torch.autograd.grad(d1, theta)
    # ⧖ is 1 in value: the objective is the mean discounted return (the baseline term is 0).
    torch.testing.assert_close(obj.detach(), rewards.sum(0).mean())
    # First derivative: the score-function gradient with causal reward-to-go minus the baseline.
    reward_to_go = rewards.flip(0).cumsum(0).flip(0)
    torch.testing.assert_close(d1.detach(), (s * (reward_to_go - values)).sum(0).mean())
    # Second derivative: Σ_t r_t [(Σ_{t'≤t} s_t')² + Σ_{t'≤t} (-1/σ²)] - Σ_t b_t (s_t² - 1/σ²).
    cum_s = s.cumsum(0)
    steps = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    hand = (rewards * (cum_s**2 - steps / SIGMA**2)).sum(0) - (values * (s**2 - 1 / SIGMA**2)).sum(0)
    torch.testing.assert_close(d2, hand.mean())


def test_dice_hessian_is_unbiased_and_the_reinforce_hessian_is_not() -> None:
    theta = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    E = 200_000
    logp, rewards, values, s = _two_step(theta, E, seed=1)
    exact = -2 * (1 + GAMMA)  # J''(θ)
    obj = _dice_objective(theta, E, seed=1)
    (d1,) = torch.autograd.grad(obj, theta, create_graph=True)
    (d2,) = torch.autograd.grad(d1, theta)
    # Per-episode Hessian estimates (the formula checked exactly above) give the standard error.
    cum_s = s.cumsum(0)
    steps = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    per_episode = (rewards * (cum_s**2 - steps / SIGMA**2)).sum(0) - (values * (s**2 - 1 / SIGMA**2)).sum(0)
    se = float(per_episode.std() / E**0.5)
    assert abs(float(d2) - exact) < 4 * se, (float(d2), exact, se)
    # The REINFORCE loss with the same samples (MAML's inner loss, advantages = reward-to-go):
    # its Hessian is E[Σ_t G_t ∂²log π] = -(1/σ²) E[Σ_t G_t], not J''.
    reward_to_go = rewards.flip(0).cumsum(0).flip(0)
    loss = reinforce_loss(logp, reward_to_go, torch.ones_like(logp)) * -2
    (g1,) = torch.autograd.grad(loss, theta, create_graph=True)
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


def test_dice_batch_fields_are_discounted_rewards_and_baseline() -> None:
    """TaskBatch.rewards = γ^t r_t and .values = γ^t b(s_t) (b = G - Â); divided by the task's
    advantage std when advantages are normalised."""
    from metarl.sampling import Rollout

    T, M, E = 4, 2, 2
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(T, M * E, generator=g)
    obs = torch.randn(T, M * E, 2, generator=g)
    valid = torch.ones(T, M * E)
    valid[3, 1] = 0  # sub-env 1 (task 0) ended after step 2
    ro = Rollout(obs, torch.zeros(T, M * E, 2), rewards, torch.zeros(T, M * E, dtype=torch.bool),
                 torch.zeros(T, M * E, dtype=torch.bool), valid, obs[-1], {})
    cfg = replace(TINY, gamma=0.9, baseline_reg=1e-3, inner_estimator="dice")
    raw = MAML("metarl/Navigation2D-v0", replace(cfg, normalize_advantages=False), seed=0)._process(ro, M, E)
    normed = MAML("metarl/Navigation2D-v0", cfg, seed=0)._process(ro, M, E)
    G = torch.zeros(T, M * E)
    run = torch.zeros(M * E)
    for t in reversed(range(T)):
        run = (rewards[t] + 0.9 * run) * valid[t]
        G[t] = run
    for m in range(M):
        for e in range(E):
            n = m * E + e
            disc = 0.9 ** torch.arange(T, dtype=torch.float32) * valid[:, n]
            torch.testing.assert_close(raw.rewards[m, :, e], disc * rewards[:, n])
            torch.testing.assert_close(raw.values[m, :, e], disc * (G[:, n] - raw.advantages[m, :, e]), rtol=1e-4, atol=1e-5)
        a, mk = raw.advantages[m][raw.mask[m] > 0], raw.mask[m] > 0
        scale = a.std(unbiased=False) + 1e-8
        torch.testing.assert_close(normed.rewards[m][mk], raw.rewards[m][mk] / scale)
        torch.testing.assert_close(normed.values[m][mk], raw.values[m][mk] / scale)
    assert raw.rewards[0, 3, 1] == 0 and raw.values[0, 3, 1] == 0
