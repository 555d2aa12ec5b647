"""Sampler benchmarks: what the seam costs locally, and what Ray costs and buys.

Run (prints markdown tables and the fitted per-call costs; ``--short`` for a loaded machine)::

    python benchmarks/bench_samplers.py            # full: paper-size meta-batches
    python benchmarks/bench_samplers.py --short    # small meta-batches, fewer repeats

Measures, in one process:

1. **local before/after**: MAML's sampling as it was before the seam (a vmapped per-task
   closure through :func:`metarl.sampling.collect`) against :class:`~metarl.samplers.LocalSampler`
   with a :class:`~metarl.samplers.TaskPolicySpec`, interleaved, median of repeats: the ratio.
2. **Ray startup**: ``ray.init(num_cpus=2)`` and starting 1 and 2 actors.
3. **per-call latency**: a one-step, two-sub-env meta-batch locally and through Ray (the fixed
   cost of ``ray.put`` + submit + ``ray.wait`` + transfer + concatenation).
4. **throughput** (env steps/s) of a Navigation2D and a HalfCheetahVel MAML meta-batch: local,
   Ray with 1 and with 2 workers.

The projection in ``RESULTS.md`` (section on Ray) is computed from these figures (see :func:`projection`).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import metarl
from metarl.policies import batched_dist_params, make_policy
from metarl.samplers import EnvSpec, LocalSampler, RaySampler, TaskPolicySpec
from metarl.sampling import collect


def _setup(env_id: str, M: int, E: int, hidden=(100, 100)):
    venv = metarl.make_vec(env_id, 1)
    policy = make_policy(venv.single_observation_space, venv.single_action_space, hidden, "relu")
    p = policy.init_params(torch.Generator().manual_seed(0))
    params = {k: v.unsqueeze(0).expand(M, *v.shape) for k, v in p.items()}
    low = torch.as_tensor(venv.single_action_space.low, dtype=torch.float32)
    high = torch.as_tensor(venv.single_action_space.high, dtype=torch.float32)
    tasks = venv.unwrapped.sample_tasks(M, seed=0)
    return TaskPolicySpec(policy, params, E, 0, low, high), tasks


def _closure_sample(env, spec: TaskPolicySpec, tasks, E: int, T: int, seed: int):
    """MAML's sampling before the seam (agents/maml.py ``_sample`` at 2ee872e)."""
    M = len(tasks)
    gen = torch.Generator().manual_seed(seed)

    def act(obs, t):
        dist = batched_dist_params(spec.policy, spec.params, obs.reshape(M, E, -1))
        dist = tuple(d.reshape(M * E, *d.shape[2:]) for d in dist)
        raw = spec.policy.sample(dist, gen)
        return torch.clamp(raw, spec.low, spec.high), {"raw_action": raw}

    return collect(env, act, T, tasks=[t for t in tasks for _ in range(E)], seed=seed)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def local_before_after(env_id: str, M: int, E: int, T: int, repeats: int) -> dict:
    spec, tasks = _setup(env_id, M, E)
    env_spec = EnvSpec(env_id)
    sampler = LocalSampler()
    env = sampler.env(env_spec, M * E)  # the same env object for both paths
    before, after = [], []
    for r in range(repeats):  # interleaved, so load drifts hit both alike
        t0 = time.perf_counter()
        _closure_sample(env, spec, tasks, E, T, r)
        before.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sampler.sample(env_spec, spec, tasks, episodes=E, horizon=T, seed=r)
        after.append(time.perf_counter() - t0)
    b, a = statistics.median(before), statistics.median(after)
    # The minimum is the figure least touched by other processes on a shared machine.
    return {"env": env_id, "M": M, "E": E, "T": T, "before_s": b, "after_s": a, "after/before": a / b,
            "min after/before": min(after) / min(before)}


def throughput(env_id: str, M: int, E: int, T: int, samplers: dict, repeats: int) -> list[dict]:
    spec, tasks = _setup(env_id, M, E)
    env_spec = EnvSpec(env_id)
    rows = []
    for name, sampler in samplers.items():
        sampler.sample(env_spec, spec, tasks, episodes=E, horizon=T, seed=0)  # warm: envs built, actors hot
        t = _median_time(lambda s=sampler: s.sample(env_spec, spec, tasks, episodes=E, horizon=T, seed=1), repeats)
        rows.append({"env": env_id, "sampler": name, "N": M * E, "T": T, "call_s": t, "steps_per_s": M * E * T / t})
    return rows


def latency(samplers: dict, repeats: int) -> list[dict]:
    spec, tasks = _setup("metarl/Navigation2D-v0", 2, 1)
    env_spec = EnvSpec("metarl/Navigation2D-v0")
    out = []
    for name, sampler in samplers.items():
        sampler.sample(env_spec, spec, tasks, episodes=1, horizon=1, seed=0)
        t = _median_time(lambda s=sampler: s.sample(env_spec, spec, tasks, episodes=1, horizon=1, seed=0), repeats)
        out.append({"sampler": name, "call_ms": 1e3 * t})
    return out


def projection(local_steps_per_s: float, call_overhead_s: float, workers: int) -> float:
    """Env steps per call above which ``workers`` Ray workers beat one local process.

    Model: local time ``S / s``; Ray time ``c + S / (W s)`` (``c`` the measured fixed per-call
    cost, ``s`` one process's throughput, perfect split). Ray wins when ``S > c s W / (W - 1)``.
    """
    return call_overhead_s * local_steps_per_s * workers / (workers - 1)


def _table(rows: list[dict]) -> str:
    keys = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small meta-batches and few repeats (a loaded machine)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    short = args.short
    reps = 9 if short else 15
    nav = (20, 20, 100) if not short else (10, 10, 100)  # paper navigation: 20 tasks x 20 episodes x 100 steps
    cheetah = (40, 20, 200) if not short else (8, 5, 100)  # paper locomotion: 40 tasks x 20 episodes x 200 steps
    print(f"# bench_samplers ({'short' if short else 'full'}) on {platform.node()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, load average {os.getloadavg()}")

    print("\n## local sampling before vs after the seam (median of interleaved repeats)\n")
    print(_table([local_before_after("metarl/Navigation2D-v0", *nav, reps),
                  local_before_after("metarl/HalfCheetahVel-v0", *cheetah, max(3, reps // 2))]))

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray1 = RaySampler(1)
    start1 = time.perf_counter() - t0
    ray1.close()
    t0 = time.perf_counter()
    ray2 = RaySampler(2)
    start2 = time.perf_counter() - t0
    print("\n## Ray startup\n")
    print(_table([{"ray.init(num_cpus=2) s": init_s, "start 1 actor s": start1, "start 2 actors s": start2}]))

    local = LocalSampler()
    lat = latency({"local": local, "ray 2 workers": ray2}, reps * 4)
    tp = throughput("metarl/Navigation2D-v0", *nav, {"local": local, "ray 2 workers": ray2}, reps)
    tp += throughput("metarl/HalfCheetahVel-v0", *cheetah, {"local": local, "ray 2 workers": ray2}, max(3, reps // 2))
    ray2.close()
    ray1 = RaySampler(1)
    lat += latency({"ray 1 worker": ray1}, reps * 4)
    tp += throughput("metarl/Navigation2D-v0", *nav, {"ray 1 worker": ray1}, reps)
    tp += throughput("metarl/HalfCheetahVel-v0", *cheetah, {"ray 1 worker": ray1}, max(3, reps // 2))
    ray1.close()
    print("\n## per-call latency (2 sub-envs, 1 step)\n")
    print(_table(lat))
    print("\n## throughput (median call)\n")
    print(_table(sorted(tp, key=lambda r: (r["env"], r["sampler"]))))

    overhead = {r["sampler"]: r["call_ms"] / 1e3 for r in lat}
    c = overhead["ray 2 workers"] - overhead["local"]
    print("\n## break-even meta-batch size (env steps per call) for W workers vs one local process\n")
    rows = []
    for r in tp:
        if r["sampler"] != "local":
            continue
        for W in (2, 10, 100):
            rows.append({"env": r["env"], "local steps/s": r["steps_per_s"], "ray fixed cost s": c, "W": W,
                         "break-even steps": projection(r["steps_per_s"], c, W)})
    print(_table(rows))
    print(f"\nload average after: {os.getloadavg()}")
    ray.shutdown()


if __name__ == "__main__":
    main()
