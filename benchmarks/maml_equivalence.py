"""Is a MAML speed-up learning-neutral? Train two config variants on the same seeds and compare.

Run by hand (not in CI; minutes to hours)::

    python benchmarks/maml_equivalence.py                                  # cg_subsample 1 vs 4, Navigation2D paper preset
    python benchmarks/maml_equivalence.py --seeds 0 1 2 3 4 --iterations 30
    python benchmarks/maml_equivalence.py --preset maml-trpo-halfcheetah-vel --iterations 20 --seeds 0 1 2
    python benchmarks/maml_equivalence.py --a cg_subsample=1 --b cg_subsample=8 --set meta_batch_size=10
    python benchmarks/maml_equivalence.py --b cg_subsample=2 --b cg_subsample=4 --json nav.json   # two candidates, resumable

For every seed, variant A and each candidate (B, C, ...) train ``--iterations`` meta-iterations from the same
initial parameters and the same task draws (everything random is derived from the seed), then
adapt on the env's fixed held-out tasks (``--eval-steps`` gradient steps, the paper's α, α/2
schedule, one evaluation seed for all runs). Reported per variant: the held-out adaptation curve
(mean return after 0..K steps, mean over seeds with a 95% Student-t interval over seeds), the
training curve's last-five-iteration post-adaptation return, and the time split; and the paired
difference candidate - A per seed with its interval. ``--json`` keeps every finished run, so an
interrupted comparison resumes where it stopped. An approximation is learning-neutral on this budget
when the paired interval of the held-out returns contains 0 and is narrow compared with the gain
of adaptation (step K minus step 0).

Torch runs single-threaded unless ``--threads`` says otherwise (the project's shared 2-core boxes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np
import torch
import yaml

from metarl.agents.maml import MAML
from metarl.evaluation import mean_ci95


def _overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"override {item!r} is not KEY=VALUE")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def run_one(preset: str, seed: int, overrides: dict[str, Any], iterations: int, eval_steps: int, eval_seed: int) -> dict[str, Any]:
    agent = MAML.from_preset(preset, seed=seed, **overrides)
    t0 = time.perf_counter()
    history = agent.learn(iterations, progress=False)
    train_s = time.perf_counter() - t0
    held_out = agent.evaluate(agent.held_out_tasks(), seed=eval_seed, num_steps=eval_steps).returns  # [tasks, K + 1]
    return {
        "seed": seed,
        "held_out_curve": held_out.mean(0).tolist(),
        "post_return": [m["rollout/post_return"] for m in history],
        "time": {k: float(np.mean([m[k] for m in history])) for k in ("time/sample_s", "time/adapt_s", "time/outer_s", "time/iteration_s")},
        "train_s": train_s,
    }


def _fmt(values: list[float] | np.ndarray) -> str:
    mean, ci = mean_ci95(np.asarray(values, dtype=float))
    return f"{mean:.2f} ± {ci:.2f}" if ci is not None else f"{mean:.2f}"


def report(preset: str, variants: dict[str, dict], runs: dict[str, list[dict]], iterations: int) -> str:
    """Markdown: each variant's held-out curve, training curve and time split; each candidate minus A, paired by seed."""
    names = list(variants)
    K = len(runs["A"][0]["held_out_curve"]) - 1
    lines = [f"Preset `{preset}`, {iterations} iterations, seeds {[r['seed'] for r in runs['A']]}; "
             + "; ".join(f"{n} = {variants[n] or 'preset'}" for n in names) + ". Mean over seeds ± 95% t-interval over seeds.\n"]
    head = "| variant | " + " | ".join(f"held-out after {k} step(s)" for k in range(K + 1)) + " | train post-return (last 5 it.) | outer s/it. | iteration s/it. |"
    lines += [head, "|" + "---|" * (K + 5)]
    for name in names:
        rs = runs[name]
        cells = [_fmt([r["held_out_curve"][k] for r in rs]) for k in range(K + 1)]
        last = _fmt([float(np.mean(r["post_return"][-5:])) for r in rs])
        outer = np.mean([r["time"]["time/outer_s"] for r in rs])
        it = np.mean([r["time"]["time/iteration_s"] for r in rs])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {last} | {outer:.2f} | {it:.2f} |")
    for name in names[1:]:
        pairs = list(zip(runs["A"], runs[name], strict=True))
        diff = [_fmt([rb["held_out_curve"][k] - ra["held_out_curve"][k] for ra, rb in pairs]) for k in range(K + 1)]
        last = _fmt([float(np.mean(rb["post_return"][-5:]) - np.mean(ra["post_return"][-5:])) for ra, rb in pairs])
        lines.append(f"| {name} - A (paired) | " + " | ".join(diff) + f" | {last} | | |")
    gain = _fmt([r["held_out_curve"][K] - r["held_out_curve"][0] for r in runs["A"]])
    lines.append(f"\nAdaptation gain of A on held-out tasks (step {K} - step 0): {gain}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="maml-trpo-navigation2d")
    ap.add_argument("--a", nargs="*", default=["cg_subsample=1"], help="KEY=VALUE overrides of variant A (the reference)")
    ap.add_argument("--b", nargs="*", action="append",
                    help="KEY=VALUE overrides of a candidate; repeat --b for several candidates (B, C, ...; default: cg_subsample=4)")
    ap.add_argument("--set", nargs="*", default=[], help="KEY=VALUE overrides of every variant (e.g. a smaller budget)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--eval-steps", type=int, default=1)
    ap.add_argument("--eval-seed", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write every run's figures to this file as they finish; runs already in it are reused (resume)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    common = _overrides(args.set)
    candidates = args.b or [["cg_subsample=4"]]
    variants = {"A": _overrides(args.a)} | {chr(ord("B") + i): _overrides(c) for i, c in enumerate(candidates)}
    done: dict[str, dict] = {}
    if args.json and os.path.exists(args.json):
        with open(args.json) as f:
            done = json.load(f).get("done", {})
    runs: dict[str, list[dict]] = {n: [] for n in variants}
    for seed in args.seeds:
        for name, variant in variants.items():
            key = json.dumps({"preset": args.preset, "seed": seed, "config": {**common, **variant}, "iterations": args.iterations,
                              "eval_steps": args.eval_steps, "eval_seed": args.eval_seed}, sort_keys=True)
            if key in done:
                r = done[key]
            else:
                r = run_one(args.preset, seed, {**common, **variant}, args.iterations, args.eval_steps, args.eval_seed)
                done[key] = r
                if args.json:
                    with open(args.json + ".tmp", "w") as f:
                        json.dump({"done": done}, f, indent=1)
                    os.replace(args.json + ".tmp", args.json)
            runs[name].append(r)
            print(f"  seed {seed} {name}: held-out {np.round(r['held_out_curve'], 2).tolist()}, {r['train_s']:.0f} s", file=sys.stderr, flush=True)
    print(report(args.preset, {n: {**common, **v} for n, v in variants.items()}, runs, args.iterations))


if __name__ == "__main__":
    main()
