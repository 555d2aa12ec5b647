"""MuJoCo meta-envs: one family description, two physics back ends.

A :class:`MujocoFamily` describes a task family once: its model, frame skip, reset noise, task
distribution, and its observation and reward as *vectorized* functions of the state arrays
(``qpos [N, nq]``, ``qvel [N, nv]``). Two envs run it:

- :class:`MujocoVecEnv` — the native batched env. All ``N`` sub-envs step in one
  ``mujoco.rollout.Rollout`` call per env step (C++, a persistent thread pool with one thread
  per usable core); one shared ``MjModel`` when only goals vary, one ``MjModel`` per sub-env when
  dynamics vary. The step path has no per-env Python work.
- :class:`MujocoEnv` — a plain single ``gymnasium.Env`` that steps with ``mujoco.mj_step``.

**Solver warm start.** ``rollout`` cannot hand MuJoCo's solver warm start (``qacc_warmstart``)
back to Python, so each call starts it from zero (``rollout.cc``: ``mju_zero(d->qacc_warmstart)``
when no ``initial_warmstart`` is given). Both envs therefore zero the warm start at the start of
every env step (it still carries across the ``frame_skip`` substeps inside a step); with that
rule the batched env equals ``N`` single envs *bitwise* (tested with ``np.array_equal``). It is
the one deviation from Gymnasium's ``MujocoEnv``, which carries the warm start across env steps:
the two agree to solver tolerance (HalfCheetah and Ant, Newton solver: ~1e-13 over 40 steps,
tested < 1e-8 over 20; the humanoid's PGS solver stops after 50 iterations: ~1e-7, tested
< 1e-5), after which chaotic contact dynamics let trajectories separate, as any floating-point
change would.

**Quantities that need kinematics** (the humanoid's centre of mass) come from MuJoCo sensors:
the batched env runs one extra substep per call whose ``sensordata`` (computed by ``mj_forward``
at the post-step state, before that substep integrates) gives them; the extra substep's state is
discarded. The single env calls ``mj_forward`` instead. Both evaluate the same MuJoCo function.

**Actions** are validated by :func:`metarl.meta_env.check_action` (finite real numbers of the
action space's shape; complex, object, string and bool arrays are errors) and then **clipped to
the action box** (the actuators' ``ctrlrange``), as Navigation2D clips its velocity commands. The
physics is unchanged by this (MuJoCo clamps ``ctrl`` to ``ctrlrange`` itself), and the control
cost is paid on the clipped action: Gymnasium's MuJoCo envs pay it on the raw action, so a huge
finite action there yields a huge (or ``-inf``) negative reward while moving no differently. For
actions inside the box (what a policy with a squashed or clipped output sends) nothing changes.

**Contact forces** (``cfrc_ext``) are not in the rollout state, so no family observes or pays for
them. Under MuJoCo >= 2.0 ``mujoco-py`` left ``cfrc_ext`` at zero (openai/gym#1541), so the
reference runs of ProMP/PEARL on MuJoCo 2 had no contact term either.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from mujoco import rollout as mj_rollout

from metarl.errors import ConfigError, TaskNotSetError
from metarl.meta_env import (
    BatchedMetaEnv,
    TaskDistribution,
    TaskSource,
    accepted_kwargs,
    check_action,
    check_count,
    check_kwargs,
    check_seed,
    reset_options,
)
from metarl.tasks import Task

__all__ = [
    "Frame", "MujocoFamily", "MujocoVecEnv", "MujocoEnv", "load_model", "default_nthread",
    "silence_settotalmass_notice",
]


def load_model(file_name: str, extra_xml: str = "") -> mujoco.MjModel:
    """Compile a model shipped in ``metarl/envs/mujoco/assets`` (plus ``extra_xml`` before ``</mujoco>``)."""
    path = resources.files("metarl.envs.mujoco").joinpath("assets", file_name)
    if not path.is_file():
        raise ConfigError(f"no MuJoCo model {file_name!r} in metarl.envs.mujoco/assets")
    text = path.read_text()
    if extra_xml:
        cut = text.rindex("</mujoco>")
        text = text[:cut] + extra_xml + "\n" + text[cut:]
    with silence_settotalmass_notice(file_name):
        return mujoco.MjModel.from_xml_string(text)


@contextmanager
def silence_settotalmass_notice(what: str = "a model") -> Iterator[None]:
    """Drop MuJoCo 4's deprecation notice for ``<compiler settotalmass>`` while compiling.

    Gymnasium's ``half_cheetah.xml`` uses the attribute; MuJoCo 4 would print the notice and
    append it to ``MUJOCO_LOG.TXT`` in the working directory on every load. The model is kept as
    shipped (the compiler's result is Gymnasium's HalfCheetah). Any other MuJoCo warning is
    re-raised as a Python ``RuntimeWarning``. Wrap ``gym.make("HalfCheetah-v5")`` in it too.
    """
    notices: list[str] = []
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(notices.append)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)
        for notice in notices:
            if "settotalmass" not in notice:
                warnings.warn(f"MuJoCo compiling {what}: {notice}", RuntimeWarning, stacklevel=3)


def default_nthread() -> int:
    """Threads of the rollout pool: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Frame(NamedTuple):
    """State arrays of ``N`` sub-envs at one instant (axis 0 is the sub-env).

    Attributes:
        qpos: ``[N, nq]`` joint positions.
        qvel: ``[N, nv]`` joint velocities.
        sensors: ``[N, nsensordata]`` the family's sensors at this state (``[N, 0]`` if none).
    """

    qpos: np.ndarray
    qvel: np.ndarray
    sensors: np.ndarray


class MujocoFamily:
    """A MuJoCo task family: model, task distribution, vectorized observation and reward.

    Subclasses set the class attributes and implement :meth:`observe`, :meth:`reward` and
    :meth:`task_params`; dynamics families set ``varies_dynamics = True`` and implement
    :meth:`apply_task`. Constructor kwargs are the family's task-range kwargs.
    """

    model_file: ClassVar[str]
    frame_skip: ClassVar[int]
    reset_noise_scale: ClassVar[float]
    #: How reset perturbs velocities (Gymnasium v5): "normal" (HalfCheetah, Ant) or "uniform".
    qvel_noise: ClassVar[str] = "uniform"
    #: Extra ``<sensor>`` XML for quantities that need kinematics (see the module docstring).
    sensor_xml: ClassVar[str] = ""
    varies_dynamics: ClassVar[bool] = False
    default_max_episode_steps: ClassVar[int] = 200

    distribution: TaskDistribution

    def build_model(self) -> mujoco.MjModel:
        return load_model(self.model_file, self.sensor_xml)

    def observation_size(self, model: mujoco.MjModel) -> int:
        frame = Frame(np.zeros((1, model.nq)), np.zeros((1, model.nv)), np.zeros((1, model.nsensordata)))
        return int(self.observe(frame).shape[1])

    def observe(self, frame: Frame) -> np.ndarray:
        """Observations ``[N, obs_dim]`` (float64) of the sub-envs in ``frame``."""
        raise NotImplementedError

    def reward(
        self, before: Frame, after: Frame, action: np.ndarray, params: dict[str, np.ndarray], dt: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(reward [N], terminated [N])`` of the transition ``before -> after`` under ``action [N, nu]``."""
        raise NotImplementedError

    def task_params(self, tasks: Sequence[Task]) -> dict[str, np.ndarray]:
        """Per-env task arrays ``{name: [n, ...]}`` that :meth:`reward` reads."""
        raise NotImplementedError

    def apply_task(self, model: mujoco.MjModel, base: dict[str, np.ndarray], task: Task) -> None:
        """Write ``task``'s dynamics into ``model`` from the unmodified values ``base``, derived constants included."""
        raise NotImplementedError


def _model_base(model: mujoco.MjModel) -> dict[str, np.ndarray]:
    """The model parameters a dynamics task scales, copied before any task touches them."""
    return {
        "body_mass": model.body_mass.copy(),
        "body_inertia": model.body_inertia.copy(),
        "dof_damping": model.dof_damping.copy(),
        "geom_friction": model.geom_friction.copy(),
        "gravity": model.opt.gravity.copy(),
    }


def _state_layout(model: mujoco.MjModel) -> tuple[int, int, int]:
    """``(nstate, qpos offset, qvel offset)`` of an ``mjSTATE_FULLPHYSICS`` vector.

    State components are laid out in the order of their ``mjtState`` bits (time, qpos, qvel, ...);
    the bit values differ between MuJoCo 3.3 and 4.x, so offsets are computed, not hard-coded.
    """
    s = mujoco.mjtState
    nstate = mujoco.mj_stateSize(model, s.mjSTATE_FULLPHYSICS.value)
    qpos_at = mujoco.mj_stateSize(model, s.mjSTATE_TIME.value)
    qvel_at = mujoco.mj_stateSize(model, s.mjSTATE_TIME.value | s.mjSTATE_QPOS.value)
    return nstate, qpos_at, qvel_at


def _reset_qpos_qvel(
    family: MujocoFamily, model: mujoco.MjModel, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    # Gymnasium v5 reset_model: qpos0 + U[-s, s]; qvel 0 + s*N(0,1) (HalfCheetah, Ant) or U[-s, s].
    s = family.reset_noise_scale
    qpos = model.qpos0 + rng.uniform(-s, s, size=model.nq)
    if family.qvel_noise == "normal":
        qvel = s * rng.standard_normal(model.nv)
    else:
        qvel = rng.uniform(-s, s, size=model.nv)
    return qpos, qvel


def _check_nthread(nthread: Any) -> int:
    if nthread is None:
        return default_nthread()
    if isinstance(nthread, bool) or not isinstance(nthread, (int, np.integer)) or nthread < 0:
        raise ConfigError(f"nthread must be a non-negative int or None, got {nthread!r}")
    return int(nthread)


class MujocoVecEnv(BatchedMetaEnv):
    """Native batched MuJoCo meta-env: ``N`` sub-envs stepped by one ``mujoco.rollout`` call per step.

    Subclasses set :attr:`family_cls`. Observations are float64 (as Gymnasium's MuJoCo envs);
    actions are clipped to the action box (the actuators' ``ctrlrange``) before stepping, and the
    control cost is paid on the clipped action (see the module docstring). Reset noise of sub-env ``i`` is drawn from its own generator,
    seeded ``seed + i``, exactly as a single env seeded ``seed + i`` draws it.

    Args:
        num_envs: number of sub-envs ``N``.
        max_episode_steps: time limit (default: the family's, 200).
        nthread: rollout threads (default: the usable cores; 0 steps on the calling thread).
        autoreset_mode, require_task: see :class:`~metarl.meta_env.BatchedMetaEnv`.
        **family_kwargs: the family's task-range kwargs.
    """

    family_cls: ClassVar[type[MujocoFamily]]
    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        *,
        max_episode_steps: int | None = None,
        nthread: int | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        require_task: bool = False,
        **family_kwargs: Any,
    ) -> None:
        n = check_count(num_envs, "num_envs")
        check_kwargs(type(self).__name__, family_kwargs, [*_VEC_KWARGS, *accepted_kwargs(self.family_cls)])
        self.family = self.family_cls(**family_kwargs)
        self.nthread = _check_nthread(nthread)
        self.model = self.family.build_model()
        self.dt = float(self.model.opt.timestep * self.family.frame_skip)
        self._base = _model_base(self.model)
        # One shared model when only goals vary; a private copy per sub-env when dynamics vary.
        self._models = [copy.deepcopy(self.model) for _ in range(n)] if self.family.varies_dynamics else [self.model] * n
        self._datas = [mujoco.MjData(self.model) for _ in range(max(1, self.nthread))]
        self._pool = mj_rollout.Rollout(nthread=self.nthread)
        # Four jobs per thread per call: fewer dispatches than rollout's default (ten per thread)
        # cost ~10% less CPU at N = 64 (measured, benchmarks/RESULTS.md) and still balance
        # sub-envs of uneven cost.
        self._chunk = max(1, -(-n // (4 * max(1, self.nthread))))
        nstate, self._qpos_at, self._qvel_at = _state_layout(self.model)
        nq, nv, nu, ns = self.model.nq, self.model.nv, self.model.nu, self.model.nsensordata
        # Families with sensors run one extra substep per call to read them at the post-step state.
        self._nstep = self.family.frame_skip + (1 if ns else 0)
        reset_data = mujoco.MjData(self.model)
        state0 = np.empty(nstate)
        mujoco.mj_getState(self.model, reset_data, state0, mujoco.mjtState.mjSTATE_FULLPHYSICS.value)
        self._state0 = state0
        self._state = np.tile(state0, (n, 1))
        self._out = np.empty((n, self._nstep, nstate))
        self._ctrl = np.zeros((n, self._nstep, nu))
        self._sens_out = np.empty((n, self._nstep, ns)) if ns else None
        self._sensors = np.zeros((n, ns))
        self._nq, self._nv = nq, nv
        self._params: dict[str, np.ndarray] = {}
        self._env_rngs: list[np.random.Generator] | None = None
        low, high = self.model.actuator_ctrlrange.T.astype(np.float32)
        super().__init__(
            n,
            self.family.distribution,
            max_episode_steps=self.family.default_max_episode_steps if max_episode_steps is None else max_episode_steps,
            single_observation_space=spaces.Box(-np.inf, np.inf, (self.family.observation_size(self.model),), np.float64),
            single_action_space=spaces.Box(low, high, (nu,), np.float32),
            autoreset_mode=autoreset_mode,
            require_task=require_task,
        )

    # --- tasks -------------------------------------------------------------------------------
    def _apply_tasks(self, idx: np.ndarray, tasks: Sequence[Task]) -> None:
        params = self.family.task_params(tasks)
        for name, value in params.items():
            if name not in self._params:
                self._params[name] = np.zeros((self.num_envs, *value.shape[1:]), dtype=value.dtype)
            self._params[name][idx] = value
        if self.family.varies_dynamics:
            for i, task in zip(idx.tolist(), tasks, strict=True):
                self.family.apply_task(self._models[i], self._base, task)

    # --- state -------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset sub-envs; an int ``seed`` gives sub-env ``i`` the seed ``seed + i`` (its reset noise)."""
        if seed is not None:
            self._env_rngs = [np.random.default_rng(s) for s in self._expand_seeds(seed)]
        elif self._env_rngs is None:
            self._env_rngs = [np.random.default_rng() for _ in range(self.num_envs)]
        return super().reset(seed=seed, options=options)

    def _reset_state(self, mask: np.ndarray) -> None:
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return
        assert self._env_rngs is not None
        for i in rows.tolist():  # reset time only: per-env generators, as N single envs
            qpos, qvel = _reset_qpos_qvel(self.family, self._models[i], self._env_rngs[i])
            self._state[i] = self._state0
            self._state[i, self._qpos_at : self._qpos_at + self._nq] = qpos
            self._state[i, self._qvel_at : self._qvel_at + self._nv] = qvel
        if self._sens_out is not None:
            # Sensors at the reset state: the sensordata of a first substep is computed before it integrates.
            k = rows.size
            sens = np.empty((k, 1, self.model.nsensordata))
            self._pool.rollout(
                [self._models[i] for i in rows.tolist()], self._datas, np.ascontiguousarray(self._state[rows]),
                np.zeros((k, 1, self.model.nu)), nstep=1, state=np.empty((k, 1, self._state.shape[1])),
                sensordata=sens, skip_checks=True,
            )
            self._sensors[rows] = sens[:, 0]

    def _frame(self, state: np.ndarray, sensors: np.ndarray) -> Frame:
        return Frame(
            state[:, self._qpos_at : self._qpos_at + self._nq],
            state[:, self._qvel_at : self._qvel_at + self._nv],
            sensors,
        )

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        actions = np.clip(actions, self.single_action_space.low, self.single_action_space.high)
        self._ctrl[:] = actions[:, None, :]
        # One C++ call steps all N sub-envs frame_skip substeps across the thread pool.
        self._pool.rollout(
            self._models, self._datas, self._state, self._ctrl, control_spec=mujoco.mjtState.mjSTATE_CTRL.value,
            nstep=self._nstep, state=self._out, sensordata=self._sens_out, skip_checks=True,
            chunk_size=self._chunk,
        )
        after_state = self._out[:, self.family.frame_skip - 1]
        after_sensors = self._sens_out[:, self.family.frame_skip] if self._sens_out is not None else self._sensors
        before = self._frame(self._state, self._sensors)
        after = self._frame(after_state, after_sensors)
        reward, terminated = self.family.reward(before, after, actions, self._params, self.dt)
        self._state[:] = after_state
        if self._sens_out is not None:
            self._sensors[:] = after_sensors
        return reward, terminated

    def _observe(self) -> np.ndarray:
        return self.family.observe(self._frame(self._state, self._sensors))

    # --- introspection -----------------------------------------------------------------------
    def get_qpos_qvel(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the current ``qpos [N, nq]`` and ``qvel [N, nv]``."""
        frame = self._frame(self._state, self._sensors)
        return frame.qpos.copy(), frame.qvel.copy()

    def sub_env_model(self, i: int) -> mujoco.MjModel:
        """The ``MjModel`` sub-env ``i`` steps with (shared by all sub-envs unless dynamics vary)."""
        return self._models[i]

    def close(self, **kwargs: Any) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()
            self._pool = None
        super().close(**kwargs)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the pool may already be gone
            pass


class MujocoEnv(TaskSource, gym.Env):
    """A single MuJoCo meta-env stepped with plain ``mujoco.mj_step`` (``frame_skip`` per step).

    Shares the family's observation, reward and task code with :class:`MujocoVecEnv`; the
    physics is MuJoCo's own stepping loop. Starts with the family's default task (the first
    held-out task) unless ``require_task=True``. Time limit handled inside (``truncated``).
    """

    family_cls: ClassVar[type[MujocoFamily]]
    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        max_episode_steps: int | None = None,
        require_task: bool = False,
        **family_kwargs: Any,
    ) -> None:
        if render_mode is not None:
            raise ConfigError(f"render_mode {render_mode!r} is not supported by {type(self).__name__}")
        check_kwargs(type(self).__name__, family_kwargs, [*_SINGLE_KWARGS, *accepted_kwargs(self.family_cls)])
        self.family = self.family_cls(**family_kwargs)
        self.distribution = self.family.distribution
        steps = self.family.default_max_episode_steps if max_episode_steps is None else max_episode_steps
        self.max_episode_steps = check_count(steps, "max_episode_steps")
        self.model = self.family.build_model()
        self.data = mujoco.MjData(self.model)
        self.dt = float(self.model.opt.timestep * self.family.frame_skip)
        self._base = _model_base(self.model)
        low, high = self.model.actuator_ctrlrange.T.astype(np.float32)
        self.action_space = spaces.Box(low, high, (self.model.nu,), np.float32)
        self.observation_space = spaces.Box(
            -np.inf, np.inf, (self.family.observation_size(self.model),), np.float64
        )
        self._task: Task | None = None
        self._params: dict[str, np.ndarray] = {}
        self._elapsed = 0
        self._has_reset = False
        if not require_task:
            self.set_task(self.distribution.default_task())

    # --- tasks -------------------------------------------------------------------------------
    def set_task(self, task: Task | dict | str) -> None:
        """Set the task (dynamics tasks rewrite the model at once; reset before stepping)."""
        task = self.distribution.check(task)
        self._params = self.family.task_params([task])
        if self.family.varies_dynamics:
            self.family.apply_task(self.model, self._base, task)
        self._task = task

    def get_task(self) -> Task:
        if self._task is None:
            raise TaskNotSetError(
                "no task set (require_task=True): call env.unwrapped.set_task(task) or "
                "env.reset(options={'task': task}) first; env.unwrapped.sample_tasks(n) draws tasks"
            )
        return self._task

    # --- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            check_seed(seed)
        super().reset(seed=seed)
        options = reset_options(options, ("task",))
        if seed is not None:
            self.seed_tasks(seed)
        if "task" in options:
            self.set_task(options["task"])
        self.get_task()
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:], self.data.qvel[:] = _reset_qpos_qvel(self.family, self.model, self.np_random)
        mujoco.mj_forward(self.model, self.data)
        self._elapsed = 0
        self._has_reset = True
        return self._observe(), {}

    def _frame(self) -> Frame:
        d = self.data
        return Frame(d.qpos[None].copy(), d.qvel[None].copy(), d.sensordata[None].copy())

    def _observe(self) -> np.ndarray:
        return self.family.observe(self._frame())[0]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._has_reset:
            raise TaskNotSetError("call reset() before step()")
        a = np.clip(check_action(self.action_space, action), self.action_space.low, self.action_space.high)
        before = self._frame()
        self.data.ctrl[:] = a
        # Warm start restarts at every env step, as in one rollout call (see the module docstring).
        self.data.qacc_warmstart[:] = 0.0
        for _ in range(self.family.frame_skip):
            mujoco.mj_step(self.model, self.data)
        if self.model.nsensordata:
            mujoco.mj_forward(self.model, self.data)
        after = self._frame()
        reward, terminated = self.family.reward(before, after, a[None], self._params, self.dt)
        self._elapsed += 1
        term = bool(terminated[0])
        truncated = self._elapsed >= self.max_episode_steps and not term
        return self._observe(), float(reward[0]), term, truncated, {}


#: Keyword arguments of the env classes themselves (the rest go to the family).
_VEC_KWARGS = ("max_episode_steps", "nthread", "autoreset_mode", "require_task")
_SINGLE_KWARGS = ("render_mode", "max_episode_steps", "require_task")


def env_classes(family: type[MujocoFamily], name: str, module: str) -> tuple[type[MujocoEnv], type[MujocoVecEnv]]:
    """The single env ``<name>Env`` and batched env ``<name>VecEnv`` of ``family``, defined in ``module``."""
    attrs = {"family_cls": family, "__doc__": family.__doc__, "__module__": module}
    single = type(f"{name}Env", (MujocoEnv,), attrs)
    vec = type(f"{name}VecEnv", (MujocoVecEnv,), dict(attrs))
    return single, vec  # type: ignore[return-value]
