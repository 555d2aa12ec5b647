"""Float math that gives the same bits on every machine, for task recipes (held-out tasks).

Held-out tasks must be identical on every machine (DESIGN.md). A shipped file in
``metarl/envs/held_out/`` defines them where one exists; a configuration without one generates
them at run time, so its recipe must not depend on the last bit of libm, SIMD or compiler
choices. numpy's ``exp``/``sin``/``cos`` use SIMD or SVML kernels chosen by the CPU (an AVX-512
and an AVX2 machine disagree by an ulp), ``Generator.uniform``/``normal`` compute
``loc + scale * x`` in C where compilers fuse the multiply-add on some CPUs (numpy#22993), and
``dirichlet``/``normal`` call libm's ``log1p``/``exp`` in their ziggurat tails. The draws here
use only:

- ``Generator.random`` — 53 random bits times ``2**-53``, exact (PCG64 is integer arithmetic);
- single IEEE-754 ``+ - * /``, each correctly rounded by every conforming CPU, SIMD or not;
- :mod:`decimal`'s ``exp``/``ln``/``sqrt`` (pure software, correctly rounded by specification),
  rounded once to a float.

:func:`compare_tasks` is the one tolerance by which a regenerated recipe is checked against the
data a shipped file holds (:data:`HELD_OUT_RTOL`).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> float(log_uniform(rng, 1.0, 1.0, (1,))[0])   # a degenerate range is exactly its bound
1.0
>>> float(exp(np.array([1.0]))[0])               # exp(1) correctly rounded
2.718281828459045
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from decimal import Decimal, localcontext

import numpy as np

from metarl.tasks import Task

__all__ = ["HELD_OUT_RTOL", "compare_tasks", "uniform", "log_uniform", "exp", "normal", "unit_spacings"]

#: Relative tolerance of float fields when a regenerated held-out recipe is compared with the
#: shipped file it once produced: a recipe that went through libm/SIMD on another machine is off
#: by a few ulps (2.2e-16 each); anything larger is a changed recipe. Integer and discrete
#: fields (``integer=True``, ``choices=...``, integer arrays) compare exactly.
HELD_OUT_RTOL = 1e-12

# 40 significant digits: every intermediate of a recipe carries ~24 digits more than a float,
# and the result is then rounded once. Pure software, so the same digits everywhere.
_PREC = 40


def uniform(rng: np.random.Generator, low: float, high: float, size: int | tuple[int, ...]) -> np.ndarray:
    """``U[low, high)`` as ``low + (high - low) * u``: three correctly rounded IEEE operations.

    The same values as ``rng.uniform(low, high, size)`` where numpy's C code does not fuse the
    multiply-add (x86-64 builds), and the same stream position.
    """
    return low + (float(high) - float(low)) * rng.random(size)


def _dec(x: float) -> Decimal:
    return Decimal(float(x))  # exact: every float is a finite decimal


def exp(x: np.ndarray) -> np.ndarray:
    """``exp`` of each entry, computed in :mod:`decimal` and rounded once to float64."""
    x = np.asarray(x, dtype=np.float64)
    with localcontext() as ctx:
        ctx.prec = _PREC
        return np.array([float(_dec(v).exp()) for v in x.ravel()], dtype=np.float64).reshape(x.shape)


def log_uniform(rng: np.random.Generator, low: float, high: float, size: int | tuple[int, ...]) -> np.ndarray:
    """Log-uniform draws in ``[low, high]``: ``exp(ln low + (ln high - ln low) u)`` in :mod:`decimal`.

    Uses one ``rng.random`` value per entry (as ``np.exp(rng.uniform(log(low), log(high)))``
    does, to an ulp); ``low == high`` gives ``low`` exactly.
    """
    u = rng.random(size)
    if low == high:
        return np.full(u.shape, float(low))
    with localcontext() as ctx:
        ctx.prec = _PREC
        lo = _dec(low).ln()
        span = _dec(high).ln() - lo
        return np.array([float((lo + span * _dec(v)).exp()) for v in u.ravel()], dtype=np.float64).reshape(u.shape)


def normal(rng: np.random.Generator, loc: float, scale: float, size: int | tuple[int, ...]) -> np.ndarray:
    """``N(loc, scale²)`` draws by Marsaglia's polar method (Marsaglia & Bray 1964).

    Pairs ``x, y = 2u - 1`` (exact) are drawn until ``0 < s = x² + y² < 1``; then ``x·f`` and
    ``y·f`` with ``f = sqrt(-2 ln s / s)`` are two independent standard normals, filled in order.
    ``s``, ``ln`` and ``sqrt`` are :mod:`decimal`; ``loc + scale * z`` is IEEE.
    """
    shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    total = math.prod(shape)
    z: list[float] = []
    with localcontext() as ctx:
        ctx.prec = _PREC
        while len(z) < total:
            x, y = (_dec(v) for v in 2.0 * rng.random(2) - 1.0)
            s = x * x + y * y
            if 0 < s < 1:
                f = (-2 * s.ln() / s).sqrt()
                z += [float(x * f), float(y * f)]
    return loc + float(scale) * np.array(z[:total], dtype=np.float64).reshape(shape)


def unit_spacings(rng: np.random.Generator, k: int, size: tuple[int, ...]) -> np.ndarray:
    """``Dirichlet(1, ..., 1)`` vectors of length ``k`` (last axis): spacings of sorted uniforms.

    The gaps between ``k - 1`` sorted ``U[0, 1)`` points (and 0, 1) are uniform on the simplex
    (Devroye 1986, *Non-Uniform Random Variate Generation*, §V.2.2). Every gap is a difference
    of multiples of ``2**-53``, so it is exact; the entries sum to 1 up to rounding of the sum.
    """
    u = np.sort(rng.random((*size, k - 1)), axis=-1)
    edges = np.concatenate([np.zeros((*size, 1)), u, np.ones((*size, 1))], axis=-1)
    return np.diff(edges, axis=-1)


def compare_tasks(shipped: Sequence[Task], regenerated: Sequence[Task], *, rtol: float = HELD_OUT_RTOL) -> str | None:
    """``None`` if two task lists are the same tasks up to ``rtol``, else where they first differ.

    Types, lengths and shapes compare exactly, integer and discrete fields exactly, float
    fields elementwise with ``|a - b| <= rtol * |a|`` (no absolute tolerance).

    >>> from metarl.envs.bandit import BanditTask
    >>> a = [BanditTask(probs=[0.5, 0.25])]
    >>> compare_tasks(a, [BanditTask(probs=[0.5, 0.25 * (1 + 2**-52)])]) is None
    True
    >>> compare_tasks(a, [BanditTask(probs=[0.5, 0.2500001])])
    'task 0 field probs: [0.5, 0.25] vs [0.5, 0.2500001] (rtol 1e-12)'
    """
    if len(shipped) != len(regenerated):
        return f"{len(shipped)} tasks vs {len(regenerated)}"
    for i, (a, b) in enumerate(zip(shipped, regenerated, strict=True)):
        if type(a) is not type(b):
            return f"task {i}: {type(a).__name__} vs {type(b).__name__}"
        for f in dataclasses.fields(a):
            va, vb = np.asarray(getattr(a, f.name)), np.asarray(getattr(b, f.name))
            exact = (
                f.metadata.get("integer") or f.metadata.get("choices") is not None
                or not np.issubdtype(va.dtype, np.floating)
            )
            same = va.shape == vb.shape and (
                np.array_equal(va, vb) if exact else bool(np.all(np.abs(va - vb) <= rtol * np.abs(va)))
            )
            if not same:
                return f"task {i} field {f.name}: {_show(va)} vs {_show(vb)}" + ("" if exact else f" (rtol {rtol:g})")
    return None


def _show(v: np.ndarray) -> object:
    return v.tolist() if v.size <= 8 else f"array(shape={v.shape})"
