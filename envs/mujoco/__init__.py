"""metarl.envs.mujoco: MuJoCo locomotion task families with native batched physics.

Goal/velocity/direction families (MAML, ProMP, PEARL) and dynamics families (rand_param_envs),
registered as ``metarl/<Name>-v0``. ``gym.make`` gives a single env stepped with ``mj_step``;
``gym.make_vec(..., vectorization_mode="vector_entry_point")`` gives the native batched env
stepped by ``mujoco.rollout`` (see :mod:`metarl.envs.mujoco._core`). Models are Gymnasium's
v5 models, shipped in ``assets/`` (see ``assets/NOTICE.md``).

>>> import gymnasium as gym, metarl
>>> venv = gym.make_vec("metarl/AntDir-v0", num_envs=2, vectorization_mode="vector_entry_point")
>>> obs, _ = venv.reset(seed=0, options={"tasks": venv.unwrapped.held_out_tasks()})
>>> obs.shape
(2, 27)
"""

from __future__ import annotations

from metarl.meta_env import TaskDistribution
from metarl.registry import register_meta_env

from ._core import (
    Frame,
    MujocoEnv,
    MujocoFamily,
    MujocoVecEnv,
    default_nthread,
    load_model,
    silence_settotalmass_notice,
)
from .dynamics import (
    DynamicsDistribution,
    DynamicsTaskWrapper,
    HalfCheetahRandParams,
    HalfCheetahRandParamsEnv,
    HalfCheetahRandParamsVecEnv,
    HopperRandParams,
    HopperRandParamsEnv,
    HopperRandParamsVecEnv,
    MujocoDynamicsTask,
    Walker2DRandParams,
    Walker2DRandParamsEnv,
    Walker2DRandParamsVecEnv,
    apply_dynamics,
)
from .locomotion import (
    AntDir,
    AntDirEnv,
    AntDirVecEnv,
    AntGoal,
    AntGoalEnv,
    AntGoalVecEnv,
    AntVel,
    AntVelEnv,
    AntVelVecEnv,
    DirectionTask,
    GoalPositionTask,
    HalfCheetahDir,
    HalfCheetahDirEnv,
    HalfCheetahDirVecEnv,
    HalfCheetahVel,
    HalfCheetahVelEnv,
    HalfCheetahVelVecEnv,
    HeadingTask,
    HumanoidDir,
    HumanoidDirEnv,
    HumanoidDirVecEnv,
    VelocityTask,
)

__all__ = [
    "Frame", "MujocoEnv", "MujocoFamily", "MujocoVecEnv", "default_nthread", "load_model",
    "silence_settotalmass_notice",
    "VelocityTask", "DirectionTask", "GoalPositionTask", "HeadingTask", "MujocoDynamicsTask",
    "DynamicsDistribution", "DynamicsTaskWrapper", "apply_dynamics",
    "HalfCheetahVelEnv", "HalfCheetahVelVecEnv", "HalfCheetahDirEnv", "HalfCheetahDirVecEnv",
    "AntVelEnv", "AntVelVecEnv", "AntDirEnv", "AntDirVecEnv", "AntGoalEnv", "AntGoalVecEnv",
    "HumanoidDirEnv", "HumanoidDirVecEnv",
    "HalfCheetahRandParamsEnv", "HalfCheetahRandParamsVecEnv", "HopperRandParamsEnv",
    "HopperRandParamsVecEnv", "Walker2DRandParamsEnv", "Walker2DRandParamsVecEnv",
    "MUJOCO_ENV_IDS", "held_out_distributions",
]

_M = "metarl.envs.mujoco"
_RAND = "body mass, inertia, friction × 1.5^U[-3,3], damping × 1.3^U[-3,3]"
_FAMILIES = [
    ("HalfCheetahVel", "target velocity", "v* ~ U[0,2] (velocity_range), reward -|vx-v*| - 0.05‖a‖², H=200",
     {"velocity_range": (0.0, 2.0)}, "Finn et al. 2017 (MAML) §5.3; rllab half_cheetah_env_rand.py"),
    ("HalfCheetahDir", "direction ±1", "reward d·vx - 0.05‖a‖², H=200", {},
     "Finn et al. 2017 (MAML) §5.3; rllab half_cheetah_env_rand_direc.py"),
    ("AntVel", "target velocity", "v* ~ U[0,3] (velocity_range), reward -|vx-v*| - 0.005‖a‖² + 0.05, z∉[0.2,1] ends, H=200",
     {"velocity_range": (0.0, 3.0)}, "Finn et al. 2017 (MAML) §5.3; rllab ant_env_rand.py"),
    ("AntDir", "direction ±1", "reward d·vx - 0.005‖a‖² + 0.05, z∉[0.2,1] ends, H=200", {},
     "Finn et al. 2017 (MAML) §5.3; rllab ant_env_rand_direc.py"),
    ("AntGoal", "2-D goal", "goal uniform in disc r≤3 (goal_radius), reward -‖xy-g‖₁ - 0.1‖a‖², H=200",
     {"goal_radius": 3.0}, "Rothfuss et al. 2019 (ProMP); meta_policy_search ant_rand_goal.py"),
    ("HumanoidDir", "direction angle", "θ ~ U[0,2π), reward 1.25·v_com·(cosθ,sinθ) - 0.1‖a‖² + 5, z∉[1,2] ends, H=200",
     {}, "Rakelly et al. 2019 (PEARL); rlkit humanoid_dir.py"),
    ("HalfCheetahRandParams", "dynamics", f"{_RAND}; reward vx - 0.1‖a‖², H=200", {},
     "rand_param_envs (ProMP/PEARL/VariBAD); Gymnasium HalfCheetah-v5 reward"),
    ("HopperRandParams", "dynamics", f"{_RAND}; reward vx + 1 - 1e-3‖a‖², unhealthy ends, H=200", {},
     "rand_param_envs hopper_rand_params.py (ProMP/PEARL/VariBAD)"),
    ("Walker2DRandParams", "dynamics", f"{_RAND}; reward vx + 1 - 1e-3‖a‖², unhealthy ends, H=200", {},
     "rand_param_envs walker2d_rand_params.py (ProMP/PEARL/VariBAD)"),
]

#: The ids this subpackage registers.
MUJOCO_ENV_IDS: tuple[str, ...] = tuple(f"metarl/{name}-v0" for name, *_ in _FAMILIES)

for _name, _varies, _desc, _kwargs, _source in _FAMILIES:
    _module = "dynamics" if "RandParams" in _name else "locomotion"
    register_meta_env(
        f"metarl/{_name}-v0",
        entry_point=f"{_M}.{_module}:{_name}Env",
        vector_entry_point=f"{_M}.{_module}:{_name}VecEnv",
        varies=_varies,
        description=_desc,
        kwargs=_kwargs,
        source=_source,
    )


def held_out_distributions() -> list[TaskDistribution]:
    """One distribution per shipped configuration (read by ``python -m metarl.envs.make_held_out``)."""
    families = [
        HalfCheetahVel, HalfCheetahDir, AntVel, AntDir, AntGoal, HumanoidDir,
        HalfCheetahRandParams, HopperRandParams, Walker2DRandParams,
    ]
    return [family().distribution for family in families]
