"""The single trial env trains RL² with sb3-contrib's RecurrentPPO out of the box."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarl.trials import TrialEnv

sb3_contrib = pytest.importorskip("sb3_contrib", reason="the [sb3] extra is not installed")


def test_recurrent_ppo_runs_on_the_trial_env() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # restored below; see test_rl2_learning.py
    try:
        env = TrialEnv("metarl/Bandit-v0", episodes_per_trial=10, num_arms=3, horizon=1)
        model = sb3_contrib.RecurrentPPO(
            "MlpLstmPolicy", env, n_steps=50, batch_size=50, n_epochs=1, seed=0,
            policy_kwargs={"lstm_hidden_size": 16, "net_arch": []}, device="cpu",
        )
        model.learn(total_timesteps=150)
        # SB3's episodes are whole trials: its LSTM state resets at trial starts, not per pull.
        lengths = [ep["l"] for ep in model.ep_info_buffer]
        assert len(lengths) == 15 and set(lengths) == {10}
        obs, _ = env.reset(seed=0)
        state, start = None, np.array([True])
        for _ in range(10):
            action, state = model.predict(obs, state=state, episode_start=start)
            obs, _, terminated, _, _ = env.step(action)
            start = np.array([terminated])
        assert terminated
    finally:
        torch.set_num_threads(threads)
