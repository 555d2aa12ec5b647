"""The batched rollout loop: shapes, masks, and agreement with stepping the env by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import metarl
from metarl.envs import Navigation2DTask
from metarl.sampling import collect


def test_collect_records_exactly_what_the_env_returns() -> None:
    N, T = 4, 12
    tasks = metarl.make("metarl/Navigation2D-v0").unwrapped.sample_tasks(N, seed=0)
    gen = torch.Generator().manual_seed(0)
    actions = torch.rand((T, N, 2), generator=gen) * 0.2 - 0.1

    def act(obs: torch.Tensor, t: int):
        return actions[t], {"t": torch.full((obs.shape[0],), t), "first_obs": obs[:, 0].clone()}

    ro = collect(metarl.make_vec("metarl/Navigation2D-v0", N), act, T, tasks=tasks, seed=3)
    venv = metarl.make_vec("metarl/Navigation2D-v0", N)
    obs, _ = venv.reset(seed=3, options={"tasks": tasks})
    for t in range(T):
        assert torch.equal(ro.obs[t], torch.as_tensor(obs))
        obs, reward, term, trunc, _ = venv.step(actions[t].numpy())
        assert torch.equal(ro.rewards[t], torch.as_tensor(reward, dtype=torch.float32))
        assert torch.equal(ro.terminated[t], torch.as_tensor(term))
    assert torch.equal(ro.next_obs, torch.as_tensor(obs))
    assert ro.extras["t"][:, 0].tolist() == list(range(T))
    assert torch.equal(ro.extras["first_obs"], ro.obs[..., 0])
    assert ro.obs.shape == (T, N, 2) and ro.actions.shape == (T, N, 2) and ro.valid.shape == (T, N)


def test_valid_mask_covers_only_the_first_episode() -> None:
    tasks = [Navigation2DTask(goal=[0.2, 0.0]), Navigation2DTask(goal=[0.45, 0.45])]

    def act(obs: torch.Tensor, t: int):
        return torch.tensor([[0.1, 0.0], [0.0, 0.0]]), {}

    ro = collect(metarl.make_vec("metarl/Navigation2D-v0", 2, max_episode_steps=6), act, 10, tasks=tasks, seed=0)
    # env 0 reaches its goal on step 2 (terminal, counted), then autoresets: steps 2.. are masked
    assert ro.terminated[:, 0].tolist()[:2] == [False, True]
    assert ro.valid[:, 0].tolist() == [1, 1] + [0] * 8
    # env 1 never reaches its goal: truncated after 6 steps
    assert ro.valid[:, 1].tolist() == [1] * 6 + [0] * 4
    expected = -(np.sqrt(0.45**2 + 0.45**2) * 6)
    assert ro.episode_returns[1].item() == pytest.approx(expected, rel=1e-6)
    assert ro.episode_returns[0].item() == pytest.approx(-0.1, rel=1e-6)


def test_discrete_actions_are_long_and_continue_without_reset() -> None:
    venv = metarl.make_vec("metarl/Bandit-v0", 3, horizon=4)

    def act(obs: torch.Tensor, t: int):
        return torch.full((obs.shape[0],), t % 5), {}

    first = collect(venv, act, 2, seed=0)
    assert first.actions.dtype == torch.long and first.actions.shape == (2, 3)
    rest = collect(venv, act, 2, reset=False)
    assert rest.truncated[-1].all()  # the 4-pull episode ends at the second call's last step
    with pytest.raises(ValueError, match="need reset=True"):
        collect(venv, act, 2, reset=False, seed=0)
