"""Second-order optimisation helpers: flat parameter views, Hessian-vector products, conjugate
gradient and a KL-constrained backtracking line search (the pieces of TRPO, Schulman et al. 2015,
§6 and appendix C). Generic: they take closures and tensors, not policies.

>>> import torch
>>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]])
>>> b = torch.tensor([1.0, 2.0])
>>> x = conjugate_gradient(lambda v: A @ v, b, iters=10)
>>> torch.allclose(A @ x, b, atol=1e-6)
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, overload

import torch
from torch import Tensor

__all__ = [
    "flatten",
    "unflatten",
    "hessian_vector_product",
    "pullback_hessian_vector_product",
    "gauss_newton_product",
    "conjugate_gradient",
    "LineSearchResult",
    "backtracking_line_search",
]


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate tensors into one flat vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split a flat vector into tensors shaped like ``like``."""
    out, i = [], 0
    for t in like:
        n = t.numel()
        out.append(vector[i : i + n].view_as(t))
        i += n
    if i != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, the tensors {i}")
    return out


def hessian_vector_product(
    f: Callable[[], Tensor], params: Sequence[Tensor], damping: float = 0.0
) -> Callable[[Tensor], Tensor]:
    """``v ↦ (∇²f + damping·I) v`` for a scalar ``f`` of ``params`` (Pearlmutter's double backward).

    ``f`` is evaluated once; the returned function reuses its graph. For ``f`` the mean KL between
    the old policy and the new one (zero at the current parameters), this is the Fisher-vector
    product TRPO's conjugate gradient needs (Schulman et al. 2015, appendix C.1).

    >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> hvp = hessian_vector_product(lambda: (x**3).sum(), [x])
    >>> hvp(torch.tensor([1.0, 0.0])).tolist()   # diag(6x) v
    [6.0, 0.0]
    """
    params = list(params)
    value = f()
    grads = torch.autograd.grad(value, params, create_graph=True)
    flat_grad = flatten(grads)

    def product(v: Tensor) -> Tensor:
        hv = torch.autograd.grad(flat_grad @ v, params, retain_graph=True)
        return flatten(hv) + damping * v

    return product


def pullback_hessian_vector_product(
    outputs: Sequence[Tensor],
    params: Sequence[Tensor],
    output_hvp: Callable[[list[Tensor]], list[Tensor]],
    damping: float = 0.0,
) -> Callable[[Tensor], Tensor]:
    """``v ↦ (Jᵀ H J + damping·I) v`` for ``y = g(params)`` with Jacobian ``J`` (``outputs`` hold
    the graph of ``g``) and ``H`` given by ``output_hvp`` on tensors shaped like ``outputs``.

    This is the Hessian of ``f(g(θ))`` where ``∇_y f = 0`` (the second-order term of the chain rule
    vanishes there): the case of TRPO's ``KL(π_old ‖ π)`` at the old parameters, composed with
    MAML's adaptation ``θ ↦ θ'``. It costs one Jacobian-vector product (double-vjp trick, reusing
    the graph) and one vector-Jacobian product per call, and never differentiates ``g`` three times.

    >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> y = [torch.stack([x[0] * x[1], x[1]])]                      # J = [[x1, x0], [0, 1]]
    >>> hvp = pullback_hessian_vector_product(y, [x], lambda u: [2 * u[0]])
    >>> hvp(torch.tensor([1.0, 0.0])).tolist()                      # 2 Jᵀ J e0
    [8.0, 4.0]
    """
    outputs, params = list(outputs), list(params)
    # Jᵀu is linear in u; differentiating it in u gives Jv while reusing one graph.
    dummies = [torch.zeros_like(y, requires_grad=True) for y in outputs]
    jtu = torch.autograd.grad(outputs, params, grad_outputs=dummies, create_graph=True)

    def product(v: Tensor) -> Tensor:
        jv = torch.autograd.grad(jtu, dummies, grad_outputs=unflatten(v, params), retain_graph=True)
        hjv = output_hvp(list(jv))
        jthjv = torch.autograd.grad(outputs, params, grad_outputs=hjv, retain_graph=True)
        return flatten(jthjv) + damping * v

    return product


def gauss_newton_product(
    outputs: Sequence[Tensor], params: Sequence[Tensor], f: Callable[[list[Tensor]], Tensor]
) -> Callable[[list[Tensor]], list[Tensor]]:
    """``u ↦ Jᵀ (∇²f) J u`` for ``y = g(params)`` (``outputs`` hold the graph of ``g``, Jacobian
    ``J``) and a scalar ``f(y)`` whose Hessian is taken at the outputs' values.

    It equals the Hessian of ``f∘g`` where ``∇_y f = 0`` (Schraudolph 2002; Martens 2010 §4.2): the
    case of ``KL(π_old ‖ π)`` in distribution parameters where the KL's gradient vanishes at
    ``π = π_old``. It never differentiates ``g`` twice: one Jacobian-vector product by the
    double-vjp trick (the graph of ``Jᵀ·`` is built once), ``∇²f`` on the small output tensors and
    one vector-Jacobian product per call. Vectors are lists shaped like ``params``.

    >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> y = [torch.stack([x[0] * x[1], x[1]])]                      # J = [[x1, x0], [0, 1]]
    >>> gn = gauss_newton_product(y, [x], lambda z: (z[0] ** 2).sum())
    >>> gn([torch.tensor([1.0, 0.0])])[0].tolist()                  # 2 Jᵀ J e0
    [8.0, 4.0]
    """
    outputs, params = list(outputs), list(params)
    at = [y.detach().requires_grad_(True) for y in outputs]
    grad_f = torch.autograd.grad(f(at), at, create_graph=True)
    dummies = [torch.zeros_like(y, requires_grad=True) for y in outputs]
    jtu = torch.autograd.grad(outputs, params, grad_outputs=dummies, create_graph=True)

    def product(u: list[Tensor]) -> list[Tensor]:
        ju = torch.autograd.grad(jtu, dummies, grad_outputs=u, retain_graph=True)
        hju = torch.autograd.grad(grad_f, at, grad_outputs=ju, retain_graph=True)
        return list(torch.autograd.grad(outputs, params, grad_outputs=hju, retain_graph=True))

    return product


@overload
def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = ..., residual_tol: float = ..., *, with_product: Literal[False] = ...
) -> Tensor: ...


@overload
def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = ..., residual_tol: float = ..., *, with_product: Literal[True]
) -> tuple[Tensor, Tensor]: ...


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, residual_tol: float = 1e-10, *, with_product: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Approximately solve ``A x = b`` for symmetric positive definite ``A`` given ``v ↦ A v``.

    With ``with_product`` it returns ``(x, A x)``, where ``A x = b - r`` comes from the residual
    ``r`` that CG tracks: TRPO's step length needs ``xᵀ A x``, and this saves it one product.

    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]])
    >>> x, ax = conjugate_gradient(lambda v: A @ v, torch.tensor([1.0, 2.0]), with_product=True)
    >>> torch.allclose(ax, A @ x, atol=1e-6)
    True
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr <= residual_tol:
            break
        Ap = matvec(p)
        alpha = rr / (p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return (x, b - r) if with_product else x


class LineSearchResult(NamedTuple):
    """Outcome of :func:`backtracking_line_search`.

    Attributes:
        accepted: whether some step fraction passed both checks.
        fraction: the accepted fraction of the full step (0 if none).
        steps: number of candidates evaluated.
        improvement: objective improvement of the accepted step (or of the last candidate).
        kl: KL of the accepted step (or of the last candidate).
    """

    accepted: bool
    fraction: float
    steps: int
    improvement: float
    kl: float


def backtracking_line_search(
    evaluate: Callable[[float], tuple[float, float]],
    max_kl: float,
    max_steps: int = 15,
    backtrack_ratio: float = 0.8,
) -> LineSearchResult:
    """Try step fractions ``1, r, r², ...`` until one improves the objective within the KL bound.

    Args:
        evaluate: ``fraction -> (improvement, kl)`` for the parameters ``old + fraction·step``
            (improvement > 0 means better).
        max_kl: largest accepted KL.
        max_steps: candidates to try (pytorch-maml-rl: 15).
        backtrack_ratio: shrink factor (pytorch-maml-rl: 0.8).

    >>> backtracking_line_search(lambda f: (1.0 - f, f), max_kl=0.5).accepted   # f = 0.8**4 passes
    True
    """
    if max_steps < 1 or not 0.0 < backtrack_ratio < 1.0:
        raise ValueError(f"need max_steps >= 1 and 0 < backtrack_ratio < 1, got {max_steps}, {backtrack_ratio}")
    improvement = kl = float("nan")
    fraction = 1.0
    for step in range(1, max_steps + 1):
        improvement, kl = evaluate(fraction)
        # TRPO accepts only an actual improvement inside the trust region (Schulman et al. 2015, §6).
        if improvement > 0.0 and kl <= max_kl:
            return LineSearchResult(True, fraction, step, improvement, kl)
        fraction *= backtrack_ratio
    return LineSearchResult(False, 0.0, max_steps, improvement, kl)
