"""MuJoCo task families: Gymnasium conformance, batched == single, dynamics, held-out tasks, errors."""

from __future__ import annotations

import json
import warnings
from importlib import resources

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch
from gymnasium.envs.mujoco.humanoid_v5 import mass_center
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import metarl
from metarl.envs.mujoco import (
    MUJOCO_ENV_IDS,
    DirectionTask,
    DynamicsTaskWrapper,
    HeadingTask,
    MujocoDynamicsTask,
    VelocityTask,
    silence_settotalmass_notice,
)
from metarl.errors import ConfigError, InvalidActionError, InvalidTaskError, TaskNotSetError
from metarl.portable import compare_tasks
from metarl.sampling import collect
from metarl.tasks import Task

DYNAMICS_IDS = [i for i in MUJOCO_ENV_IDS if "RandParams" in i]


def single_env(env_id: str, **kwargs) -> gym.Env:
    """The registered single env class itself (``gym.make`` would turn ``max_episode_steps`` into a TimeLimit)."""
    return gym.make(env_id).unwrapped.__class__(**kwargs)


def run_pair(env_id: str, tasks, *, steps: int, seed: int, max_episode_steps: int, mode=AutoresetMode.NEXT_STEP):
    """Step a batched env and len(tasks) single envs with the same seeds, tasks and actions."""
    n = len(tasks)
    venv = metarl.make_vec(env_id, num_envs=n, max_episode_steps=max_episode_steps, autoreset_mode=mode)
    singles = [single_env(env_id, max_episode_steps=max_episode_steps) for _ in range(n)]
    obs_b, _ = venv.reset(seed=seed, options={"tasks": tasks})
    obs_s = np.stack([e.reset(seed=seed + i, options={"task": t})[0] for i, (e, t) in enumerate(zip(singles, tasks, strict=True))])
    assert np.array_equal(obs_b, obs_s)
    rng = np.random.default_rng(seed)
    pending = [False] * n
    ends = 0
    for _ in range(steps):
        actions = rng.uniform(-1.0, 1.0, size=venv.action_space.shape).astype(np.float32)
        ob, rew, term, trunc, info = venv.step(actions)
        for i, e in enumerate(singles):
            if pending[i]:  # NEXT_STEP: the step after an episode end resets and returns reward 0
                o, r, te, tr = e.reset()[0], 0.0, False, False
                pending[i] = False
            else:
                o, r, te, tr, _ = e.step(actions[i])
                ends += te or tr
                if mode is AutoresetMode.NEXT_STEP:
                    pending[i] = te or tr
                elif te or tr:  # SAME_STEP: final obs in info, obs is the reset one
                    assert np.array_equal(info["final_obs"][i], o)
                    o = e.reset()[0]
            # Bitwise: both zero the solver warm start at each env step (see _core's docstring).
            assert np.array_equal(ob[i], o), f"sub-env {i} obs differs"
            assert rew[i] == r and term[i] == te and trunc[i] == tr
    venv.close()
    return ends


# --- Gymnasium conformance ------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", MUJOCO_ENV_IDS)
def test_check_env_on_ten_sampled_tasks(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    tasks = env.sample_tasks(10, seed=0)
    assert len(tasks) == 10 and tasks == env.sample_tasks(10, seed=0)
    assert all(env.distribution.contains(t) for t in tasks)
    assert [Task.from_json(t.to_json()) for t in tasks] == tasks
    for task in tasks:
        env.set_task(task)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env, skip_render_check=True)
        # Any checker warning fails, except the unbounded-Box notice that Gymnasium's own
        # MuJoCo envs (observations in (-inf, inf)) raise too.
        other = [str(w.message) for w in caught if "infinity" not in str(w.message)]
        assert not other, other
        assert env.get_task() == task


@pytest.mark.parametrize("env_id", MUJOCO_ENV_IDS)
def test_batched_equals_single_envs_bitwise(env_id: str) -> None:
    venv = metarl.make_vec(env_id, num_envs=1)
    tasks = venv.sample_tasks(3, seed=7)
    ends = run_pair(env_id, tasks, steps=30, seed=11, max_episode_steps=12)
    assert ends >= 3  # at least one episode end per sub-env was compared (autoreset path)


def test_batched_equals_single_same_step_autoreset() -> None:
    tasks = [VelocityTask(velocity=v) for v in (0.3, 1.7)]
    run_pair("metarl/AntVel-v0", tasks, steps=14, seed=2, max_episode_steps=5, mode=AutoresetMode.SAME_STEP)


def test_thread_count_does_not_change_results() -> None:
    tasks = metarl.make_vec("metarl/HopperRandParams-v0", num_envs=1).sample_tasks(6, seed=1)
    outs = []
    for nthread in (0, 1, 2, 3):
        venv = metarl.make_vec("metarl/HopperRandParams-v0", num_envs=6, nthread=nthread)
        venv.reset(seed=0, options={"tasks": tasks})
        actions = np.random.default_rng(0).uniform(-1, 1, size=(20, 6, 3))
        outs.append(np.stack([venv.step(a)[0] for a in actions]))
        venv.close()
    for other in outs[1:]:
        assert np.array_equal(outs[0], other)


# --- physics and rewards against Gymnasium's v5 envs ------------------------------------------------
@pytest.mark.parametrize(
    ("gym_id", "env_id", "obs_dims"),
    [("HalfCheetah-v5", "metarl/HalfCheetahDir-v0", 17), ("Ant-v5", "metarl/AntDir-v0", 27),
     ("Humanoid-v5", "metarl/HumanoidDir-v0", 45)],
)
def test_physics_and_reward_match_gymnasium(gym_id: str, env_id: str, obs_dims: int) -> None:
    """Same models, frame skip and reset noise as Gymnasium v5; the only physics difference is the
    per-step warm-start reset, which keeps trajectories within solver tolerance over 20 steps
    (1e-8; 1e-5 for the humanoid's 50-iteration PGS solver).

    Rewards are checked against the reference formulas evaluated on Gymnasium's own state. The
    displacement is measured on the post-step state (``qpos``; the humanoid's COM after
    ``mj_forward``): Gymnasium's Ant/Humanoid and the mujoco-py references read ``xpos``/``xipos``
    right after ``mj_step``, which MuJoCo computed *before* the last substep integrated (a lag of
    one substep that this package does not copy).
    """
    # Newton (HalfCheetah, Ant) converges to 1e-8 whatever its warm start; the humanoid's PGS
    # solver stops after 50 iterations, so its warm start shows at ~1e-7.
    tol = 1e-5 if "Humanoid" in gym_id else 1e-8
    with silence_settotalmass_notice(gym_id):  # keeps MUJOCO_LOG.TXT out of the working directory
        ref = gym.make(gym_id)
    data, model = ref.unwrapped.data, ref.unwrapped.model
    ours = single_env(env_id)
    # Along +x: MAML's direction reward and PEARL's heading reward both reduce to x progress.
    task = HeadingTask(angle=0.0) if "Humanoid" in env_id else DirectionTask(direction=1.0)
    o_ref, _ = ref.reset(seed=3)
    o, _ = ours.reset(seed=3, options={"task": task})
    assert np.array_equal(o_ref[:obs_dims], o)

    def position() -> float:
        if "Humanoid" in gym_id:
            mujoco.mj_forward(model, data)  # kinematics of the current state (changes no state)
            return float(mass_center(model, data)[0])
        return float(data.qpos[0])

    rng = np.random.default_rng(0)
    x_before = position()
    for _ in range(20):
        a = rng.uniform(-1, 1, size=ref.action_space.shape).astype(np.float32) * ref.action_space.high
        o_ref, *_ = ref.step(a)
        o, r, *_ = ours.step(a)
        assert np.abs(o_ref[:obs_dims] - o).max() < tol
        x_after = position()
        vx, ctrl = (x_after - x_before) / ref.unwrapped.dt, float(np.square(a.astype(np.float64)).sum())
        x_before = x_after
        expected = {
            "HalfCheetah-v5": vx - 0.05 * ctrl,  # MAML half_cheetah_env_rand_direc
            "Ant-v5": vx - 0.005 * ctrl + 0.05,  # MAML ant_env_rand_direc
            "Humanoid-v5": 1.25 * vx - 0.1 * ctrl + 5.0,  # PEARL humanoid_dir
        }[gym_id]
        assert r == pytest.approx(expected, abs=100 * tol)


# --- tasks: settable between episodes, nothing carried over -----------------------------------------
def _trajectory(venv, tasks, seed: int, steps: int = 15) -> np.ndarray:
    obs = [venv.reset(seed=seed, options={"tasks": tasks})[0]]
    actions = np.random.default_rng(5).uniform(-1, 1, size=(steps, *venv.action_space.shape))
    obs += [venv.step(a)[0] for a in actions]
    return np.stack(obs)


@pytest.mark.parametrize("env_id", DYNAMICS_IDS)
def test_dynamics_tasks_change_trajectories(env_id: str) -> None:
    venv = metarl.make_vec(env_id, num_envs=4)
    tasks = venv.sample_tasks(4, seed=0)
    traj = _trajectory(venv, tasks, seed=1)
    assert np.array_equal(traj, _trajectory(venv, tasks, seed=1))  # reproducible under a seed
    assert np.array_equal(traj, _trajectory(metarl.make_vec(env_id, num_envs=4), tasks, seed=1))
    # Every sub-env seeded alike and given the same actions: only the dynamics differ.
    obs = [venv.reset(seed=[9, 9, 9, 9], options={"tasks": tasks})[0]]
    for a in np.random.default_rng(5).uniform(-1, 1, size=(15, venv.action_space.shape[1])):
        obs.append(venv.step(np.tile(a, (4, 1)))[0])
    obs = np.stack(obs)
    assert all(np.array_equal(obs[0, 0], obs[0, i]) for i in range(4))  # same initial state
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(obs[:, i] - obs[:, j]).max() > 1e-3


@pytest.mark.parametrize("env_id", [*DYNAMICS_IDS, "metarl/AntGoal-v0"])
def test_set_tasks_between_episodes_restores_nothing(env_id: str) -> None:
    a_tasks = metarl.make_vec(env_id, num_envs=1).sample_tasks(3, seed=1)
    b_tasks = metarl.make_vec(env_id, num_envs=1).sample_tasks(3, seed=2)
    used = metarl.make_vec(env_id, num_envs=3)
    models = [used.sub_env_model(i) for i in range(3)]
    _trajectory(used, a_tasks, seed=4)
    after_a = _trajectory(used, b_tasks, seed=4)
    assert all(used.sub_env_model(i) is models[i] for i in range(3))  # no rebuild
    fresh = _trajectory(metarl.make_vec(env_id, num_envs=3), b_tasks, seed=4)
    assert np.array_equal(after_a, fresh)
    # The single env too.
    env = single_env(env_id)
    env.reset(seed=0, options={"task": a_tasks[0]})
    for _ in range(5):
        env.step(env.action_space.sample())
    o1 = env.reset(seed=0, options={"task": b_tasks[0]})[0]
    fresh_env = single_env(env_id)
    o2 = fresh_env.reset(seed=0, options={"task": b_tasks[0]})[0]
    assert np.array_equal(o1, o2)
    for a in np.random.default_rng(0).uniform(-1, 1, size=(10, *env.action_space.shape)):
        assert np.array_equal(env.step(a)[0], fresh_env.step(a)[0])


def test_goal_tasks_change_rewards_not_physics() -> None:
    venv = metarl.make_vec("metarl/HalfCheetahVel-v0", num_envs=2)
    venv.reset(seed=[0, 0], options={"tasks": [VelocityTask(velocity=0.0), VelocityTask(velocity=2.0)]})
    assert venv.sub_env_model(0) is venv.sub_env_model(1)  # one shared MjModel
    for a in np.random.default_rng(0).uniform(-1, 1, size=(5, 6)):
        obs, rew, *_ = venv.step(np.stack([a, a]))
        assert np.array_equal(obs[0], obs[1]) and rew[0] != rew[1]


# --- held-out tasks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", MUJOCO_ENV_IDS)
def test_held_out_tasks_are_fixed(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    held = env.held_out_tasks()
    key = env_id.split("/")[1]
    data = json.loads(resources.files("metarl.envs").joinpath("held_out", f"{key}.json").read_text())
    assert data["key"] == key
    assert held == [Task.from_dict(d) for d in data["tasks"]]  # the file defines them (exact)
    # The recipe still produces the file, to an ulp of the machine that made it (HELD_OUT_RTOL).
    assert compare_tasks(held, env.distribution.generate_held_out()) is None
    assert held == metarl.make_vec(env_id, num_envs=2).held_out_tasks()
    if "Dir-v0" in env_id and "Humanoid" not in env_id:
        assert sorted(t.direction for t in held) == [-1.0, 1.0]  # all tasks of a discrete family
    else:
        assert len(held) == 40 and all(env.distribution.contains(t) for t in held)
        assert not set(held) & set(env.sample_tasks(200, seed=0))
    assert env.distribution.default_task() == held[0]


# --- typed errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("metarl/HalfCheetahVel-v0", {"velocity_range": (2.0, 1.0)}),
        ("metarl/HalfCheetahVel-v0", {"velocity_range": (float("nan"), 1.0)}),
        ("metarl/AntVel-v0", {"velocity_range": "fast"}),
        ("metarl/AntGoal-v0", {"goal_radius": -1.0}),
        ("metarl/AntGoal-v0", {"goal_radius": float("inf")}),
        ("metarl/HopperRandParams-v0", {"mass_range": (0.0, 2.0)}),
        ("metarl/Walker2DRandParams-v0", {"damping_range": (-1.0, 2.0)}),
        ("metarl/HalfCheetahRandParams-v0", {"friction_range": (3.0, 1.0)}),
        ("metarl/HopperRandParams-v0", {"gravity_range": (1.0, float("inf"))}),
        ("metarl/HalfCheetahDir-v0", {"nthread": -1}),
        ("metarl/HalfCheetahDir-v0", {"max_episode_steps": 0}),
    ],
)
def test_invalid_configuration_is_a_config_error(env_id: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError) as err:
        metarl.make_vec(env_id, num_envs=2, **kwargs)
    assert next(iter(kwargs)) in str(err.value)
    if "nthread" not in kwargs:
        with pytest.raises(ConfigError):
            single_env(env_id, **kwargs)


def test_invalid_tasks_and_actions_are_typed_errors() -> None:
    with pytest.raises(InvalidTaskError, match="direction"):
        DirectionTask(direction=0.5)
    env = single_env("metarl/HopperRandParams-v0")
    good = env.sample_tasks(1, seed=0)[0]
    with pytest.raises(InvalidTaskError, match="body_mass"):
        env.set_task(good.replace(body_mass=np.ones(7)))
    with pytest.raises(InvalidTaskError, match="dof_damping"):
        good.replace(dof_damping=-np.ones(6))
    with pytest.raises(InvalidTaskError, match="expected a MujocoDynamicsTask"):
        env.set_task(VelocityTask(velocity=1.0))
    env.reset(seed=0, options={"task": good.to_dict()})  # dict / JSON tasks are decoded
    with pytest.raises(InvalidActionError):
        env.step([np.nan, 0.0, 0.0])
    with pytest.raises(InvalidActionError):
        env.step([0.0, 0.0])
    venv = metarl.make_vec("metarl/AntDir-v0", num_envs=2)
    venv.reset(seed=0)
    with pytest.raises(InvalidActionError):
        venv.step(np.full((2, 8), np.inf))
    with pytest.raises(InvalidTaskError):
        venv.set_tasks([DirectionTask(direction=1.0)])  # one task for two sub-envs
    strict = single_env("metarl/AntDir-v0", require_task=True)
    with pytest.raises(TaskNotSetError):
        strict.reset(seed=0)


# --- the dynamics wrapper ----------------------------------------------------------------------------
def test_wrapper_makes_any_gymnasium_mujoco_env_a_task_family() -> None:
    ranges = dict(mass_range=(0.5, 2.0), damping_range=(0.5, 2.0), friction_range=(0.5, 2.0), gravity_range=(0.5, 1.5))
    fam = DynamicsTaskWrapper(gym.make("Hopper-v5"), **ranges)
    tasks = fam.sample_tasks(3, seed=0)
    assert tasks == fam.sample_tasks(3, seed=0)
    assert all(isinstance(t, MujocoDynamicsTask) and fam.distribution.contains(t) for t in tasks)
    # inertia follows the mass by default; gravity varies.
    assert np.array_equal(tasks[0].body_inertia, np.repeat(tasks[0].body_mass[:, None], 3, axis=1))
    assert len({t.gravity for t in tasks}) == 3
    held = fam.held_out_tasks()
    assert len(held) == 40 and held == DynamicsTaskWrapper(gym.make("Hopper-v5"), **ranges).held_out_tasks()

    def rollout(env, task) -> np.ndarray:
        obs = [env.reset(seed=0, options={"task": task})[0]]
        for a in np.random.default_rng(1).uniform(-1, 1, size=(20, 3)):
            obs.append(env.step(a)[0])
        return np.stack(obs)

    t0, t1 = rollout(fam, tasks[0]), rollout(fam, tasks[1])
    assert np.abs(t0 - t1).max() > 1e-3  # the task changes the dynamics
    fresh = DynamicsTaskWrapper(gym.make("Hopper-v5"), **ranges)
    assert np.array_equal(rollout(fresh, tasks[1]), t1)  # nothing of tasks[0] survives
    model = fam.unwrapped.model
    assert model.opt.gravity[2] == pytest.approx(-9.81 * tasks[1].gravity)
    assert fam.get_task() == tasks[1]


@pytest.mark.parametrize(
    "kwargs", [{"mass_range": (0.0, 1.0)}, {"gravity_range": (2.0, 1.0)}, {"friction_range": (1.0,)}]
)
def test_wrapper_rejects_invalid_ranges(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        DynamicsTaskWrapper(gym.make("Hopper-v5"), **kwargs)


def test_wrapper_rejects_non_mujoco_env() -> None:
    with pytest.raises(ConfigError, match="MuJoCo"):
        DynamicsTaskWrapper(gym.make("CartPole-v1"))


# --- the hot path: metarl's rollout loop ---------------------------------------------------------
def test_collect_with_torch_policy() -> None:
    venv = metarl.make_vec("metarl/HalfCheetahVel-v0", num_envs=6)
    tasks = venv.sample_tasks(3, seed=0) * 2  # 3 tasks x 2 episodes
    torch.manual_seed(0)
    policy = torch.nn.Sequential(torch.nn.Linear(17, 32), torch.nn.Tanh(), torch.nn.Linear(32, 6))

    def act(obs, t):
        return torch.tanh(policy(obs)), {}

    ro = collect(venv, act, horizon=200, tasks=tasks, seed=0)
    assert tuple(ro.obs.shape) == (200, 6, 17) and tuple(ro.rewards.shape) == (200, 6)
    assert bool(ro.truncated[-1].all()) and not bool(ro.truncated[:-1].any())  # H = 200
    again = collect(venv, act, horizon=200, tasks=tasks, seed=0)
    assert torch.equal(ro.rewards, again.rewards)
    assert len(set(ro.episode_returns.tolist())) == 6  # distinct seeds and tasks, distinct returns
