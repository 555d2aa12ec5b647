"""Is a MAML speed-up learning-neutral? Train two config variants on the same seeds and compare.

Run by hand (not in CI; minutes to hours)::

    python benchmarks/maml_equivalence.py                                  # cg_subsample 1 vs 4, Navigation2D paper preset
    python benchmarks/maml_equivalence.py --seeds 0 1 2 3 4 --iterations 30
    python benchmarks/maml_equivalence.py --preset maml-trpo-halfcheetah-vel --iterations 20 --seeds 0 1 2
    python benchmarks/maml_equivalence.py --a cg_subsample=1 --b cg_subsample=8 --set meta_batch_size=10

For every seed, variant A and variant B train ``--iterations`` meta-iterations from the same
initial parameters and the same task draws (everything random is derived from the seed), then
adapt on the env's fixed held-out tasks (``--eval-steps`` gradient steps, the paper's α, α/2
schedule, one evaluation seed for all runs). Reported per variant: the held-out adaptation curve
(mean return after 0..K steps, mean over seeds with a 95% Student-t interval over seeds), the
training curve's last-five-iteration post-adaptation return, and the time split; and the paired
difference B - A per seed with its interval. An approximation is learning-neutral on this budget
when the paired interval of the held-out returns contains 0 and is narrow compared with the gain
of adaptation (step K minus step 0).

Torch runs single-threaded unless ``--threads`` says otherwise (the project's shared 2-core boxes).
"""

from __future__ import annotations

import argparse
import json
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


def report(preset: str, a: dict, b: dict, runs: dict[str, list[dict]], iterations: int) -> str:
    K = len(runs["A"][0]["held_out_curve"]) - 1
    lines = [f"Preset `{preset}`, {iterations} iterations, seeds {[r['seed'] for r in runs['A']]}; "
             f"A = {a or 'preset'}, B = {b or 'preset'}. Mean over seeds ± 95% t-interval over seeds.\n"]
    head = "| variant | " + " | ".join(f"held-out after {k} step(s)" for k in range(K + 1)) + " | train post-return (last 5 it.) | outer s/it. | iteration s/it. |"
    lines += [head, "|" + "---|" * (K + 5)]
    for name in ("A", "B"):
        rs = runs[name]
        cells = [_fmt([r["held_out_curve"][k] for r in rs]) for k in range(K + 1)]
        last = _fmt([float(np.mean(r["post_return"][-5:])) for r in rs])
        outer = np.mean([r["time"]["time/outer_s"] for r in rs])
        it = np.mean([r["time"]["time/iteration_s"] for r in rs])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {last} | {outer:.2f} | {it:.2f} |")
    diff = [_fmt([rb["held_out_curve"][k] - ra["held_out_curve"][k] for ra, rb in zip(runs["A"], runs["B"], strict=True)]) for k in range(K + 1)]
    last = _fmt([float(np.mean(rb["post_return"][-5:]) - np.mean(ra["post_return"][-5:])) for ra, rb in zip(runs["A"], runs["B"], strict=True)])
    lines.append("| B - A (paired) | " + " | ".join(diff) + f" | {last} | | |")
    gain = _fmt([r["held_out_curve"][K] - r["held_out_curve"][0] for r in runs["A"]])
    lines.append(f"\nAdaptation gain of A on held-out tasks (step {K} - step 0): {gain}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="maml-trpo-navigation2d")
    ap.add_argument("--a", nargs="*", default=["cg_subsample=1"], help="KEY=VALUE overrides of variant A (the reference)")
    ap.add_argument("--b", nargs="*", default=["cg_subsample=4"], help="KEY=VALUE overrides of variant B (the candidate)")
    ap.add_argument("--set", nargs="*", default=[], help="KEY=VALUE overrides of both variants (e.g. a smaller budget)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--eval-steps", type=int, default=1)
    ap.add_argument("--eval-seed", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write every run's figures to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    common, a, b = _overrides(args.set), _overrides(args.a), _overrides(args.b)
    runs: dict[str, list[dict]] = {"A": [], "B": []}
    for seed in args.seeds:
        for name, variant in (("A", a), ("B", b)):
            r = run_one(args.preset, seed, {**common, **variant}, args.iterations, args.eval_steps, args.eval_seed)
            runs[name].append(r)
            print(f"  seed {seed} {name}: held-out {np.round(r['held_out_curve'], 2).tolist()}, {r['train_s']:.0f} s", file=sys.stderr, flush=True)
    print(report(args.preset, {**common, **a}, {**common, **b}, runs, args.iterations))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "a": a, "b": b, "common": common, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
