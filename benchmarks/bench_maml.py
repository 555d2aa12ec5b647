"""MAML-RL benchmark: time split per meta-iteration, batched vs looped inner step, peak memory.

Run by hand (not in CI)::

    python benchmarks/bench_maml.py                       # everything below, markdown on stdout
    python benchmarks/bench_maml.py --only split --iterations 3
    python benchmarks/bench_maml.py --only split --cases hcv --project 20 --contend   # issue 10
    python benchmarks/bench_maml.py --only inner
    python benchmarks/bench_maml.py --only rss

What it measures (issues 4 and 10):

- ``split``: seconds per meta-iteration spent sampling / adapting (inner steps for the sampling
  policies) / in the outer update (and, for TRPO, the update's gradient / conjugate-gradient /
  line-search phases), for the default config, the Navigation2D paper preset and,
  when registered, the HalfCheetahVel paper preset (40 tasks x 20 episodes x 200 steps), each also
  with ``cg_subsample: 4`` and with ``update_task_groups: 1`` (the update on one thread: the
  computation before the task groups), and the Navigation2D preset with the paper's REINFORCE
  inner loss (``nav-rf``; the preset's own is DiCE since 2026-11-24); the iteration time as a
  ratio of its own sampling time (target <= 1.3) and the time a 500-iteration run would take at the measured pace (``--project N`` measures N
  iterations after the warm-up). ``--contend`` runs every case a second time with a CPU-bound
  busy process beside it (started before, killed after), so idle and contended figures come from
  one command. ``--cases`` picks cases by key.
- ``inner``: one inner step for 40 tasks as one ``vmap(grad(...))`` vs a Python loop of
  per-task ``grad`` calls on the same data (target >= 5x), without and with the graph the
  second-order meta-gradient needs.
- ``rss``: peak resident memory of one training iteration plus a 3-step evaluation per preset, each in
  a fresh subprocess (targets: default < 2 GiB, HalfCheetahVel preset < 8 GiB).

Torch runs single-threaded unless ``--threads`` says otherwise (the project's machines are shared
2-core boxes, where intra-op threads contend); the TRPO update's task groups
(``update_task_groups``) run on one thread per usable core as in training, so ``taskset -c 0``
gives the one-core figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import torch

import metarl
from metarl.agents.maml import MAML, MAMLConfig, TaskBatch

SPLIT_CASES = [
    ("default", "default config (Navigation2D)", None, {}),
    ("nav", "maml-trpo-navigation2d (paper)", "maml-trpo-navigation2d", {}),
    ("nav-rf", "maml-trpo-navigation2d, inner_estimator=reinforce (the paper's; the preset's before 2026-11-24)",
     "maml-trpo-navigation2d", {"inner_estimator": "reinforce"}),
    ("nav-k4", "maml-trpo-navigation2d, cg_subsample=4", "maml-trpo-navigation2d", {"cg_subsample": 4}),
    ("nav-g1", "maml-trpo-navigation2d, update_task_groups=1 (serial update)", "maml-trpo-navigation2d", {"update_task_groups": 1}),
    ("hcv", "maml-trpo-halfcheetah-vel (paper)", "maml-trpo-halfcheetah-vel", {}),
    ("hcv-g1", "maml-trpo-halfcheetah-vel, update_task_groups=1 (serial update)", "maml-trpo-halfcheetah-vel", {"update_task_groups": 1}),
    ("hcv-k4", "maml-trpo-halfcheetah-vel, cg_subsample=4", "maml-trpo-halfcheetah-vel", {"cg_subsample": 4}),
]

#: Meta-iterations of the MAML paper's locomotion runs that the projection is for (issue 10).
PROJECT_ITERATIONS = 500


def _agent(preset: str | None, overrides: dict, seed: int = 0) -> MAML:
    if preset is None:
        return MAML("metarl/Navigation2D-v0", replace(MAMLConfig(), **overrides), seed=seed)
    return MAML.from_preset(preset, seed=seed, **overrides)


def _registered(preset: str | None) -> bool:
    if preset is None:
        return True
    from metarl.config import load_preset

    return load_preset(preset).env in metarl.registered_envs()


class _BusyProcess:
    """A CPU-bound competitor (one busy Python process) for the contended figures."""

    def __enter__(self) -> _BusyProcess:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()


def _split_row(label: str, preset: str | None, overrides: dict, iterations: int, load: str) -> str:
    agent = _agent(preset, overrides)
    cfg = agent.config
    ms = []
    for _ in range(iterations + 1):  # the first iteration warms up (allocations, vmap tracing)
        ms.append(agent.train_iteration())
        print(f"  {label} ({load}): {ms[-1]['time/iteration_s']:.2f} s", file=sys.stderr, flush=True)
    warm_up, ms = ms[0]["time/iteration_s"], ms[1:]
    mean = {k: float(np.mean([m[k] for m in ms])) for k in ms[0]}
    it, sample = mean["time/iteration_s"], mean["time/sample_s"]
    projection_h = (warm_up + (PROJECT_ITERATIONS - 1) * it) / 3600
    phases = ("time/outer_grad_s", "time/outer_cg_s", "time/outer_line_search_s")
    outer_split = " / ".join(f"{mean[k]:.2f}" for k in phases) if all(k in mean for k in phases) else "-"
    return (
        f"| {label} | {load} | {cfg.meta_batch_size} x {cfg.episodes_per_task} x {agent.horizon} | {len(ms)} | {it:.2f} "
        f"| {sample:.2f} | {mean['time/adapt_s']:.3f} | {mean['time/outer_s']:.2f} | {outer_split} | {it / sample:.2f} "
        f"| {projection_h:.2f} | {mean['adapt/gain']:+.2f} |"
    )


def bench_split(iterations: int, cases: list[str] | None = None, contend: bool = False) -> str:
    rows = ["| setting | added load | M x E x T | timed it. | iteration s | sample s | adapt s | outer s | outer: gradient / CG / line search s "
            f"| iteration / sample | {PROJECT_ITERATIONS} it. projected (h) | post - pre return |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, label, preset, overrides in SPLIT_CASES:
        if cases and key not in cases:
            continue
        if not _registered(preset):
            rows.append(f"| {label} | | env not registered | | | | | | | | | |")
            continue
        rows.append(_split_row(label, preset, overrides, iterations, "as is"))
        if contend:
            with _BusyProcess():
                rows.append(_split_row(label, preset, overrides, iterations, "+1 busy process"))
    return "\n".join(rows)


def _inner_data(agent: MAML, M: int, T: int, E: int, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    obs_dim = agent.venv.single_observation_space.shape[0]
    act_dim = agent.venv.single_action_space.shape[0]
    return TaskBatch(
        obs=torch.randn(M, T, E, obs_dim, generator=g),
        actions=torch.randn(M, T, E, act_dim, generator=g),
        advantages=torch.randn(M, T, E, generator=g),
        mask=torch.ones(M, T, E),
        episode_returns=torch.zeros(M, E),
    )


def _time(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _inner_pair(agent: MAML, batch: TaskBatch, params: dict, create_graph: bool, M: int):
    """(batched, looped) closures computing the same inner step for M tasks."""
    grad_fn = torch.func.grad(agent._inner_loss)

    def batched() -> None:
        p = {k: v.unsqueeze(0).expand(M, *v.shape) for k, v in params.items()}
        out = agent._adapt_step(p, batch, 0.1, first_order=not create_graph, iteration=0)
        if create_graph:  # use the graph, as the meta-gradient does
            torch.autograd.grad(sum(v.sum() for v in out.values()), list(params.values()))

    def looped() -> None:
        outs = []
        for m in range(M):
            g = grad_fn(params, batch.obs[m], batch.actions[m], batch.advantages[m], batch.mask[m])
            outs.append({k: params[k] - 0.1 * g[k] for k in params})
        if create_graph:
            torch.autograd.grad(sum(v.sum() for o in outs for v in o.values()), list(params.values()))

    return batched, looped


def bench_inner(repeat: int) -> str:
    rows = ["| data per task (T x E) | policy | graph | batched vmap(grad) ms | per-task loop ms | speed-up |", "|---|---|---|---|---|---|"]
    M = 40
    cases = [("metarl/Navigation2D-v0", 100, 20, (100, 100))]
    if "metarl/HalfCheetahVel-v0" in metarl.registered_envs():
        cases.append(("metarl/HalfCheetahVel-v0", 200, 20, (100, 100)))
    cases.append(("metarl/Navigation2D-v0", 10, 5, (32, 32)))
    for env_id, T, E, hidden in cases:
        agent = MAML(env_id, MAMLConfig(meta_batch_size=1, episodes_per_task=1, hidden_sizes=hidden), seed=0)
        batch = _inner_data(agent, M, T, E)
        base = {k: v.detach() for k, v in agent.params.items()}
        for create_graph in (False, True):
            params = {k: v.clone().requires_grad_(create_graph) for k, v in base.items()}
            batched, looped = _inner_pair(agent, batch, params, create_graph, M)
            tb, tl = _time(batched, repeat), _time(looped, repeat)
            rows.append(f"| {env_id.split('/')[1]} {T} x {E} | {hidden} | {'second order' if create_graph else 'none'} "
                        f"| {tb * 1e3:.1f} | {tl * 1e3:.1f} | {tl / tb:.2f}x |")
            print(f"  inner {env_id} {T}x{E} graph={create_graph}: {tl / tb:.2f}x", file=sys.stderr, flush=True)
    return "\n".join(rows)


RSS_CASES = [("default config (Navigation2D)", "default"), ("maml-trpo-navigation2d", "maml-trpo-navigation2d"),
             ("maml-trpo-halfcheetah-vel", "maml-trpo-halfcheetah-vel"), ("maml-trpo-ant-vel", "maml-trpo-ant-vel"),
             ("maml-trpo-bandit-k5-n100", "maml-trpo-bandit-k5-n100"), ("maml-trpo-tabular-mdp", "maml-trpo-tabular-mdp")]


def rss_child(name: str) -> None:
    torch.set_num_threads(1)
    agent = _agent(None if name == "default" else name, {})
    agent.train_iteration()
    agent.evaluate(agent.held_out_tasks()[: agent.config.meta_batch_size], seed=0, num_steps=3)
    print(json.dumps({"maxrss_kib": _peak_rss_kib()}))


def _peak_rss_kib() -> int:
    # VmHWM belongs to this exec'd image; ru_maxrss would include the forking parent's peak.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bench_rss() -> str:
    rows = ["| preset | peak RSS (MiB) | one iteration + 3-step eval |", "|---|---|---|"]
    for label, name in RSS_CASES:
        if not _registered(None if name == "default" else name):
            rows.append(f"| {label} | env not registered | |")
            continue
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--rss-child", name], capture_output=True, text=True, check=True)
        kib = json.loads(out.stdout.strip().splitlines()[-1])["maxrss_kib"]
        rows.append(f"| {label} | {kib / 1024:.0f} | {time.perf_counter() - t0:.0f} s wall |")
        print(f"  rss {name}: {kib / 1024:.0f} MiB", file=sys.stderr, flush=True)
    return "\n".join(rows)


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["split", "inner", "rss"], action="append")
    ap.add_argument("--iterations", type=int, default=2, help="timed iterations per setting (after one warm-up)")
    ap.add_argument("--project", type=int, metavar="N",
                    help=f"time N iterations per setting (overrides --iterations) for the {PROJECT_ITERATIONS}-iteration projection")
    ap.add_argument("--contend", action="store_true", help="also time every setting beside a CPU-bound busy process")
    ap.add_argument("--cases", nargs="+", choices=[c[0] for c in SPLIT_CASES], help="split cases to run (default: all)")
    ap.add_argument("--repeat", type=int, default=5, help="repeats of the inner-step timing (best kept)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    torch.set_num_threads(args.threads)
    parts = args.only or ["split", "inner", "rss"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} torch thread(s)\n")
    if "split" in parts:
        n = args.project or args.iterations
        split = bench_split(n, args.cases, args.contend)
        print(f"### Time per meta-iteration (mean of {n} after a warm-up; load average before: {_loadavg()})\n\n{split}\n")
    if "inner" in parts:
        print(f"### One inner step for 40 tasks: batched vs per-task loop (best of {args.repeat})\n\n{bench_inner(args.repeat)}\n")
    if "rss" in parts:
        print(f"### Peak memory\n\n{bench_rss()}\n")


if __name__ == "__main__":
    main()
