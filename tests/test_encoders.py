"""Context encoders: permutation invariance, the product-of-Gaussians posterior, the KL term."""

from __future__ import annotations

import math

import pytest
import torch

from metarl.encoders import (
    ENCODERS,
    kl_to_standard_normal,
    make_encoder,
    product_of_gaussians,
    sample_latent,
)
from metarl.errors import ConfigError


def _ctx(M=3, C=7, D=5, seed=0):
    return torch.randn(M, C, D, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ENCODERS)
def test_every_encoder_is_permutation_invariant(kind):
    torch.manual_seed(0)
    enc = make_encoder(kind, 5, 3, (16, 16))
    ctx = _ctx()
    mask = (torch.rand(3, 7, generator=torch.Generator().manual_seed(1)) > 0.3).float()
    mask[:, 0] = 1.0
    mean, var = enc(ctx)
    mmean, mvar = enc(ctx, mask)
    for seed in range(3):
        perm = torch.randperm(7, generator=torch.Generator().manual_seed(10 + seed))
        torch.testing.assert_close(enc(ctx[:, perm]), (mean, var), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(enc(ctx[:, perm], mask[:, perm]), (mmean, mvar), rtol=1e-5, atol=1e-6)
    # ...while the belief does depend on the context itself.
    assert not torch.allclose(enc(ctx * 2)[0], mean)


@pytest.mark.parametrize("kind", ENCODERS)
def test_masked_transitions_are_ignored_and_an_empty_context_is_the_prior(kind):
    torch.manual_seed(0)
    enc = make_encoder(kind, 5, 3, (16,))
    ctx = _ctx()
    mask = torch.ones(3, 7)
    mask[0, 4:] = 0.0
    mask[2] = 0.0  # nothing observed in task 2
    mean, var = enc(ctx, mask)
    junk = ctx.clone()
    junk[0, 4:] = 1e3  # masked entries may hold anything
    torch.testing.assert_close(enc(junk, mask), (mean, var))
    torch.testing.assert_close(enc(ctx[:1, :4])[0][0], mean[0], rtol=1e-5, atol=1e-6)
    assert torch.equal(mean[2], torch.zeros(3)) and torch.equal(var[2], torch.ones(3))
    empty_mean, empty_var = enc(torch.zeros(2, 0, 5))
    assert torch.equal(empty_mean, torch.zeros(2, 3)) and torch.equal(empty_var, torch.ones(2, 3))


def test_product_of_gaussians_is_the_normalised_product_of_the_factor_densities():
    """Σ_i log N(x; μ_i, σ_i²) − log N(x; μ, σ²) must not depend on x (the product is ∝ N(μ, σ²))."""
    g = torch.Generator().manual_seed(0)
    means = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    variances = torch.rand(2, 4, 3, generator=g, dtype=torch.float64) + 0.1
    mean, var = product_of_gaussians(means, variances)
    xs = torch.linspace(-3, 3, 7, dtype=torch.float64).view(7, 1, 1, 1)
    factors = torch.distributions.Normal(means, variances.sqrt()).log_prob(xs).sum(2)  # [7, 2, 3]
    product = torch.distributions.Normal(mean, var.sqrt()).log_prob(xs[:, :, 0])  # [7, 2, 3]
    gap = factors - product
    torch.testing.assert_close(gap, gap[:1].expand_as(gap), rtol=0, atol=1e-10)
    # closed form for one factor pair: N(0, 1) · N(2, 1) ∝ N(1, 1/2); N(0, 1) · N(3, 2) ∝ N(1, 2/3)
    m, v = product_of_gaussians(torch.tensor([[[0.0, 0.0], [2.0, 3.0]]]), torch.tensor([[[1.0, 1.0], [1.0, 2.0]]]))
    torch.testing.assert_close(m, torch.tensor([[1.0, 1.0]]))
    torch.testing.assert_close(v, torch.tensor([[0.5, 2.0 / 3.0]]))


def test_kl_to_the_prior_matches_a_hand_computation_and_torch():
    # KL(N(1, 0.25) || N(0, 1)) = log(1/0.5) + (0.25 + 1)/2 - 1/2 = log 2 + 0.125; N(0, 1) gives 0.
    kl = kl_to_standard_normal(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.25, 1.0]]))
    assert kl.item() == pytest.approx(math.log(2.0) + 0.125, abs=1e-6)
    g = torch.Generator().manual_seed(3)
    mean, var = torch.randn(4, 5, generator=g), torch.rand(4, 5, generator=g) + 0.05
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mean, var.sqrt()), torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_to_standard_normal(mean, var), ref)


def test_sampled_latents_are_reparameterised_and_reproducible():
    mean = torch.zeros(2, 3, requires_grad=True)
    var = torch.full((2, 3), 4.0, requires_grad=True)
    z = sample_latent(mean, var, torch.Generator().manual_seed(0))
    z.sum().backward()
    assert torch.equal(mean.grad, torch.ones(2, 3)) and var.grad is not None
    assert torch.equal(z, sample_latent(mean, var, torch.Generator().manual_seed(0)))


def test_bad_encoder_settings_are_typed_errors():
    with pytest.raises(ConfigError, match="'lstm'"):
        make_encoder("lstm", 5, 3, (8,))
    with pytest.raises(ConfigError, match="latent_dim"):
        make_encoder("np", 5, 0, (8,))
    with pytest.raises(ConfigError, match=r"\[M, C, 5\]"):
        make_encoder("mean", 5, 3, (8,))(torch.zeros(2, 4))
