"""Goal, velocity and direction locomotion families (MAML, ProMP, PEARL) on current MuJoCo.

Each family below cites the paper and reference code its task distribution and reward come from.
Rewards are computed vectorized from ``qpos``/``qvel`` (and, for the humanoid, a centre-of-mass
sensor); forward velocity is the finite difference of the torso position over the env step
``dt = frame_skip * timestep``, as in ProMP's ``meta_policy_search/envs/mujoco_envs`` and
Gymnasium v5 (MAML's rllab envs read ``get_body_comvel``, the torso's instantaneous COM
velocity, instead). Positions are read from the post-step state; the mujoco-py references and
Gymnasium's Ant/Humanoid read ``xpos``/``xipos`` right after ``mj_step``, which MuJoCo computed
before the last substep integrated, so their displacement lags one substep (a time shift of the
same ``dt``-long window, not copied here). No family pays a contact-force cost (see
:mod:`metarl.envs.mujoco._core`).

>>> import metarl
>>> env = metarl.make("metarl/HalfCheetahVel-v0")
>>> task = env.unwrapped.sample_tasks(1, seed=0)[0]
>>> obs, _ = env.reset(seed=0, options={"task": task})
>>> obs.shape, env.action_space.shape
((17,), (6,))
>>> venv = metarl.make_vec("metarl/HalfCheetahVel-v0", num_envs=4, nthread=0)
>>> obs, _ = venv.reset(seed=0, options={"tasks": venv.sample_tasks(4, seed=1)})
>>> obs.shape
(4, 17)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metarl.errors import ConfigError
from metarl.meta_env import TaskDistribution, check_range, held_out_rng
from metarl.portable import uniform
from metarl.tasks import Task, array_field, scalar_field

from ._core import Frame, MujocoFamily, env_classes

__all__ = [
    "VelocityTask", "DirectionTask", "GoalPositionTask", "HeadingTask",
    "VelocityDistribution", "DirectionDistribution", "DiscGoalDistribution", "HeadingDistribution",
    "HalfCheetahVelEnv", "HalfCheetahVelVecEnv", "HalfCheetahDirEnv", "HalfCheetahDirVecEnv",
    "AntVelEnv", "AntVelVecEnv", "AntDirEnv", "AntDirVecEnv", "AntGoalEnv", "AntGoalVecEnv",
    "HumanoidDirEnv", "HumanoidDirVecEnv",
]


# --- tasks -------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class VelocityTask(Task):
    """A target forward velocity ``v*`` (m/s)."""

    velocity: float = scalar_field(doc="target forward velocity (m/s)")


@dataclass(frozen=True, eq=False)
class DirectionTask(Task):
    """Run forward (``+1``) or backward (``-1``) along x."""

    direction: float = scalar_field(choices=(-1.0, 1.0), doc="+1 forward, -1 backward")


@dataclass(frozen=True, eq=False)
class GoalPositionTask(Task):
    """A 2-D goal position (m) in the ground plane."""

    goal: np.ndarray = array_field((2,), doc="goal (x, y)")


@dataclass(frozen=True, eq=False)
class HeadingTask(Task):
    """A running direction in the ground plane, an angle from the x axis (rad)."""

    angle: float = scalar_field(low=0.0, high=2 * math.pi, doc="direction angle in [0, 2π]")


# --- distributions -----------------------------------------------------------------------------
class VelocityDistribution(TaskDistribution[VelocityTask]):
    """Target velocities ``U[low, high]``."""

    task_type = VelocityTask

    def __init__(self, velocity_range: Sequence[float], key: str, default: tuple[float, float]) -> None:
        self.low, self.high = check_range("velocity_range", velocity_range)
        self._key = key if (self.low, self.high) == default else None

    def sample(self, rng: np.random.Generator, n: int) -> list[VelocityTask]:
        return [VelocityTask(velocity=v) for v in uniform(rng, self.low, self.high, n)]  # exact everywhere

    def contains(self, task: VelocityTask) -> bool:
        return self.low <= task.velocity <= self.high

    def held_out_key(self) -> str | None:
        return self._key


class DirectionDistribution(TaskDistribution[DirectionTask]):
    """Directions ``±1`` with equal probability; the held-out tasks are both directions."""

    task_type = DirectionTask
    num_held_out = 2

    def __init__(self, key: str) -> None:
        self._key = key

    def sample(self, rng: np.random.Generator, n: int) -> list[DirectionTask]:
        return [DirectionTask(direction=d) for d in rng.choice(np.array([-1.0, 1.0]), size=n)]

    def contains(self, task: DirectionTask) -> bool:
        return task.direction in (-1.0, 1.0)

    def generate_held_out(self) -> list[DirectionTask]:
        return [DirectionTask(direction=1.0), DirectionTask(direction=-1.0)]

    def held_out_key(self) -> str | None:
        return self._key


class DiscGoalDistribution(TaskDistribution[GoalPositionTask]):
    """Goals uniform in a disc of radius ``goal_radius`` (ProMP ``ant_rand_goal``: ``r = R√U``, ``θ = 2πU``)."""

    task_type = GoalPositionTask

    def __init__(self, goal_radius: float = 3.0) -> None:
        if isinstance(goal_radius, bool) or not isinstance(goal_radius, (int, float, np.number)) or not (
            math.isfinite(goal_radius) and goal_radius > 0
        ):
            raise ConfigError(f"goal_radius must be a positive finite number, got {goal_radius!r}")
        self.radius = float(goal_radius)

    def sample(self, rng: np.random.Generator, n: int) -> list[GoalPositionTask]:
        angle = rng.uniform(0.0, 2 * math.pi, size=n)
        radius = self.radius * np.sqrt(rng.uniform(0.0, 1.0, size=n))
        goals = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        return [GoalPositionTask(goal=g) for g in goals]

    def contains(self, task: GoalPositionTask) -> bool:
        return bool(np.hypot(*task.goal) <= self.radius)

    def held_out_key(self) -> str | None:
        return "AntGoal-v0" if self.radius == 3.0 else None

    def generate_held_out(self) -> list[GoalPositionTask]:
        """The shipped radius: :meth:`sample`'s recipe (its file defines the tasks). Any other
        radius: exact on every machine (``cos``/``sin`` are not), by rejection from the square:
        ``a, b = 2k - 2**53`` from ``k = 2**53 u``, kept when ``a² + b² <= 2**106`` (integers),
        goal ``= radius * (a, b) * 2**-53`` (one rounding)."""
        if self.held_out_key() is not None:
            return super().generate_held_out()
        rng = held_out_rng(self.held_out_seed)
        goals: list[GoalPositionTask] = []
        while len(goals) < self.num_held_out:
            a, b = (2 * int(v * 2**53) - 2**53 for v in rng.random(2))
            if a * a + b * b <= 2**106:
                goals.append(GoalPositionTask(goal=[self.radius * (a * 2.0**-53), self.radius * (b * 2.0**-53)]))
        return goals


class HeadingDistribution(TaskDistribution[HeadingTask]):
    """Direction angles ``U[0, 2π)`` (PEARL ``humanoid_dir.py``)."""

    task_type = HeadingTask

    def sample(self, rng: np.random.Generator, n: int) -> list[HeadingTask]:
        return [HeadingTask(angle=a) for a in uniform(rng, 0.0, 2 * math.pi, n)]

    def contains(self, task: HeadingTask) -> bool:
        return 0.0 <= task.angle <= 2 * math.pi

    def held_out_key(self) -> str | None:
        return "HumanoidDir-v0"


def _sq(action: np.ndarray) -> np.ndarray:
    return np.square(action).sum(axis=1)


# --- HalfCheetah -------------------------------------------------------------------------------
class _HalfCheetah(MujocoFamily):
    # Gymnasium HalfCheetah-v5: timestep 0.01, frame_skip 5 (dt 0.05), reset noise 0.1.
    model_file = "half_cheetah.xml"
    frame_skip = 5
    reset_noise_scale = 0.1
    qvel_noise = "normal"

    def observe(self, frame: Frame) -> np.ndarray:
        # qpos without the root x (Gymnasium v5 / rllab), then qvel: 17 dims.
        return np.concatenate([frame.qpos[:, 1:], frame.qvel], axis=1)


class HalfCheetahVel(_HalfCheetah):
    """MAML (Finn et al. 2017, §5.3) ``rllab/envs/mujoco/half_cheetah_env_rand.py``.

    ``v* ~ U[velocity_range]`` (MAML/garage: ``(0, 2)``; ProMP/PEARL use ``(0, 3)``);
    reward ``-|vx - v*| - 0.05 ‖a‖²``, no termination, H = 200. Target velocities outside
    ``velocity_range`` (any finite value, negative too) are allowed: the range bounds sampling only.
    """

    def __init__(self, velocity_range: Sequence[float] = (0.0, 2.0)) -> None:
        self.distribution = VelocityDistribution(velocity_range, "HalfCheetahVel-v0", (0.0, 2.0))

    def task_params(self, tasks):
        return {"velocity": np.array([t.velocity for t in tasks])}

    def reward(self, before, after, action, params, dt):
        vx = (after.qpos[:, 0] - before.qpos[:, 0]) / dt
        reward = -np.abs(vx - params["velocity"]) - 0.05 * _sq(action)
        return reward, np.zeros(len(reward), dtype=bool)


class HalfCheetahDir(_HalfCheetah):
    """MAML (Finn et al. 2017, §5.3) ``rllab/envs/mujoco/half_cheetah_env_rand_direc.py``.

    Direction ``d ∈ {-1, +1}``; reward ``d · vx - 0.05 ‖a‖²``, no termination, H = 200. Any other
    direction value is rejected (:class:`~metarl.errors.InvalidTaskError`).
    """

    def __init__(self) -> None:
        self.distribution = DirectionDistribution("HalfCheetahDir-v0")

    def task_params(self, tasks):
        return {"direction": np.array([t.direction for t in tasks])}

    def reward(self, before, after, action, params, dt):
        vx = (after.qpos[:, 0] - before.qpos[:, 0]) / dt
        reward = params["direction"] * vx - 0.05 * _sq(action)
        return reward, np.zeros(len(reward), dtype=bool)


# --- Ant ---------------------------------------------------------------------------------------
class _Ant(MujocoFamily):
    # Gymnasium Ant-v5 model: timestep 0.01, frame_skip 5 (dt 0.05), reset noise 0.1.
    model_file = "ant.xml"
    frame_skip = 5
    reset_noise_scale = 0.1
    qvel_noise = "normal"

    def observe(self, frame: Frame) -> np.ndarray:
        # qpos without the torso's x, y, then qvel: 27 dims (no contact forces, see module docstring).
        return np.concatenate([frame.qpos[:, 2:], frame.qvel], axis=1)

    @staticmethod
    def _unhealthy(after: Frame) -> np.ndarray:
        # rllab ant_env: done unless the state is finite and the torso height z ∈ [0.2, 1.0].
        z = after.qpos[:, 2]
        finite = np.isfinite(after.qpos).all(axis=1) & np.isfinite(after.qvel).all(axis=1)
        return ~(finite & (z >= 0.2) & (z <= 1.0))


class AntVel(_Ant):
    """MAML (Finn et al. 2017, §5.3) ``rllab/envs/mujoco/ant_env_rand.py``.

    ``v* ~ U[velocity_range]`` (default ``(0, 3)``); reward ``-|vx - v*| - 0.005 ‖a‖² + 0.05``;
    terminates when the torso leaves ``z ∈ [0.2, 1]``; H = 200. Target velocities outside
    ``velocity_range`` (any finite value) are allowed: the range bounds sampling only.
    """

    def __init__(self, velocity_range: Sequence[float] = (0.0, 3.0)) -> None:
        self.distribution = VelocityDistribution(velocity_range, "AntVel-v0", (0.0, 3.0))

    def task_params(self, tasks):
        return {"velocity": np.array([t.velocity for t in tasks])}

    def reward(self, before, after, action, params, dt):
        vx = (after.qpos[:, 0] - before.qpos[:, 0]) / dt
        reward = -np.abs(vx - params["velocity"]) - 0.005 * _sq(action) + 0.05
        return reward, self._unhealthy(after)


class AntDir(_Ant):
    """MAML (Finn et al. 2017, §5.3) ``rllab/envs/mujoco/ant_env_rand_direc.py``.

    ``d ∈ {-1, +1}``; reward ``d · vx - 0.005 ‖a‖² + 0.05``; terminates when the torso leaves
    ``z ∈ [0.2, 1]``; H = 200. Any other direction value is rejected.
    """

    def __init__(self) -> None:
        self.distribution = DirectionDistribution("AntDir-v0")

    def task_params(self, tasks):
        return {"direction": np.array([t.direction for t in tasks])}

    def reward(self, before, after, action, params, dt):
        vx = (after.qpos[:, 0] - before.qpos[:, 0]) / dt
        reward = params["direction"] * vx - 0.005 * _sq(action) + 0.05
        return reward, self._unhealthy(after)


class AntGoal(_Ant):
    """ProMP (Rothfuss et al. 2019) ``meta_policy_search/envs/mujoco_envs/ant_rand_goal.py``.

    Goal uniform in the disc of radius ``goal_radius`` (3); reward ``-‖xy - g‖₁ - 0.1 ‖a‖²``
    (L1 distance of the torso to the goal), no termination, H = 200. The observation keeps the
    torso's x, y (the agent must know where it is): 29 dims. Goals outside the disc (any finite
    point) are allowed: ``goal_radius`` bounds sampling only.
    """

    def __init__(self, goal_radius: float = 3.0) -> None:
        self.distribution = DiscGoalDistribution(goal_radius)

    def observe(self, frame: Frame) -> np.ndarray:
        return np.concatenate([frame.qpos, frame.qvel], axis=1)

    def task_params(self, tasks):
        return {"goal": np.stack([t.goal for t in tasks])}

    def reward(self, before, after, action, params, dt):
        reward = -np.abs(after.qpos[:, :2] - params["goal"]).sum(axis=1) - 0.1 * _sq(action)
        return reward, np.zeros(len(reward), dtype=bool)


# --- Humanoid ----------------------------------------------------------------------------------
class HumanoidDir(MujocoFamily):
    """PEARL (Rakelly et al. 2019) ``rlkit/envs/humanoid_dir.py``.

    Direction angle ``θ ~ U[0, 2π)``; reward ``1.25 · (Δcom_xy · (cos θ, sin θ)) / dt
    - 0.1 ‖a‖² + 5`` (PEARL writes ``0.25 · Δ / timestep``; with frame_skip 5 that is the same
    number), terminates when the torso height leaves ``[1, 2]``, H = 200. The centre of mass is a
    ``subtreecom`` sensor on the torso (PEARL's ``mass_center``). Observation: ``qpos[2:]``,
    ``qvel`` (45 dims); PEARL also observed ``cinert``, ``cvel``, ``qfrc_actuator`` and
    ``cfrc_ext``, which are not in the batched state (Gymnasium v5's ``include_*=False``).
    Angles outside ``[0, 2π]`` are rejected (:class:`~metarl.errors.InvalidTaskError`): wrap them first.
    """

    model_file = "humanoid.xml"
    frame_skip = 5
    reset_noise_scale = 1e-2
    qvel_noise = "uniform"
    sensor_xml = '<sensor><subtreecom name="com" body="torso"/></sensor>'

    def __init__(self) -> None:
        self.distribution = HeadingDistribution()

    def observe(self, frame: Frame) -> np.ndarray:
        return np.concatenate([frame.qpos[:, 2:], frame.qvel], axis=1)

    def task_params(self, tasks):
        angle = np.array([t.angle for t in tasks])
        return {"heading": np.stack([np.cos(angle), np.sin(angle)], axis=1)}

    def reward(self, before, after, action, params, dt):
        progress = ((after.sensors[:, :2] - before.sensors[:, :2]) * params["heading"]).sum(axis=1) / dt
        reward = 1.25 * progress - 0.1 * _sq(action) + 5.0
        z = after.qpos[:, 2]
        return reward, (z < 1.0) | (z > 2.0) | ~np.isfinite(z)


# --- env classes (entry points) ----------------------------------------------------------------
HalfCheetahVelEnv, HalfCheetahVelVecEnv = env_classes(HalfCheetahVel, "HalfCheetahVel", __name__)
HalfCheetahDirEnv, HalfCheetahDirVecEnv = env_classes(HalfCheetahDir, "HalfCheetahDir", __name__)
AntVelEnv, AntVelVecEnv = env_classes(AntVel, "AntVel", __name__)
AntDirEnv, AntDirVecEnv = env_classes(AntDir, "AntDir", __name__)
AntGoalEnv, AntGoalVecEnv = env_classes(AntGoal, "AntGoal", __name__)
HumanoidDirEnv, HumanoidDirVecEnv = env_classes(HumanoidDir, "HumanoidDir", __name__)
