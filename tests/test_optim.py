"""Conjugate gradient, Hessian-vector products and the KL-constrained line search."""

from __future__ import annotations

import pytest
import torch

from metarl.optim import (
    backtracking_line_search,
    conjugate_gradient,
    flatten,
    gauss_newton_product,
    hessian_vector_product,
    pullback_hessian_vector_product,
    unflatten,
)


def test_conjugate_gradient_solves_an_spd_system() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(20, 20, generator=gen, dtype=torch.float64)
    A = a @ a.T + 20 * torch.eye(20, dtype=torch.float64)
    b = torch.randn(20, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: A @ v, b, iters=30, residual_tol=1e-24)
    torch.testing.assert_close(x, torch.linalg.solve(A, b))


def test_hvp_equals_the_hessian_times_the_vector() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True)
    f = lambda: (torch.sin(x) * x.roll(1)).sum() + (x**4).sum()  # noqa: E731
    H = torch.autograd.functional.hessian(lambda y: (torch.sin(y) * y.roll(1)).sum() + (y**4).sum(), x.detach())
    v = torch.randn(5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(hessian_vector_product(f, [x], damping=0.1)(v), H @ v + 0.1 * v)


def test_pullback_hvp_equals_the_full_hessian_at_a_stationary_point_of_the_outer_function() -> None:
    gen = torch.Generator().manual_seed(2)
    theta = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    W = torch.randn(4, 3, generator=gen, dtype=torch.float64)

    def g(t):  # nonlinear inner map, like MAML's adaptation
        return torch.tanh(W @ t) + 0.1 * (W @ t) ** 2

    y0 = g(theta).detach()

    def f_of_y(y):  # zero gradient at y0, like KL(old || new) at the old parameters
        return ((y - y0) ** 2 * torch.arange(1.0, 5.0, dtype=torch.float64)).sum() + ((y - y0) ** 3).sum()

    H = torch.autograd.functional.hessian(lambda t: f_of_y(g(t)), theta.detach())
    y_param = y0.clone().requires_grad_(True)
    inner = hessian_vector_product(lambda: f_of_y(y_param), [y_param])
    hvp = pullback_hessian_vector_product([g(theta)], [theta], lambda u: [inner(u[0])], damping=0.01)
    v = torch.randn(3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(hvp(v), H @ v + 0.01 * v)


def test_flatten_unflatten_roundtrip_and_size_check() -> None:
    ts = [torch.arange(6.0).reshape(2, 3), torch.tensor([7.0])]
    back = unflatten(flatten(ts), ts)
    assert all(torch.equal(a, b) for a, b in zip(ts, back, strict=True))
    with pytest.raises(ValueError, match="entries"):
        unflatten(torch.zeros(9), ts)


def test_line_search_takes_the_largest_fraction_that_passes_both_checks() -> None:
    seen = []

    def evaluate(f):
        seen.append(f)
        return (1.0 - f, f)  # improves only below 1, KL = f

    res = backtracking_line_search(evaluate, max_kl=0.5, max_steps=15, backtrack_ratio=0.8)
    assert res.accepted and res.steps == 5 and res.fraction == pytest.approx(0.8**4)
    assert res.kl <= 0.5 and res.improvement > 0
    assert seen == pytest.approx([0.8**i for i in range(5)])


def test_line_search_rejects_when_nothing_improves() -> None:
    res = backtracking_line_search(lambda f: (-1.0, 0.0), max_kl=0.1, max_steps=4)
    assert not res.accepted and res.fraction == 0.0 and res.steps == 4
    # An improving step outside the trust region is refused too.
    assert not backtracking_line_search(lambda f: (1.0, 1.0), max_kl=0.1, max_steps=3).accepted
    with pytest.raises(ValueError, match="backtrack_ratio"):
        backtracking_line_search(lambda f: (1.0, 0.0), max_kl=0.1, backtrack_ratio=1.5)


def test_gauss_newton_product_equals_the_hessian_where_the_outer_gradient_vanishes() -> None:
    gen = torch.Generator().manual_seed(3)
    theta = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    W = torch.randn(4, 3, generator=gen, dtype=torch.float64)

    def g(t):
        return torch.tanh(W @ t) + 0.1 * (W @ t) ** 2

    y0 = g(theta).detach()

    def f(y):  # zero gradient at y0, nonzero third-order terms
        return ((y - y0) ** 2 * torch.arange(1.0, 5.0, dtype=torch.float64)).sum() + ((y - y0) ** 3).sum()

    H = torch.autograd.functional.hessian(lambda t: f(g(t)), theta.detach())
    gn = gauss_newton_product([g(theta)], [theta], lambda ys: f(ys[0]))
    v = torch.randn(3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(gn([v])[0], H @ v)
    # Away from the stationary point the second-order term of the chain rule is missing.
    y1 = y0 + 0.5
    gn_off = gauss_newton_product([g(theta)], [theta], lambda ys: ((ys[0] - y1) ** 3).sum())
    H_off = torch.autograd.functional.hessian(lambda t: ((g(t) - y1) ** 3).sum(), theta.detach())
    assert not torch.allclose(gn_off([v])[0], H_off @ v)


def test_conjugate_gradient_returns_the_product_of_its_solution() -> None:
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(30, 30, generator=gen, dtype=torch.float64)
    A = a @ a.T + torch.eye(30, dtype=torch.float64)
    b = torch.randn(30, generator=gen, dtype=torch.float64)
    calls = []

    def matvec(v):
        calls.append(1)
        return A @ v

    x, ax = conjugate_gradient(matvec, b, iters=5, with_product=True)
    assert len(calls) == 5  # no extra product for A x
    torch.testing.assert_close(ax, A @ x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(x, conjugate_gradient(lambda v: A @ v, b, iters=5))
