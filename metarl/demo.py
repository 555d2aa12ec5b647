"""A short demo: sample held-out tasks and run one batched rollout (``python -m metarl.demo``)."""

from __future__ import annotations

import time

import torch

import metarl
from metarl.sampling import collect


def main(env_id: str = "metarl/Navigation2D-v0", tasks_per_batch: int = 40, episodes: int = 20) -> None:
    env = metarl.make(env_id)
    held_out = env.unwrapped.held_out_tasks()
    print(f"{env_id}: {len(held_out)} held-out tasks, e.g. {held_out[0]}")
    tasks = env.unwrapped.sample_tasks(tasks_per_batch, seed=0)
    venv = metarl.make_vec(env_id, num_envs=tasks_per_batch * episodes)
    gen = torch.Generator().manual_seed(0)
    low = torch.as_tensor(venv.single_action_space.low)
    high = torch.as_tensor(venv.single_action_space.high)

    def random_policy(obs: torch.Tensor, t: int) -> tuple[torch.Tensor, dict]:
        u = torch.rand((obs.shape[0], *low.shape), generator=gen)
        return low + u * (high - low), {}

    start = time.perf_counter()
    horizon = venv.max_episode_steps
    rollout = collect(venv, random_policy, horizon, tasks=[t for t in tasks for _ in range(episodes)], seed=0)
    elapsed = time.perf_counter() - start
    steps = horizon * venv.num_envs
    print(
        f"batched rollout: {tasks_per_batch} tasks x {episodes} episodes x {horizon} steps = {steps} env-steps "
        f"in {elapsed:.3f} s ({steps / elapsed:,.0f} steps/s); "
        f"mean random-policy return {rollout.episode_returns.mean():.2f}"
    )


if __name__ == "__main__":
    main()
