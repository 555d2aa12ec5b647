"""Dynamics task families: body mass, inertia, damping, friction (and gravity) scaled per task.

``HalfCheetahRandParams-v0``, ``HopperRandParams-v0`` and ``Walker2DRandParams-v0`` follow
``rand_param_envs`` (Rothfuss et al., used by ProMP, PEARL and VariBAD): every entry of
``body_mass``, ``body_inertia`` and ``geom_friction`` is multiplied by ``1.5^U[-3, 3]`` and every
entry of ``dof_damping`` by ``1.3^U[-3, 3]``, drawn independently (``rand_param_envs/base.py``,
``log_scale_limit = 3``). Here a range is the interval of the multiplier, sampled log-uniformly,
so ``mass_range=(1.5**-3, 1.5**3)`` is exactly ``1.5^U[-3, 3]``. After a task writes the model,
``mj_setConst`` recomputes MuJoCo's derived constants (subtree masses, inverse weights, mean
inertia), so nothing of a previous task survives (``rand_param_envs`` set the arrays only).

:class:`DynamicsTaskWrapper` makes any Gymnasium MuJoCo env a dynamics task family from
user-given ranges, with the same task API and held-out tasks.

>>> import gymnasium as gym, metarl
>>> env = metarl.make("metarl/HopperRandParams-v0")
>>> task = env.unwrapped.sample_tasks(1, seed=0)[0]
>>> task.body_mass.shape, task.dof_damping.shape
((5,), (6,))
>>> family = DynamicsTaskWrapper(gym.make("InvertedPendulum-v5"), mass_range=(0.5, 2.0))
>>> obs, _ = family.reset(seed=0, options={"task": family.sample_tasks(1, seed=0)[0]})
>>> len(family.held_out_tasks())
40
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from metarl.errors import ConfigError, InvalidTaskError, TaskNotSetError
from metarl.meta_env import TaskDistribution, TaskSource, check_range
from metarl.portable import log_uniform
from metarl.tasks import Task, array_field, scalar_field

from ._core import (
    Frame,
    MujocoFamily,
    _model_base,
    env_classes,
    load_model,
)

__all__ = [
    "MujocoDynamicsTask", "DynamicsDistribution", "DynamicsTaskWrapper", "apply_dynamics",
    "HalfCheetahRandParamsEnv", "HalfCheetahRandParamsVecEnv", "HopperRandParamsEnv",
    "HopperRandParamsVecEnv", "Walker2DRandParamsEnv", "Walker2DRandParamsVecEnv",
]

#: rand_param_envs defaults: 1.5^U[-3,3] for mass, inertia, friction; 1.3^U[-3,3] for damping.
RAND_PARAMS_RANGES: dict[str, tuple[float, float]] = {
    "mass_range": (1.5**-3, 1.5**3),
    "inertia_range": (1.5**-3, 1.5**3),
    "damping_range": (1.3**-3, 1.3**3),
    "friction_range": (1.5**-3, 1.5**3),
    "gravity_range": (1.0, 1.0),
}


@dataclass(frozen=True, eq=False)
class MujocoDynamicsTask(Task):
    """Multipliers of a MuJoCo model's parameters (1 = unchanged); every entry must be positive."""

    body_mass: np.ndarray = array_field((-1,), doc="multiplier of each body's mass [nbody]")
    body_inertia: np.ndarray = array_field((-1, 3), doc="multiplier of each body's inertia [nbody, 3]")
    dof_damping: np.ndarray = array_field((-1,), doc="multiplier of each dof's damping [nv]")
    geom_friction: np.ndarray = array_field((-1, 3), doc="multiplier of each geom's friction [ngeom, 3]")
    gravity: float = scalar_field(doc="multiplier of the gravity vector")

    def _check(self) -> None:
        for name in ("body_mass", "body_inertia", "dof_damping", "geom_friction"):
            value = getattr(self, name)
            if (value <= 0).any():
                raise InvalidTaskError(name, value.tolist() if value.size <= 8 else f"array(shape={value.shape})", "multipliers must be positive")
        if self.gravity <= 0:
            raise InvalidTaskError("gravity", self.gravity, "multiplier must be positive")


def _scale_range(name: str, value: Sequence[float] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    low, high = check_range(name, value)
    if low <= 0:
        raise ConfigError(f"{name} is a range of multipliers and must be positive, got {value!r}")
    return low, high


class DynamicsDistribution(TaskDistribution[MujocoDynamicsTask]):
    """Independent log-uniform multipliers of each model parameter entry.

    Draws are exact by construction (:func:`metarl.portable.log_uniform`: ``Generator.random``
    bits, then ``exp``/``ln`` in :mod:`decimal`), so every configuration's tasks, the run-time
    held-out tasks of one without a shipped file included, are the same bits on every machine.
    The shipped files of the rand_param_envs families were drawn with ``np.exp``; they define
    those held-out tasks and match this recipe within :data:`metarl.portable.HELD_OUT_RTOL`.

    Args:
        model: the model whose sizes the tasks match.
        mass_range, damping_range, friction_range, gravity_range: ``(low, high)`` multiplier
            ranges, ``0 < low <= high``; ``(1, 1)`` leaves that parameter unchanged.
        inertia_range: likewise for ``body_inertia``; ``None`` scales each body's inertia with
            its mass (same density change), as a user-given mass range usually means.
        key: held-out file stem when this is a shipped configuration.
    """

    task_type = MujocoDynamicsTask

    def __init__(
        self,
        model: mujoco.MjModel,
        *,
        mass_range: Sequence[float] = (1.0, 1.0),
        inertia_range: Sequence[float] | None = None,
        damping_range: Sequence[float] = (1.0, 1.0),
        friction_range: Sequence[float] = (1.0, 1.0),
        gravity_range: Sequence[float] = (1.0, 1.0),
        key: str | None = None,
    ) -> None:
        self.nbody, self.nv, self.ngeom = int(model.nbody), int(model.nv), int(model.ngeom)
        self.ranges = {
            "mass_range": _scale_range("mass_range", mass_range),
            "inertia_range": _scale_range("inertia_range", inertia_range),
            "damping_range": _scale_range("damping_range", damping_range),
            "friction_range": _scale_range("friction_range", friction_range),
            "gravity_range": _scale_range("gravity_range", gravity_range),
        }
        self._key = key

    def _draw(self, rng: np.random.Generator, name: str, size: tuple[int, ...]) -> np.ndarray:
        # Log-uniform in software (decimal), not np.exp: numpy's SIMD exp differs by an ulp
        # between CPUs (AVX-512 vs AVX2), and held-out tasks without a shipped file (user
        # ranges, DynamicsTaskWrapper) must be the same bits on every machine.
        low, high = self.ranges[name]  # type: ignore[misc]
        return log_uniform(rng, low, high, size)

    def sample(self, rng: np.random.Generator, n: int) -> list[MujocoDynamicsTask]:
        mass = self._draw(rng, "mass_range", (n, self.nbody))
        if self.ranges["inertia_range"] is None:
            inertia = np.repeat(mass[:, :, None], 3, axis=2)
        else:
            inertia = self._draw(rng, "inertia_range", (n, self.nbody, 3))
        damping = self._draw(rng, "damping_range", (n, self.nv))
        friction = self._draw(rng, "friction_range", (n, self.ngeom, 3))
        gravity = self._draw(rng, "gravity_range", (n,))
        return [
            MujocoDynamicsTask(
                body_mass=mass[i], body_inertia=inertia[i], dof_damping=damping[i],
                geom_friction=friction[i], gravity=float(gravity[i]),
            )
            for i in range(n)
        ]

    def check(self, task: Any) -> MujocoDynamicsTask:
        task = super().check(task)
        want = {
            "body_mass": (self.nbody,), "body_inertia": (self.nbody, 3),
            "dof_damping": (self.nv,), "geom_friction": (self.ngeom, 3),
        }
        for name, shape in want.items():
            got = getattr(task, name).shape
            if got != shape:
                raise InvalidTaskError(name, f"array(shape={got})", f"this model needs shape {shape}")
        return task

    def contains(self, task: MujocoDynamicsTask) -> bool:
        def inside(values: np.ndarray | float, name: str) -> bool:
            rng = self.ranges[name]
            if rng is None:
                return True
            low, high = rng
            v = np.asarray(values)
            return bool(((v >= low * (1 - 1e-12)) & (v <= high * (1 + 1e-12))).all())

        return (
            inside(task.body_mass, "mass_range") and inside(task.body_inertia, "inertia_range")
            and inside(task.dof_damping, "damping_range") and inside(task.geom_friction, "friction_range")
            and inside(task.gravity, "gravity_range")
        )

    def held_out_key(self) -> str | None:
        return self._key


def apply_dynamics(model: mujoco.MjModel, base: dict[str, np.ndarray], task: MujocoDynamicsTask, data: mujoco.MjData) -> None:
    """Write ``task``'s multipliers of the ``base`` values into ``model``, then ``mj_setConst``.

    ``data`` is scratch space for ``mj_setConst`` (its state is overwritten).
    """
    model.body_mass[:] = base["body_mass"] * task.body_mass
    model.body_inertia[:] = base["body_inertia"] * task.body_inertia
    model.dof_damping[:] = base["dof_damping"] * task.dof_damping
    model.geom_friction[:] = base["geom_friction"] * task.geom_friction
    model.opt.gravity[:] = base["gravity"] * task.gravity
    mujoco.mj_setConst(model, data)


# --- rand_param_envs families ------------------------------------------------------------------
class _RandParams(MujocoFamily):
    varies_dynamics = True
    key: str

    def __init__(
        self,
        mass_range: Sequence[float] = RAND_PARAMS_RANGES["mass_range"],
        inertia_range: Sequence[float] = RAND_PARAMS_RANGES["inertia_range"],
        damping_range: Sequence[float] = RAND_PARAMS_RANGES["damping_range"],
        friction_range: Sequence[float] = RAND_PARAMS_RANGES["friction_range"],
        gravity_range: Sequence[float] = RAND_PARAMS_RANGES["gravity_range"],
    ) -> None:
        given = dict(
            mass_range=mass_range, inertia_range=inertia_range, damping_range=damping_range,
            friction_range=friction_range, gravity_range=gravity_range,
        )
        dist = DynamicsDistribution(load_model(self.model_file), **given)
        default = all(dist.ranges[k] == RAND_PARAMS_RANGES[k] for k in RAND_PARAMS_RANGES)
        dist._key = self.key if default else None
        self.distribution = dist
        self._scratch: mujoco.MjData | None = None

    def task_params(self, tasks):
        return {}

    def apply_task(self, model, base, task):
        if self._scratch is None:
            self._scratch = mujoco.MjData(model)
        apply_dynamics(model, base, task, self._scratch)


class HalfCheetahRandParams(_RandParams):
    """HalfCheetah with rand_param_envs dynamics; reward of ``HalfCheetah-v5``: ``vx - 0.1 ‖a‖²``, H = 200."""

    model_file = "half_cheetah.xml"
    key = "HalfCheetahRandParams-v0"
    frame_skip = 5
    reset_noise_scale = 0.1
    qvel_noise = "normal"

    def observe(self, frame: Frame) -> np.ndarray:
        return np.concatenate([frame.qpos[:, 1:], frame.qvel], axis=1)

    def reward(self, before, after, action, params, dt):
        vx = (after.qpos[:, 0] - before.qpos[:, 0]) / dt
        reward = vx - 0.1 * np.square(action).sum(axis=1)
        return reward, np.zeros(len(reward), dtype=bool)


class _Planar(_RandParams):
    # rand_param_envs hopper/walker2d (= Gymnasium v5): obs qpos[1:], clip(qvel, -10, 10);
    # reward vx + 1 (alive) - 1e-3 ‖a‖²; frame_skip 4 on a 0.002 s timestep; reset noise 5e-3.
    frame_skip = 4
    reset_noise_scale = 5e-3
    qvel_noise = "uniform"

    def observe(self, frame: Frame) -> np.ndarray:
        return np.concatenate([frame.qpos[:, 1:], np.clip(frame.qvel, -10.0, 10.0)], axis=1)

    def reward(self, before, after, action, params, dt):
        vx = (after.qpos[:, 0] - before.qpos[:, 0]) / dt
        reward = vx + 1.0 - 1e-3 * np.square(action).sum(axis=1)
        return reward, ~self._healthy(after)


class HopperRandParams(_Planar):
    """Hopper with rand_param_envs dynamics (``hopper_rand_params.py``); H = 200.

    Terminates unless ``|s[2:]| < 100`` for the state ``s = (qpos, qvel)``, height ``z > 0.7`` and
    torso angle ``|θ| < 0.2``.
    """

    model_file = "hopper.xml"
    key = "HopperRandParams-v0"

    @staticmethod
    def _healthy(after: Frame) -> np.ndarray:
        state = np.concatenate([after.qpos, after.qvel], axis=1)
        z, angle = after.qpos[:, 1], after.qpos[:, 2]
        return (np.abs(state[:, 2:]) < 100.0).all(axis=1) & (z > 0.7) & (np.abs(angle) < 0.2)


class Walker2DRandParams(_Planar):
    """Walker2d with rand_param_envs dynamics (``walker2d_rand_params.py``); H = 200.

    Terminates unless height ``0.8 < z < 2`` and torso angle ``-1 < θ < 1``. Model: Gymnasium's
    ``walker2d_v5.xml`` (both feet with the same friction).
    """

    model_file = "walker2d_v5.xml"
    key = "Walker2DRandParams-v0"

    @staticmethod
    def _healthy(after: Frame) -> np.ndarray:
        z, angle = after.qpos[:, 1], after.qpos[:, 2]
        return (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)


HalfCheetahRandParamsEnv, HalfCheetahRandParamsVecEnv = env_classes(HalfCheetahRandParams, "HalfCheetahRandParams", __name__)
HopperRandParamsEnv, HopperRandParamsVecEnv = env_classes(HopperRandParams, "HopperRandParams", __name__)
Walker2DRandParamsEnv, Walker2DRandParamsVecEnv = env_classes(Walker2DRandParams, "Walker2DRandParams", __name__)


# --- wrapper: any Gymnasium MuJoCo env -> dynamics task family ---------------------------------
class DynamicsTaskWrapper(TaskSource, gym.Wrapper):
    """Turn a Gymnasium MuJoCo env into a dynamics task family (mass, damping, friction, gravity).

    The wrapper offers the meta-env task API itself (``sample_tasks``, ``set_task``,
    ``get_task``, ``held_out_tasks``, ``reset(options={"task": ...})``); tasks are
    :class:`MujocoDynamicsTask` multipliers of the wrapped model's values at wrap time. Held-out
    tasks: 40, drawn by the fixed held-out recipe of this configuration. Until a task is set the
    env runs its unmodified model.

    Args:
        env: a Gymnasium env whose ``unwrapped`` has ``model`` (``MjModel``) and ``data``.
        mass_range, inertia_range, damping_range, friction_range, gravity_range: see
            :class:`DynamicsDistribution` (``inertia_range=None`` follows the mass).
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        mass_range: Sequence[float] = (1.0, 1.0),
        inertia_range: Sequence[float] | None = None,
        damping_range: Sequence[float] = (1.0, 1.0),
        friction_range: Sequence[float] = (1.0, 1.0),
        gravity_range: Sequence[float] = (1.0, 1.0),
    ) -> None:
        model = getattr(env.unwrapped, "model", None)
        if not isinstance(model, mujoco.MjModel) or not isinstance(getattr(env.unwrapped, "data", None), mujoco.MjData):
            raise ConfigError(f"DynamicsTaskWrapper needs a Gymnasium MuJoCo env (with .model and .data), got {env!r}")
        super().__init__(env)
        self.distribution = DynamicsDistribution(
            model, mass_range=mass_range, inertia_range=inertia_range, damping_range=damping_range,
            friction_range=friction_range, gravity_range=gravity_range,
        )
        self._model = model
        self._base = _model_base(model)
        self._scratch = mujoco.MjData(model)
        self._task: MujocoDynamicsTask | None = None

    def set_task(self, task: MujocoDynamicsTask | dict | str) -> None:
        """Rewrite the wrapped model for ``task`` now; reset before stepping."""
        task = self.distribution.check(task)
        apply_dynamics(self._model, self._base, task, self._scratch)
        self._task = task

    def get_task(self) -> MujocoDynamicsTask:
        if self._task is None:
            raise TaskNotSetError("no task set: call set_task(task) or reset(options={'task': task})")
        return self._task

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        if "task" in options:
            self.set_task(options.pop("task"))
        if seed is not None:
            self.seed_tasks(seed)
        return self.env.reset(seed=seed, options=options or None)
