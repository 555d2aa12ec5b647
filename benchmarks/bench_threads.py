"""Quick-start time under each torch thread setting, on an idle machine and beside a second job.

Runs the README's quick start (``metarl train maml``, ``metarl train rl2``: default config,
default env, the end-of-run adaptation check included) as a subprocess with ``--threads 1``,
``2`` and ``auto``, each

- **idle**: alone;
- **contended**: beside a second, identical training started at the same moment (the typical
  shared 2-core machine: another user's job, or a second seed).

It prints one markdown row per run: the command's wall time, the training time the run itself
recorded (``wall_s`` of its last ``metrics.jsonl`` row), seconds per iteration, and the 1-minute
load average (``os.getloadavg()``) before and after, so a figure taken on a busy machine shows
it. Take the figures on an otherwise idle machine, and compare ratios within one run.

    python benchmarks/bench_threads.py                    # full quick starts (several minutes)
    python benchmarks/bench_threads.py --iterations 2     # smoke test of the script
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def _command(agent: str, threads: str, out: Path, iterations: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "metarl.cli", "train", agent, "--threads", threads, "--out", str(out), "--log-every", "0"]
    if iterations is not None:
        cmd += ["--iterations", str(iterations)]
    return cmd


def _env() -> dict[str, str]:
    # The setting under test must be the only thing deciding torch's threads.
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def _train_seconds(run_dir: Path) -> tuple[float, int]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return float(rows[-1]["wall_s"]), len(rows)


def measure(agent: str, threads: str, jobs: int, iterations: int | None, root: Path) -> dict:
    """Start ``jobs`` identical trainings at once; return the first one's figures."""
    load_before = os.getloadavg()[0]
    outs = [root / f"{agent}-t{threads}-j{jobs}-{i}" for i in range(jobs)]
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(_command(agent, threads, out, iterations), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for out in outs
    ]
    walls = []
    for p in procs:
        text, _ = p.communicate()
        walls.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise SystemExit(f"`{' '.join(p.args)}` failed with exit code {p.returncode}:\n{text}")
    train_s, iters = _train_seconds(outs[0])
    return {
        "agent": agent, "threads": threads, "mode": "idle" if jobs == 1 else f"beside {jobs - 1} more",
        "wall_s": walls[0], "train_s": train_s, "iterations": iters,
        "load_before": load_before, "load_after": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", nargs="+", default=["maml", "rl2"])
    ap.add_argument("--threads", nargs="+", default=["1", "2", "auto"])
    ap.add_argument("--iterations", type=int, default=None, help="default: each agent's quick-start default")
    ap.add_argument("--jobs", nargs="+", type=int, default=[1, 2], help="trainings side by side (1 = idle)")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), "
          f"python {platform.python_version()}, torch {torch.__version__}\n")
    print("| agent | threads | mode | command s | train s | iterations | s/iteration | load before | load after |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench_threads-") as tmp:
        for agent in args.agents:
            for jobs in args.jobs:
                for threads in args.threads:
                    r = measure(agent, threads, jobs, args.iterations, Path(tmp))
                    print(f"| {r['agent']} | {r['threads']} | {r['mode']} | {r['wall_s']:.1f} | {r['train_s']:.1f} "
                          f"| {r['iterations']} | {r['train_s'] / r['iterations']:.2f} "
                          f"| {r['load_before']:.2f} | {r['load_after']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
