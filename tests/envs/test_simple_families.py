"""Navigation2D, Bandit and TabularMDP: the task API, Gymnasium conformance, native batching."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import metarl
from metarl.envs.bandit import BanditDistribution
from metarl.envs.navigation import Navigation2DDistribution
from metarl.envs.tabular_mdp import TabularMDPDistribution
from metarl.errors import (
    ConfigError,
    InvalidActionError,
    InvalidTaskError,
    TaskNotSetError,
    UnknownEnvError,
)
from metarl.meta_env import held_out_rng
from metarl.portable import compare_tasks

IDS = ["metarl/Navigation2D-v0", "metarl/Bandit-v0", "metarl/TabularMDP-v0"]


def _random_actions(space: gym.Space, n: int, rng: np.random.Generator) -> np.ndarray:
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, space.n, size=n)
    return rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(np.float32)


# --- Gymnasium conformance ---------------------------------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_check_env_passes_without_warnings_for_20_tasks(env_id: str) -> None:
    env = gym.make(env_id)
    tasks = env.unwrapped.sample_tasks(20, seed=1)
    for task in tasks:
        env.unwrapped.set_task(task)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(env.unwrapped, skip_render_check=True)
        assert env.unwrapped.get_task() == task


@pytest.mark.parametrize("env_id", IDS)
def test_registered_with_native_vector_entry_point(env_id: str) -> None:
    venv = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(venv, metarl.BatchedMetaEnv)
    assert venv.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, *venv.single_observation_space.shape)
    assert venv.observation_space.contains(obs)


# --- tasks: sampling, determinism, held-out ----------------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_tasks_different_seed_different(env_id: str) -> None:
    a = gym.make(env_id).unwrapped.sample_tasks(10, seed=3)
    b = gym.make(env_id).unwrapped.sample_tasks(10, seed=3)
    c = gym.make(env_id).unwrapped.sample_tasks(10, seed=4)
    assert a == b
    assert all(x != y for x, y in zip(a, c, strict=True))
    # the env's own generator: seeded by reset(seed=...), reproducible, advancing between calls
    e1, e2 = gym.make(env_id).unwrapped, gym.make(env_id).unwrapped
    e1.reset(seed=11)
    e2.reset(seed=11)
    first = e1.sample_tasks(3)
    assert first == e2.sample_tasks(3)
    assert e1.sample_tasks(3) != first


@pytest.mark.parametrize("env_id", IDS)
def test_sampling_and_stepping_leave_global_rngs_untouched(env_id: str) -> None:
    np.random.seed(123)  # noqa: NPY002  (the global RNG is what this test watches)
    random.seed(123)
    torch.manual_seed(123)
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.get_rng_state()  # noqa: NPY002
    env = gym.make(env_id)
    env.unwrapped.sample_tasks(5)
    env.unwrapped.sample_tasks(5, seed=0)
    env.unwrapped.held_out_tasks()
    venv = gym.make_vec(env_id, num_envs=4, vectorization_mode="vector_entry_point")
    venv.reset(seed=0, options={"tasks": venv.sample_tasks(4)})
    venv.step(_random_actions(venv.single_action_space, 4, np.random.default_rng(0)))
    assert np.array_equal(np.random.get_state()[1], np_state[1])  # noqa: NPY002
    assert random.getstate() == py_state
    assert torch.equal(torch.get_rng_state(), torch_state)


@pytest.mark.parametrize("env_id", IDS)
def test_held_out_tasks_fixed_and_disjoint_from_training_draws(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    held = env.held_out_tasks()
    assert len(held) == 40
    assert len(set(held)) == 40
    assert held == env.held_out_tasks()
    for seed in (0, 1, env.distribution.held_out_seed):
        assert not set(held) & set(env.sample_tasks(40, seed=seed))
    # The shipped file is what its recorded recipe draws (to rounding: files are the reference).
    recipe = env.distribution.sample(held_out_rng(env.distribution.held_out_seed), 40)
    assert compare_tasks(held, recipe) is None


def test_held_out_tasks_identical_across_fresh_processes() -> None:
    code = (
        "import json, gymnasium as gym, metarl\n"
        f"print(json.dumps({{i: [t.to_dict() for t in gym.make(i).unwrapped.held_out_tasks()] for i in {IDS!r}}}))"
    )
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)]
    assert outs[0] == outs[1]
    here = {i: [t.to_dict() for t in gym.make(i).unwrapped.held_out_tasks()] for i in IDS}
    assert json.loads(outs[0]) == json.loads(json.dumps(here))


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_rollout(env_id: str) -> None:
    def rollout(seed: int) -> list:
        env = gym.make(env_id)
        task = env.unwrapped.sample_tasks(1, seed=5)[0]
        obs, _ = env.reset(seed=seed, options={"task": task})
        env.action_space.seed(seed)
        out = [obs.tolist()]
        for _ in range(30):
            obs, r, term, trunc, _ = env.step(env.action_space.sample())
            out.append((obs.tolist(), r, term, trunc))
            if term or trunc:
                obs, _ = env.reset()
        return out

    assert rollout(0) == rollout(0)
    if env_id != "metarl/Navigation2D-v0":  # navigation is deterministic given actions
        assert rollout(0) != rollout(1)


# --- the task API ------------------------------------------------------------------------------
def test_set_task_accepts_task_dict_json_and_rejects_wrong_types() -> None:
    env = gym.make("metarl/Navigation2D-v0").unwrapped
    task = metarl.envs.Navigation2DTask(goal=[0.2, 0.3])
    for form in (task, task.to_dict(), task.to_json()):
        env.set_task(form)
        assert env.get_task() == task
    with pytest.raises(InvalidTaskError, match="expected a Navigation2DTask, got BanditTask"):
        env.set_task(metarl.envs.BanditTask(probs=[0.5, 0.5]))
    bandit = gym.make("metarl/Bandit-v0", num_arms=3).unwrapped
    with pytest.raises(InvalidTaskError, match="3 arms"):
        bandit.set_task(metarl.envs.BanditTask(probs=[0.5, 0.5]))


def test_reset_task_option_takes_effect() -> None:
    env = gym.make("metarl/Navigation2D-v0")
    task = metarl.envs.Navigation2DTask(goal=[0.0, 0.1])
    env.reset(options={"task": task})
    _, reward, terminated, *_ = env.step(np.array([0.0, 0.1], dtype=np.float32))
    assert reward == pytest.approx(0.0, abs=1e-12) and terminated
    with pytest.raises(ConfigError, match="unknown reset option"):
        env.reset(options={"tasks": [task]})


def test_require_task_makes_missing_task_a_typed_error() -> None:
    env = gym.make("metarl/Bandit-v0", require_task=True)
    with pytest.raises(TaskNotSetError):
        env.reset(seed=0)
    venv = gym.make_vec("metarl/Bandit-v0", num_envs=2, vectorization_mode="vector_entry_point", require_task=True)
    with pytest.raises(TaskNotSetError):
        venv.get_tasks()
    with pytest.raises(TaskNotSetError):
        venv.step(np.zeros(2, dtype=np.int64))
    venv.reset(seed=0, options={"tasks": venv.sample_tasks(2)})
    venv.step(np.zeros(2, dtype=np.int64))


def test_batched_task_api() -> None:
    venv = metarl.make_vec("metarl/TabularMDP-v0", num_envs=3)
    tasks = venv.sample_tasks(3, seed=0)
    venv.set_tasks(tasks)
    assert venv.get_tasks() == tasks
    with pytest.raises(InvalidTaskError, match="one task per sub-env"):
        venv.set_tasks(tasks[:2])
    with pytest.raises(InvalidTaskError, match="one task per sub-env"):
        venv.set_tasks(tasks[0])
    # Some sub-envs only (trials that end while others run on).
    new = venv.sample_tasks(2, seed=1)
    venv.set_tasks(new, indices=[2, 0])
    assert venv.get_tasks() == [new[1], tasks[1], new[0]]
    with pytest.raises(InvalidTaskError, match="one task per index"):
        venv.set_tasks(new, indices=[1])
    with pytest.raises(InvalidTaskError, match="indices"):
        venv.set_tasks(new, indices=[0, 3])
    with pytest.raises(InvalidTaskError, match="indices"):
        venv.set_tasks(new, indices=[1, 1])


# --- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "action",
    [np.array([np.nan, 0.0]), np.array([0.0, np.inf]), np.zeros(3), np.zeros((1, 2)), "left"],
    ids=["nan", "inf", "len3", "2d", "str"],
)
def test_bad_continuous_actions_raise_value_error(action) -> None:
    env = gym.make("metarl/Navigation2D-v0")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError) as info:
        env.step(action)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("action", [5, -1, 1.5, np.nan, [0, 1]], ids=["high", "negative", "fraction", "nan", "list"])
def test_bad_discrete_actions_raise_value_error(action) -> None:
    env = gym.make("metarl/Bandit-v0")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError):
        env.step(action)


def test_bad_batched_actions_name_the_problem() -> None:
    venv = metarl.make_vec("metarl/Navigation2D-v0", num_envs=4)
    venv.reset(seed=0)
    bad = np.zeros((4, 2))
    bad[2, 1] = np.nan
    with pytest.raises(InvalidActionError, match=r"index \(2, 1\)"):
        venv.step(bad)
    with pytest.raises(InvalidActionError, match=r"shape \(4, 2\)"):
        venv.step(np.zeros((3, 2)))


@pytest.mark.parametrize(
    ("env_id", "kwargs", "match"),
    [
        ("metarl/Bandit-v0", {"num_arms": 1}, "num_arms"),
        ("metarl/Bandit-v0", {"horizon": 0}, "max_episode_steps"),
        ("metarl/Navigation2D-v0", {"goal_range": (0.5, -0.5)}, "goal_range"),
        ("metarl/Navigation2D-v0", {"goal_range": (0.0, float("nan"))}, "goal_range"),
        ("metarl/TabularMDP-v0", {"num_states": 0}, "num_states"),
    ],
)
def test_bad_env_kwargs_raise_config_error(env_id: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        gym.make(env_id, **kwargs)
    with pytest.raises(ConfigError, match=match):
        metarl.make_vec(env_id, num_envs=2, **kwargs)


def test_autoreset_mode_is_checked_and_only_for_batched_envs() -> None:
    with pytest.raises(ConfigError, match="autoreset_mode"):
        metarl.make_vec("metarl/Navigation2D-v0", num_envs=2, autoreset_mode="sometimes")
    with pytest.raises(ConfigError, match="autoreset_mode"):
        gym.make("metarl/Navigation2D-v0", autoreset_mode="SameStep")


def test_unknown_id_suggests_close_ones() -> None:
    with pytest.raises(UnknownEnvError, match="did you mean 'metarl/Bandit-v0'"):
        metarl.make("metarl/Bandit-v1")
    with pytest.raises(UnknownEnvError, match="did you mean 'metarl/TabularMDP-v0'"):
        metarl.make_vec("TabularMDP-v0", num_envs=2)


def test_bad_seeds_are_config_errors() -> None:
    venv = metarl.make_vec("metarl/Bandit-v0", num_envs=2)
    with pytest.raises(ConfigError, match="seed"):
        venv.reset(seed=-1)
    with pytest.raises(ConfigError, match="seed"):
        venv.reset(seed=[1, 2, 3])
    with pytest.raises(ConfigError, match="number of tasks"):
        venv.sample_tasks(-2)


# --- native batching ---------------------------------------------------------------------------
def test_batched_navigation_equals_single_envs_exactly() -> None:
    """Same seeds, tasks and actions => identical transitions, across autoresets and early ends."""
    N, steps = 6, 230
    rng = np.random.default_rng(0)
    tasks = metarl.make("metarl/Navigation2D-v0").unwrapped.sample_tasks(N, seed=2)
    # Sub-env 0's goal is reachable in 3 steps: it terminates early and autoresets mid-run.
    tasks[0] = metarl.envs.Navigation2DTask(goal=[0.3, 0.0])
    venv = metarl.make_vec("metarl/Navigation2D-v0", num_envs=N)
    singles = [metarl.make("metarl/Navigation2D-v0") for _ in range(N)]
    obs_b, _ = venv.reset(seed=7, options={"tasks": tasks})
    obs_s = [env.reset(seed=7 + i, options={"task": tasks[i]})[0] for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs_b, np.stack(obs_s))
    pending = [False] * N  # single envs reset on the step after an end, as NEXT_STEP autoreset
    ended = 0
    for t in range(steps):
        actions = rng.uniform(-0.12, 0.12, size=(N, 2)).astype(np.float32)
        if t < 3:
            actions[0] = [0.1, 0.0]
        obs_b, rew_b, term_b, trunc_b, _ = venv.step(actions)
        for i, env in enumerate(singles):
            if pending[i]:
                o, r, te, tr = env.reset(seed=None)[0], 0.0, False, False
                pending[i] = False
            else:
                o, r, te, tr, _ = env.step(actions[i])
                pending[i] = te or tr
                ended += te or tr
            np.testing.assert_array_equal(obs_b[i], o)
            assert rew_b[i] == r and term_b[i] == te and trunc_b[i] == tr
    assert ended > N  # both terminations and time-limit truncations happened


def _bandit_rewards_batched(task, pulls: int, seed: int) -> np.ndarray:
    venv = metarl.make_vec("metarl/Bandit-v0", num_envs=pulls, num_arms=task.probs.size, horizon=10)
    venv.reset(seed=seed, options={"tasks": [task] * pulls})
    out = []
    for arm in range(task.probs.size):
        out.append(venv.step(np.full(pulls, arm))[1])
    return np.stack(out, axis=1)  # [pulls, arms]


def _bandit_rewards_single(task, pulls: int, seed: int) -> np.ndarray:
    env = gym.make("metarl/Bandit-v0", num_arms=task.probs.size, horizon=10 * pulls)
    env.reset(seed=seed, options={"task": task})
    return np.array([[env.step(arm)[1] for arm in range(task.probs.size)] for _ in range(pulls)])


def test_batched_bandit_matches_single_env_in_distribution() -> None:
    task = metarl.envs.BanditTask(probs=[0.05, 0.3, 0.5, 0.8, 0.97])
    batched = _bandit_rewards_batched(task, 4000, seed=0)
    single = _bandit_rewards_single(task, 4000, seed=0)
    assert set(np.unique(batched)) <= {0.0, 1.0}
    for arm, p in enumerate(task.probs):
        b, s = int(batched[:, arm].sum()), int(single[:, arm].sum())
        # Both agree with the arm's probability and with each other (exact binomial / Fisher tests).
        assert stats.binomtest(b, 4000, p).pvalue > 1e-3
        assert stats.binomtest(s, 4000, p).pvalue > 1e-3
        assert stats.fisher_exact([[b, 4000 - b], [s, 4000 - s]]).pvalue > 1e-3
    # Reproducible under a seed; a different seed differs.
    assert np.array_equal(batched, _bandit_rewards_batched(task, 4000, seed=0))
    assert not np.array_equal(batched, _bandit_rewards_batched(task, 4000, seed=1))


def test_batched_mdp_matches_single_env_in_distribution() -> None:
    env = gym.make("metarl/TabularMDP-v0")
    task = env.unwrapped.sample_tasks(1, seed=0)[0]
    n, action = 5000, 2
    venv = metarl.make_vec("metarl/TabularMDP-v0", num_envs=n)
    venv.reset(seed=0, options={"tasks": [task] * n})
    obs, reward, *_ = venv.step(np.full(n, action))
    next_b, rew_b = obs.argmax(1), reward
    next_s, rew_s = [], []
    env.reset(seed=0, options={"task": task})
    for _ in range(n):
        o, r, *_ = env.step(action)
        next_s.append(int(o.argmax()))
        rew_s.append(r)
        env.reset()
    p = task.transitions[0, action]
    for name, states in (("batched", next_b), ("single", np.array(next_s))):
        counts = np.bincount(states, minlength=10)
        keep = p * n >= 5  # chi-square needs expected counts >= 5; pool the rest
        f_obs = np.append(counts[keep], counts[~keep].sum())
        f_exp = np.append(p[keep] * n, p[~keep].sum() * n)
        if f_exp[-1] == 0:
            f_obs, f_exp = f_obs[:-1], f_exp[:-1]
        assert stats.chisquare(f_obs, f_exp).pvalue > 1e-3, name
    mu = task.mean_rewards[0, action]
    for rewards in (rew_b, np.array(rew_s)):
        assert stats.ttest_1samp(rewards, mu).pvalue > 1e-3
        assert abs(rewards.std() - 1.0) < 0.05
    assert stats.ks_2samp(rew_b, rew_s).pvalue > 1e-3


def test_int_seed_gives_subenv_i_seed_plus_i() -> None:
    a = metarl.make_vec("metarl/Bandit-v0", num_envs=3)
    b = metarl.make_vec("metarl/Bandit-v0", num_envs=3)
    tasks = a.sample_tasks(3, seed=0)
    a.reset(seed=10, options={"tasks": tasks})
    b.reset(seed=[10, 11, 12], options={"tasks": tasks})
    acts = np.array([0, 1, 2])
    for _ in range(20):
        assert np.array_equal(a.step(acts)[1], b.step(acts)[1])


def test_next_step_autoreset_semantics() -> None:
    venv = metarl.make_vec("metarl/Bandit-v0", num_envs=2, horizon=3)
    venv.reset(seed=0)
    acts = np.zeros(2, dtype=np.int64)
    truncs = [venv.step(acts)[3].tolist() for _ in range(3)]
    assert truncs == [[False, False], [False, False], [True, True]]
    _, reward, term, trunc, _ = venv.step(acts)  # the autoreset step
    assert reward.tolist() == [0.0, 0.0] and not term.any() and not trunc.any()
    assert [venv.step(acts)[3].tolist() for _ in range(3)][-1] == [True, True]


def test_same_step_autoreset_and_partial_reset() -> None:
    venv = metarl.make_vec("metarl/Navigation2D-v0", num_envs=2, max_episode_steps=2, autoreset_mode="SameStep")
    venv.reset(seed=0)
    step = np.array([[0.1, 0.0], [0.0, 0.1]], dtype=np.float32)
    venv.step(step)
    obs, _, _, trunc, info = venv.step(step)
    assert trunc.all() and info["_final_obs"].all()
    np.testing.assert_allclose(info["final_obs"], [[0.2, 0.0], [0.0, 0.2]], atol=1e-7)
    np.testing.assert_array_equal(obs, np.zeros((2, 2)))
    venv.step(step)
    obs, _ = venv.reset(options={"reset_mask": np.array([True, False])})
    np.testing.assert_allclose(obs, [[0.0, 0.0], [0.0, 0.1]], atol=1e-7)
    with pytest.raises(ConfigError, match="reset_mask"):
        venv.reset(options={"reset_mask": [1, 0]})


# --- property tests: sampled tasks lie in their declared bounds --------------------------------
@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**63), st.integers(0, 50), st.floats(-5, 5), st.floats(0, 5))
def test_navigation_tasks_in_bounds(seed: int, n: int, low: float, width: float) -> None:
    dist = Navigation2DDistribution((low, low + width))
    tasks = dist.sample(np.random.default_rng(seed), n)
    assert len(tasks) == n
    assert all(dist.contains(t) and (low <= t.goal).all() and (t.goal <= low + width).all() for t in tasks)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**63), st.integers(0, 30), st.integers(2, 60))
def test_bandit_tasks_in_bounds(seed: int, n: int, k: int) -> None:
    dist = BanditDistribution(k)
    for t in dist.sample(np.random.default_rng(seed), n):
        assert dist.contains(t) and t.probs.shape == (k,) and ((0 <= t.probs) & (t.probs <= 1)).all()


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**63), st.integers(0, 10), st.integers(1, 12), st.integers(1, 6))
def test_mdp_tasks_in_bounds(seed: int, n: int, S: int, A: int) -> None:
    dist = TabularMDPDistribution(S, A)
    for t in dist.sample(np.random.default_rng(seed), n):
        assert dist.contains(t)
        np.testing.assert_allclose(t.transitions.sum(-1), 1.0, atol=1e-9)
        assert t.mean_rewards.shape == (S, A)


# --- relabeling (RL²'s evaluation scores each trial on a relabeled copy of its held-out task) ----
def test_bandit_relabel_permutes_the_arms_uniformly() -> None:
    dist = BanditDistribution(5)
    task = dist.held_out()[0]
    rng = np.random.default_rng(0)
    copies = [dist.relabel(task, rng) for _ in range(5000)]
    assert all(dist.contains(c) and sorted(c.probs) == sorted(task.probs) for c in copies)
    firsts = np.array([int(np.flatnonzero(task.probs == c.probs[0])[0]) for c in copies])
    counts = np.bincount(firsts, minlength=5)  # which original arm comes first: uniform (1000 each)
    assert stats.chisquare(counts).pvalue > 1e-3, counts
    again = [dist.relabel(task, np.random.default_rng(0)) for _ in range(1)]
    np.testing.assert_array_equal(again[0].probs, copies[0].probs)  # drawn from the rng alone


def _optimal_value(P: np.ndarray, mu: np.ndarray, horizon: int) -> float:
    """Expected return of the optimal ``horizon``-step policy from state 0 (backward induction)."""
    V = np.zeros(P.shape[0])
    for _ in range(horizon):
        V = (mu + P @ V).max(axis=1)
    return float(V[0])


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**63), st.integers(2, 8), st.integers(1, 5))
def test_mdp_relabel_is_the_same_mdp_under_new_state_and_action_names(seed: int, S: int, A: int) -> None:
    dist = TabularMDPDistribution(S, A)
    rng = np.random.default_rng(seed)
    task = dist.sample(rng, 1)[0]
    copy = dist.relabel(task, rng)
    assert dist.contains(copy)
    np.testing.assert_allclose(copy.transitions.sum(-1), 1.0, atol=1e-12)
    # the start state keeps its name and its actions (in some order); the optimal value is unchanged
    assert sorted(copy.mean_rewards[0]) == sorted(task.mean_rewards[0])
    assert sorted(copy.mean_rewards.ravel()) == sorted(task.mean_rewards.ravel())
    assert _optimal_value(copy.transitions, copy.mean_rewards, 10) == pytest.approx(
        _optimal_value(task.transitions, task.mean_rewards, 10), rel=1e-12)


def test_mdp_relabel_moves_states_and_actions() -> None:
    dist = TabularMDPDistribution()
    task = dist.held_out()[0]
    copy = dist.relabel(task, np.random.default_rng(1))
    assert not np.array_equal(copy.mean_rewards, task.mean_rewards)
    # state 0's row of means is a permutation of the original's; some other state moved
    assert not np.array_equal(np.sort(copy.mean_rewards[1:], axis=1), np.sort(task.mean_rewards[1:], axis=1))


def test_families_without_a_symmetry_relabel_to_the_task_itself() -> None:
    dist = Navigation2DDistribution()
    task = dist.held_out()[0]
    assert dist.relabel(task, np.random.default_rng(0)) is task


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.integers(-5, 1), st.floats(allow_nan=True), st.text(max_size=3), st.booleans()))
def test_invalid_family_parameters_rejected(num_arms) -> None:
    with pytest.raises(ConfigError, match="num_arms"):
        BanditDistribution(num_arms)
