"""Throughput of metarl's Meta-World batched env vs Meta-World's own ``SyncVectorEnv`` (issue 13).

Both step the same ML10 training classes (2 sub-envs per class, a meta-batch of 20 as Meta-World's
``Meta-World/ML10-train`` builds it) with uniform random actions, one process, no policy:

- ``metaworld`` — ``gym.make_vec("Meta-World/ML10-train", vector_strategy="sync", meta_batch_size=20)``
  (its wrappers: TimeLimit, AutoTerminateOnSuccess, RecordEpisodeStatistics, task select, checkpoint);
- ``metarl``    — ``metarl.make_vec("metarl/MetaWorld-ML10-v0", 20)`` with 20 training tasks.

Rates are env-steps/s of wall-clock time and of process CPU time; best of ``--repeats`` rounds
(interleaved, the machine is shared). Run in the Meta-World venv:

    python benchmarks/bench_metaworld.py --steps 200 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium as gym
import numpy as np


def _rate(step, actions: np.ndarray) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    for a in actions:
        step(a)
    w, c = time.perf_counter() - w0, time.process_time() - c0
    n = actions.shape[0] * actions.shape[1]
    return n / w, n / c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-envs", type=int, default=20)
    args = parser.parse_args()
    import metaworld  # noqa: F401  (registers Meta-World/* ids)

    import metarl

    N = args.num_envs
    # total_tasks_per_cls=40 lets 50 goals split over N/10 sub-envs per class for N = 10, 20, 200.
    mw = gym.make_vec("Meta-World/ML10-train", vector_strategy="sync", seed=0, meta_batch_size=N, total_tasks_per_cls=40)
    mw.call("sample_tasks")  # its task-select wrapper sets no task until asked
    mw.reset(seed=0)
    ours = metarl.make_vec("metarl/MetaWorld-ML10-v0", N)
    ours.reset(seed=0, options={"tasks": ours.unwrapped.sample_tasks(N, seed=0)})
    rng = np.random.default_rng(0)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeats):
        actions = rng.uniform(-1, 1, (args.steps, N, 4)).astype(np.float32)
        for name, env in (("metaworld", mw), ("metarl", ours)):
            rate = _rate(env.step, actions)
            best[name] = max(best.get(name, (0.0, 0.0)), rate)
    load = os.getloadavg()
    print(f"ML10 train classes, N={N}, {args.steps} steps x best of {args.repeats}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, (wall, cpu) in best.items():
        print(f"{name:10s} {wall:8.0f} env-steps/s wall {cpu:8.0f} /s cpu   ratio vs metaworld {wall / best['metaworld'][0]:.2f}")


if __name__ == "__main__":
    main()
