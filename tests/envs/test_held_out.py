"""Held-out tasks: shipped files define them; run-time ones are exact by construction.

The run-time recipes are checked against values computed by hand from the generator's raw
64-bit outputs (PCG64 is integer arithmetic, ``random()`` is ``(raw >> 11) * 2**-53``) with
integers, fractions and 200-bit mpmath, none of which touch libm or SIMD.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction

import gymnasium as gym
import mpmath
import numpy as np
import pytest

from metarl.envs import make_held_out
from metarl.envs.bandit import BanditDistribution, BanditTask
from metarl.envs.mujoco import DynamicsTaskWrapper
from metarl.envs.mujoco.dynamics import DynamicsDistribution
from metarl.envs.mujoco.locomotion import DiscGoalDistribution, VelocityDistribution
from metarl.envs.navigation import Navigation2DDistribution
from metarl.envs.tabular_mdp import TabularMDPDistribution
from metarl.meta_env import held_out_rng
from metarl.portable import HELD_OUT_RTOL, compare_tasks, exp, log_uniform, normal, uniform
from metarl.tasks import Task, array_field, scalar_field

SEED = TabularMDPDistribution.held_out_seed


def raw_ints(count: int) -> list[int]:
    """The 53-bit integers ``k`` behind the first ``count`` ``random()`` draws of the held-out stream."""
    return [int(r) >> 11 for r in held_out_rng(SEED).bit_generator.random_raw(count)]


def correctly_rounded(x: mpmath.mpf) -> float:
    return float(mpmath.nstr(x, 50, strip_zeros=False))  # Python rounds the decimal string correctly


# --- shipped files -------------------------------------------------------------------------------
@pytest.mark.parametrize("dist", make_held_out.distributions(), ids=lambda d: d.held_out_key())
def test_every_shipped_file_is_its_recipe_within_tolerance(dist) -> None:
    path = make_held_out.HERE / f"{dist.held_out_key()}.json"
    shipped = [dist.task_type.from_dict(d) for d in json.loads(path.read_text())["tasks"]]
    assert dist.held_out() == shipped  # the file is what an env serves, bit for bit
    assert compare_tasks(shipped, dist.generate_held_out()) is None


def test_a_missing_shipped_file_is_an_error_not_a_silent_regeneration(monkeypatch) -> None:
    dist = Navigation2DDistribution()
    monkeypatch.setattr(dist, "held_out_package", "metarl.agents")  # a package without held_out/
    with pytest.raises(FileNotFoundError, match="Navigation2D-v0.json is missing"):
        dist.held_out()
    assert Navigation2DDistribution((-1.0, 0.5)).held_out()  # no key: generated, no file needed


@dataclass(frozen=True, eq=False)
class _MixedTask(Task):
    values: np.ndarray = array_field((-1,), doc="floats")
    count: int = scalar_field(integer=True, doc="an integer")
    side: float = scalar_field(choices=(-1.0, 1.0), doc="discrete")
    ids: np.ndarray = array_field((-1,), dtype=np.int64, doc="integers")


def test_compare_tasks_tolerates_ulps_only_in_float_fields() -> None:
    base = _MixedTask(values=[1.0, 3.0, 0.0], count=3, side=1.0, ids=[1, 2])
    assert compare_tasks([base], [base]) is None
    ulps = base.replace(values=[np.nextafter(1.0, 2.0), 3.0 * (1 - 2e-16), 0.0])
    assert compare_tasks([base], [ulps]) is None
    for changed, field in [
        (base.replace(values=[1.0 + 1e-10, 3.0, 0.0]), "values"),
        (base.replace(values=[1.0, 3.0, 1e-300]), "values"),  # no absolute tolerance
        (base.replace(count=4), "count"),
        (base.replace(side=-1.0), "side"),
        (base.replace(ids=[1, 3]), "ids"),
        (base.replace(values=[1.0, 3.0]), "values"),  # shapes exactly
    ]:
        assert field in compare_tasks([base], [changed])
    assert compare_tasks([base], [base, base]) == "1 tasks vs 2"
    assert "BanditTask" in compare_tasks([base], [BanditTask(probs=[0.5, 0.5])])
    assert HELD_OUT_RTOL == 1e-12


def test_make_held_out_keeps_a_matching_file_and_refuses_a_changed_one(tmp_path, monkeypatch) -> None:
    dist = BanditDistribution(5)
    data = json.loads((make_held_out.HERE / "Bandit-v0-k5.json").read_text())
    monkeypatch.setattr(make_held_out, "HERE", tmp_path)  # never write into the package
    path = tmp_path / "Bandit-v0-k5.json"

    data["tasks"][0]["probs"][0] = float(np.nextafter(data["tasks"][0]["probs"][0], 2.0))  # another CPU's ulp
    text = json.dumps(data) + "\n"
    path.write_text(text)
    make_held_out.write(dist)
    assert path.read_text() == text  # within tolerance: the shipped bits stay

    data["tasks"][0]["probs"][0] *= 1 + 1e-9
    path.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="differs from the recipe .*task 0 field probs"):
        make_held_out.write(dist)
    make_held_out.write(dist, force=True)
    assert compare_tasks(dist.held_out(), dist.generate_held_out(), rtol=0.0) is None


# --- configurations without a file: exact by construction ---------------------------------------
def test_bandit_held_out_without_file_are_the_raw_bits() -> None:
    dist = BanditDistribution(3)
    assert dist.held_out_key() is None
    probs = np.stack([t.probs for t in dist.held_out()])
    assert probs.tolist() == [[k * 2.0**-53 for k in raw_ints(120)[i:i + 3]] for i in range(0, 120, 3)]


def test_navigation_and_velocity_held_out_without_file_are_exact() -> None:
    nav = Navigation2DDistribution((-1.0, 1.0))
    assert nav.held_out_key() is None
    # -1 + 2 (k 2**-53) is exactly (k - 2**52) 2**-52: no rounding anywhere.
    want = [float(Fraction(k - 2**52, 2**52)) for k in raw_ints(80)]
    assert np.stack([t.goal for t in nav.held_out()]).ravel().tolist() == want
    vel = VelocityDistribution((0.0, 4.0), key="HalfCheetahVel-v0", default=(0.0, 2.0))
    assert vel.held_out_key() is None
    assert [t.velocity for t in vel.held_out()] == [4.0 * k * 2.0**-53 for k in raw_ints(40)]


def test_dynamics_held_out_without_file_are_correctly_rounded() -> None:
    fam = DynamicsTaskWrapper(gym.make("Hopper-v5"), mass_range=(0.5, 2.0), damping_range=(0.5, 2.0))
    assert fam.distribution.held_out_key() is None
    held = fam.held_out_tasks()
    nbody, nv = held[0].body_mass.size, held[0].dof_damping.size
    k = raw_ints(40 * (nbody + nv))
    mpmath.mp.prec = 200
    # exp(ln ½ + (ln 2 - ln ½) u) = 2^(2u - 1), correctly rounded.
    want = [correctly_rounded(mpmath.power(2, mpmath.mpf(2 * ki) / 2**53 - 1)) for ki in k]
    assert np.stack([t.body_mass for t in held]).ravel().tolist() == want[: 40 * nbody]
    assert np.stack([t.dof_damping for t in held]).ravel().tolist() == want[40 * nbody:]
    assert all(np.array_equal(t.body_inertia, np.repeat(t.body_mass[:, None], 3, axis=1)) for t in held)
    assert all((t.geom_friction == 1.0).all() and t.gravity == 1.0 for t in held)
    # A non-default rand_param_envs configuration has no file and uses the same exact recipe.
    dist = gym.make("metarl/HopperRandParams-v0", gravity_range=(0.5, 2.0)).unwrapped.distribution
    assert isinstance(dist, DynamicsDistribution) and dist.held_out_key() is None
    before = 40 * (4 * dist.nbody + dist.nv + 3 * dist.ngeom)  # mass, inertia, damping, friction draws
    gravity = [correctly_rounded(mpmath.power(2, mpmath.mpf(2 * ki) / 2**53 - 1)) for ki in raw_ints(before + 40)[before:]]
    assert [t.gravity for t in dist.held_out()] == gravity


def test_tabular_mdp_held_out_without_file_are_exact() -> None:
    S, A, n = 3, 2, 40
    dist = TabularMDPDistribution(S, A)
    assert dist.held_out_key() is None
    held = dist.held_out()
    m = n * S * A * (S - 1)
    k = raw_ints(m + 4 * n * S * A)  # enough pairs for the polar method's rejections
    # Dirichlet(1) rows: spacings of sorted uniforms, each a difference of multiples of 2**-53.
    for i in range(n * S * A):
        cuts = sorted(k[2 * i: 2 * i + 2])
        row = [Fraction(c, 2**53) for c in cuts]
        want = [float(b - a) for a, b in zip([Fraction(0), *row], [*row, Fraction(1)], strict=True)]
        assert held[i // (S * A)].transitions[(i // A) % S, i % A].tolist() == want
    # N(1, 1) means: the polar method on the following pairs, at 200 bits.
    mpmath.mp.prec = 200
    z: list[float] = []
    it = iter(k[m:])
    while len(z) < n * S * A:
        x, y = (mpmath.mpf(2 * next(it) - 2**53) / 2**53 for _ in range(2))
        s = x * x + y * y
        if 0 < s < 1:
            f = mpmath.sqrt(-2 * mpmath.log(s) / s)
            z += [correctly_rounded(x * f), correctly_rounded(y * f)]
    assert np.stack([t.mean_rewards for t in held]).ravel().tolist() == [1.0 + v for v in z[: n * S * A]]


def test_disc_goal_held_out_without_file_are_exact() -> None:
    dist = DiscGoalDistribution(goal_radius=2.0)
    assert dist.held_out_key() is None
    goals, it = [], iter(raw_ints(200))
    while len(goals) < 40:
        a, b = (2 * next(it) - 2**53 for _ in range(2))
        if a * a + b * b <= 2**106:  # inside the disc, decided in integers
            goals.append([float(Fraction(2 * a, 2**53)), float(Fraction(2 * b, 2**53))])
    assert [t.goal.tolist() for t in dist.held_out()] == goals
    assert all(dist.contains(t) for t in dist.held_out())


# --- the primitives ---------------------------------------------------------------------------------
def test_portable_primitives_match_hand_computed_values() -> None:
    mpmath.mp.prec = 200
    xs = np.array([-745.0, -1.5, 0.0, 1e-300, 0.5, 1.0, 2.0, 700.0])
    assert exp(xs).tolist() == [correctly_rounded(mpmath.exp(mpmath.mpf(float(x)))) for x in xs]
    rng = np.random.default_rng(1)
    assert log_uniform(rng, 1.5, 1.5, (3,)).tolist() == [1.5, 1.5, 1.5]
    assert uniform(np.random.default_rng(2), -0.5, 0.5, 4).tolist() == (
        -0.5 + np.random.default_rng(2).random(4)
    ).tolist()
    z = normal(np.random.default_rng(3), 0.0, 1.0, 20_000)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1.0) < 0.03  # ~3 standard errors
