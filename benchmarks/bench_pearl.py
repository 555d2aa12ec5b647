"""PEARL's three context encoders on Navigation2D held-out tasks (same seeds, 95% CIs).

Run (prints a markdown table, writes JSON)::

    python benchmarks/bench_pearl.py --iterations 60 --seeds 0 1 2 --out benchmarks/results-pearl.json

For each encoder (``np``: product of Gaussians, ``mean``: prototype, ``attention``: learned-query
attention) and each seed, trains PEARL with the ``pearl-navigation2d`` preset for ``--iterations``
iterations, then evaluates on the env's 40 held-out tasks: every trial's first episode acts with
``z`` from the prior, the later ones with ``z`` from the posterior of the trial so far. Reported per
encoder: the prior episode's and the last posterior episode's mean return with the 95% Student-t CI
over tasks × seeds, their difference (the value of inference) with its paired CI, and the
training wall time. Every encoder sees the same seeds, training tasks and evaluation seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from metarl.agents.pearl import PEARL, PEARLConfig
from metarl.config import build_config, load_preset
from metarl.evaluation import mean_ci95

PRESET = "pearl-navigation2d"


def run(encoder: str, seed: int, iterations: int, eval_seed: int) -> dict:
    preset = load_preset(PRESET)
    cfg = build_config(PEARLConfig, {**preset.config, "encoder": encoder}, source=PRESET)
    agent = PEARL(preset.env, cfg, seed=seed, env_kwargs=preset.env_kwargs)
    t0 = time.perf_counter()
    agent.learn(iterations)
    train_s = time.perf_counter() - t0
    res = agent.evaluate(agent.held_out_tasks(), seed=eval_seed)
    return {"encoder": encoder, "seed": seed, "iterations": iterations, "train_s": train_s, "returns": res.returns.tolist()}


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for enc in dict.fromkeys(r["encoder"] for r in rows):
        R = np.concatenate([np.asarray(r["returns"]) for r in rows if r["encoder"] == enc])  # [tasks x seeds, E]
        prior, post = R[:, 0], R[:, -1]
        p, pci = mean_ci95(prior)
        q, qci = mean_ci95(post)
        g, gci = mean_ci95(post - prior)
        out.append({"encoder": enc, "prior": p, "prior_ci95": pci, "posterior": q, "posterior_ci95": qci, "gain": g, "gain_ci95": gci,
                    "curve": R.mean(0).round(3).tolist(), "train_s": float(np.mean([r["train_s"] for r in rows if r["encoder"] == enc]))})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--encoders", nargs="+", default=["np", "mean", "attention"])
    parser.add_argument("--eval-seed", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/results-pearl.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:  # seed-major: a partial run still compares the encoders on the same seeds
        for enc in args.encoders:
            rows.append(run(enc, seed, args.iterations, args.eval_seed))
            print(f"{enc} seed {seed}: curve {np.asarray(rows[-1]['returns']).mean(0).round(2).tolist()} ({rows[-1]['train_s']:.0f} s)", flush=True)
            summary = summarise(rows)
            with open(args.out, "w", encoding="utf-8") as f:
                json.dump({"preset": PRESET, "machine": platform.node(), "load_avg": os.getloadavg(), "rows": rows, "summary": summary}, f, indent=1)
    print("\n| encoder | prior episode | last posterior episode | gain (paired) | train s/run |\n|---|---|---|---|---|")
    for s in summarise(rows):
        print(f"| {s['encoder']} | {s['prior']:.2f} ± {s['prior_ci95']:.2f} | {s['posterior']:.2f} ± {s['posterior_ci95']:.2f} "
              f"| {s['gain']:+.2f} ± {s['gain_ci95']:.2f} | {s['train_s']:.0f} |")
    print(f"\n{len(args.seeds)} seed(s) x 40 held-out tasks, {args.iterations} iterations, load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
