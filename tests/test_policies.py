"""Policies as pure functions of parameter dicts: likelihoods, KL, sampling, batching."""

from __future__ import annotations

import pytest
import torch
from gymnasium import spaces
from torch.distributions import Categorical, Normal, kl_divergence

from metarl.errors import ConfigError
from metarl.policies import (
    CategoricalMLPPolicy,
    GaussianMLPPolicy,
    MaskReLU,
    batched_dist_params,
    make_policy,
    stack_params,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_log_prob_kl_entropy_match_torch_distributions() -> None:
    policy = GaussianMLPPolicy(3, 2, hidden_sizes=(5,), init_std=0.7)
    p0 = policy.init_params(_gen(0))
    p1 = policy.init_params(_gen(1))
    p1["log_std"] = p1["log_std"] + torch.tensor([0.3, -0.2])
    obs = torch.randn(7, 3, generator=_gen(2))
    act = torch.randn(7, 2, generator=_gen(3))
    d0, d1 = policy.dist_params(p0, obs), policy.dist_params(p1, obs)
    n0, n1 = Normal(d0[0], d0[1].exp()), Normal(d1[0], d1[1].exp())
    torch.testing.assert_close(policy.log_prob(d0, act), n0.log_prob(act).sum(-1))
    torch.testing.assert_close(policy.kl(d0, d1), kl_divergence(n0, n1).sum(-1))
    torch.testing.assert_close(policy.entropy(d0), n0.entropy().sum(-1))
    assert torch.allclose(d0[1], torch.full((7, 2), torch.log(torch.tensor(0.7)).item()))


def test_categorical_log_prob_kl_entropy_match_torch_distributions() -> None:
    policy = CategoricalMLPPolicy(4, 3, hidden_sizes=(6,))
    p0, p1 = policy.init_params(_gen(0)), policy.init_params(_gen(1))
    obs = torch.randn(9, 4, generator=_gen(2))
    act = torch.randint(0, 3, (9,), generator=_gen(3))
    d0, d1 = policy.dist_params(p0, obs), policy.dist_params(p1, obs)
    c0, c1 = Categorical(logits=d0[0]), Categorical(logits=d1[0])
    torch.testing.assert_close(policy.log_prob(d0, act), c0.log_prob(act))
    torch.testing.assert_close(policy.kl(d0, d1), kl_divergence(c0, c1))
    torch.testing.assert_close(policy.entropy(d0), c0.entropy())


def test_categorical_sampling_follows_the_probabilities() -> None:
    policy = CategoricalMLPPolicy(1, 3, hidden_sizes=())
    logp = torch.log(torch.tensor([[0.2, 0.5, 0.3]])).expand(60000, 3)
    counts = torch.bincount(policy.sample((logp,), _gen(0)), minlength=3).double() / 60000
    # Standard error of each frequency is <= 0.002; 0.01 is five of them.
    assert torch.allclose(counts, torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64), atol=0.01)


def test_gaussian_sampling_mean_and_std() -> None:
    policy = GaussianMLPPolicy(1, 2, hidden_sizes=())
    mean = torch.tensor([1.0, -2.0]).expand(50000, 2)
    log_std = torch.log(torch.tensor([0.5, 2.0])).expand(50000, 2)
    a = policy.sample((mean, log_std), _gen(0))
    assert torch.allclose(a.mean(0), torch.tensor([1.0, -2.0]), atol=0.03)
    assert torch.allclose(a.std(0), torch.tensor([0.5, 2.0]), rtol=0.02)


def test_init_and_sampling_use_only_the_given_generator() -> None:
    policy = GaussianMLPPolicy(2, 2, hidden_sizes=(8, 8))
    state = torch.get_rng_state()
    a, b = policy.init_params(_gen(5)), policy.init_params(_gen(5))
    dist = policy.dist_params(a, torch.zeros(3, 2))
    s1, s2 = policy.sample(dist, _gen(1)), policy.sample(dist, _gen(1))
    assert torch.equal(torch.get_rng_state(), state), "global torch RNG was used"
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(s1, s2)
    assert not torch.equal(a["net.0.weight"], policy.init_params(_gen(6))["net.0.weight"])


def test_batched_forward_equals_per_task_forward() -> None:
    policy = GaussianMLPPolicy(3, 2, hidden_sizes=(8,))
    per_task = [policy.init_params(_gen(i)) for i in range(4)]
    stacked = {k: torch.stack([p[k] for p in per_task]) for k in per_task[0]}
    obs = torch.randn(4, 5, 3, generator=_gen(9))
    mean, log_std = batched_dist_params(policy, stacked, obs)
    for m, p in enumerate(per_task):
        ref = policy.dist_params(p, obs[m])
        torch.testing.assert_close(mean[m], ref[0])
        torch.testing.assert_close(log_std[m], ref[1])
    shared = stack_params(per_task[0], 4)
    assert shared["net.0.weight"].shape == (4, 8, 3)


def test_make_policy_picks_by_action_space_and_rejects_others() -> None:
    assert isinstance(make_policy(spaces.Box(-1, 1, (2,)), spaces.Box(-1, 1, (3,))), GaussianMLPPolicy)
    assert isinstance(make_policy(spaces.Box(-1, 1, (2,)), spaces.Discrete(4)), CategoricalMLPPolicy)
    with pytest.raises(ConfigError, match="MultiBinary"):
        make_policy(spaces.Box(-1, 1, (2,)), spaces.MultiBinary(3))
    with pytest.raises(ConfigError, match="flat Box observation"):
        make_policy(spaces.Discrete(3), spaces.Discrete(3))
    with pytest.raises(ConfigError, match="activation"):
        GaussianMLPPolicy(2, 2, activation="sigmoidish")
    with pytest.raises(ConfigError, match="init_std"):
        GaussianMLPPolicy(2, 2, init_std=0.0)
    with pytest.raises(ConfigError, match="hidden_sizes"):
        GaussianMLPPolicy(2, 2, hidden_sizes=(0,))


@pytest.mark.parametrize("policy", [GaussianMLPPolicy(3, 2, hidden_sizes=(5, 4), activation="relu"), CategoricalMLPPolicy(3, 4, hidden_sizes=(5,))])
def test_dist_params_is_the_modules_forward_and_never_touches_the_module(policy) -> None:
    params = policy.init_params(_gen(0))
    obs = torch.randn(7, 3, generator=_gen(1))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            p.copy_(params[name])
    own = {name: p.detach().clone() for name, p in policy.named_parameters()}
    for got, want in zip(policy.dist_params(params, obs), policy(obs), strict=True):
        assert torch.equal(got, want)  # the same computation, bit for bit
    other = policy.init_params(_gen(5))
    policy.dist_params(other, obs)
    assert all(torch.equal(p, own[n]) for n, p in policy.named_parameters())
    # A name missing from the dict takes the module's own value (as torch.func.functional_call).
    partial = {k: v for k, v in other.items() if k != "net.0.bias"}
    with_own = {**other, "net.0.bias": own["net.0.bias"]}
    assert all(torch.equal(a, b) for a, b in zip(policy.dist_params(partial, obs), policy.dist_params(with_own, obs), strict=True))


def test_dist_params_from_threads_at_once_equals_serial() -> None:
    # The TRPO meta-update evaluates task groups on threads; with functional_call (which swaps the
    # module's attributes during the call) concurrent calls read each other's parameters.
    from metarl.threads import parallel_map

    policy = GaussianMLPPolicy(3, 2, hidden_sizes=(64, 64))
    sets = [policy.init_params(_gen(s)) for s in range(8)]
    obs = torch.randn(512, 3, generator=_gen(9))
    want = [policy.dist_params(p, obs)[0] for p in sets]
    for _ in range(5):
        got = parallel_map(lambda p: policy.dist_params(p, obs)[0], sets, workers=4)
        assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


def test_mask_relu_equals_relu_in_value_and_every_derivative() -> None:
    # A two-layer ReLU net in float64, inputs with exact zeros: value, gradient and a Hessian-vector
    # product (what the TRPO curvature differentiates) agree with torch.relu's to rounding.
    g = _gen(3)
    w1, w2 = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(3, 6, generator=g, dtype=torch.float64)
    x = torch.randn(50, 4, generator=g, dtype=torch.float64)
    x[:5] = 0.0
    v = torch.randn(6, 4, generator=g, dtype=torch.float64)

    def terms(act):
        w = w1.clone().requires_grad_(True)
        h = act(x @ w.T)
        y = (act(h @ w2.T) ** 2).sum()  # the outer square gives a nonzero Hessian through the mask
        (grad,) = torch.autograd.grad(y, w, create_graph=True)
        (hv,) = torch.autograd.grad(grad, w, grad_outputs=v)
        return y.detach(), grad.detach(), hv, h.detach()

    mask_relu = MaskReLU()
    y0, g0, hv0, h0 = terms(torch.relu)
    y1, g1, hv1, h1 = terms(mask_relu)
    assert (h0 == 0).any() and torch.equal(h0, h1)
    torch.testing.assert_close(y1, y0, rtol=1e-12, atol=0)
    torch.testing.assert_close(g1, g0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hv1, hv0, rtol=1e-12, atol=1e-12)
    assert hv0.abs().max() > 1.0  # the product is not trivially zero
    # The gradient at exactly 0 is 0, as torch.relu's.
    z = torch.tensor([0.0, -1.0, 2.0], requires_grad=True)
    (dz,) = torch.autograd.grad(mask_relu(z).sum(), z)
    assert dz.tolist() == [0.0, 0.0, 1.0]
    with torch.no_grad():  # the no-graph path is torch.relu itself
        assert torch.equal(mask_relu(x), torch.relu(x))
    assert torch.isnan(mask_relu(torch.tensor([float("nan")], requires_grad=True))).all()
