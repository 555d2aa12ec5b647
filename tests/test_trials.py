"""The RL² trial wrappers: observation layout, episode and trial boundaries, task sampling."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import metarl
from metarl.errors import ConfigError, TaskNotSetError
from metarl.trials import TrialEnv, TrialVecEnv


def _bandit(num_trials: int = 3, episodes: int = 2, horizon: int = 2, **kw) -> TrialVecEnv:
    return TrialVecEnv.make("metarl/Bandit-v0", num_trials, episodes, num_arms=3, horizon=horizon, **kw)


def test_observation_layout_previous_action_reward_done() -> None:
    env = _bandit(num_trials=2, episodes=2, horizon=2)
    probs = {"type": "BanditTask", "probs": [0.0, 1.0, 0.0]}
    obs, info = env.reset(seed=0, options={"tasks": [probs, probs]})
    assert obs.shape == (2, 1 + 3 + 2) and obs.dtype == np.float32
    assert np.all(obs == 0.0) and info["trial_start"].all()
    obs, reward, term, trunc, info = env.step(np.array([1, 2]))
    np.testing.assert_array_equal(reward, [1.0, 0.0])
    np.testing.assert_array_equal(obs[:, 1:4], [[0, 1, 0], [0, 0, 1]])  # one-hot previous action
    np.testing.assert_array_equal(obs[:, 4], [1.0, 0.0])  # previous reward
    np.testing.assert_array_equal(obs[:, 5], [0.0, 0.0])  # episode still running
    assert not term.any() and not info["episode_end"].any()
    # The second pull ends episode 0 (horizon 2): done flag set, trial continues.
    obs, reward, term, trunc, info = env.step(np.array([0, 1]))
    assert info["episode_end"].all() and info["episode_truncated"].all() and not term.any()
    np.testing.assert_array_equal(obs[:, 5], [1.0, 1.0])
    np.testing.assert_array_equal(env.episode_index, [1, 1])
    assert not env.trial_start.any()


def test_trial_end_terminates_and_starts_a_new_task() -> None:
    env = _bandit(num_trials=4, episodes=2, horizon=2)
    env.reset(seed=3)
    first_tasks = env.get_tasks()
    for step in range(4):
        obs, reward, term, trunc, info = env.step(np.zeros(4, dtype=int))
        assert term.all() == (step == 3) and not trunc.any()
    assert info["trial_start"].all() and env.trial_start.all()
    assert np.all(obs == 0.0)  # fresh trial: no previous action/reward/done
    assert info["_final_obs"].all() and info["final_obs"][:, 5].tolist() == [1.0] * 4
    new_tasks = env.get_tasks()
    assert all(a != b for a, b in zip(first_tasks, new_tasks, strict=True))
    np.testing.assert_array_equal(env.episode_index, 0)


def test_same_seed_same_tasks_and_rewards() -> None:
    def run() -> tuple[list, np.ndarray]:
        env = _bandit(num_trials=5, episodes=3, horizon=2)
        env.reset(seed=11)
        rewards = [env.step(np.arange(5) % 3)[1] for _ in range(12)]  # two trials
        return [t.to_json() for t in env.get_tasks()], np.stack(rewards)

    (t1, r1), (t2, r2) = run(), run()
    assert t1 == t2
    np.testing.assert_array_equal(r1, r2)


def test_task_sampler_and_no_autoreset() -> None:
    fixed = metarl.make_vec("metarl/Bandit-v0", 1, num_arms=3).held_out_tasks()[:1]
    env = _bandit(num_trials=2, episodes=1, horizon=1, task_sampler=lambda n: fixed * n, autoreset=False)
    env.reset(seed=0)
    assert env.get_tasks() == fixed * 2
    _, _, term, _, _ = env.step(np.zeros(2, dtype=int))
    assert term.all() and not env.trial_start.any()
    with pytest.raises(TaskNotSetError, match="have ended"):
        env.step(np.zeros(2, dtype=int))


def test_tabular_mdp_episode_resets_to_start_state_inside_trial() -> None:
    env = TrialVecEnv.make("metarl/TabularMDP-v0", 3, 2, max_episode_steps=4)
    obs, _ = env.reset(seed=0)
    for _ in range(4):
        obs, _, term, _, info = env.step(np.ones(3, dtype=int))
    assert info["episode_end"].all() and not term.any()
    np.testing.assert_array_equal(obs[:, :10].argmax(1), 0)  # back in state 0 for episode 1
    np.testing.assert_array_equal(obs[:, -1], 1.0)


def test_continuous_actions_are_fed_back_raw() -> None:
    env = TrialVecEnv.make("metarl/Navigation2D-v0", 2, 2, max_episode_steps=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 2 + 2 + 2)
    act = np.array([[0.05, -0.02], [0.0, 0.1]])
    obs, reward, _, _, _ = env.step(act)
    np.testing.assert_allclose(obs[:, 2:4], act, rtol=1e-6)
    np.testing.assert_allclose(obs[:, 4], reward, rtol=1e-6)


def test_bad_configuration_is_a_typed_error() -> None:
    plain = metarl.make_vec("metarl/Bandit-v0", 2)
    with pytest.raises(ConfigError, match="autoreset_mode"):
        TrialVecEnv(plain, 2)
    disabled = metarl.make_vec("metarl/Bandit-v0", 2, autoreset_mode=AutoresetMode.DISABLED)
    with pytest.raises(ConfigError, match="episodes_per_trial must be a positive int, got 0"):
        TrialVecEnv(disabled, 0)
    with pytest.raises(ConfigError, match="num_trials"):
        TrialVecEnv.make("metarl/Bandit-v0", -1, 2)
    with pytest.raises(ConfigError, match="batched meta-env"):
        TrialVecEnv(gym.make("CartPole-v1"), 2)  # type: ignore[arg-type]
    env = _bandit()
    with pytest.raises(TaskNotSetError):
        env.step(np.zeros(3, dtype=int))
    with pytest.raises(ConfigError, match="unknown reset option"):
        env.reset(options={"task": None})


def test_single_trial_env_passes_check_env_and_spans_one_trial() -> None:
    env = TrialEnv("metarl/TabularMDP-v0", episodes_per_trial=3, max_episode_steps=5)
    with pytest.warns(UserWarning):  # only Gymnasium's notes on the unbounded Box
        check_env(env, skip_render_check=True)
    task = env.held_out_tasks()[2]
    env.reset(seed=0, options={"task": task})
    assert env.get_task() == task
    steps, terminated = 0, False
    while not terminated:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        assert not truncated
    assert steps == 15
    # A new reset draws a new training task (seeded: reproducible).
    env.reset(seed=5)
    t1 = env.get_task()
    env.reset(seed=5)
    assert env.get_task() == t1 and t1 != task
