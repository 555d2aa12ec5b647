"""Continue a trained RL² run with another batch size and step: is its plateau set by gradient noise?

Run by hand (not in CI). It loads a run directory's newest checkpoint (network weights only: Adam
starts fresh, sampling gets a new seed), trains for ``--minutes`` of wall time with ``--trials``
trials per iteration at ``--lr``, and prints the mean training-task trial return per minute
(tasks drawn from the training distribution; the held-out tasks are not used)::

    taskset -c 0 python benchmarks/rl2_continue.py RUN_DIR --trials 1024 --lr 1e-3 --minutes 6
    taskset -c 1 python benchmarks/rl2_continue.py RUN_DIR --trials 128 --lr 6e-3 --minutes 6  # control

Issue 11 used it on the stored seed-0 runs of the RL² n = 100 and MDP n = 10 rows (RESULTS.md,
"RL² late phase and time input").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from metarl.agents.rl2 import RL2
from metarl.errors import MetaRLError
from metarl.trainer import load_run


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a `metarl train rl2` run directory")
    ap.add_argument("--trials", type=int, default=1024, help="trials per iteration (default 1024)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam step size (default 1e-3)")
    ap.add_argument("--minutes", type=float, default=6.0, help="wall time to train (default 6)")
    ap.add_argument("--entropy-coef", type=float, default=None, help="entropy bonus (default: the run's)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the new task draws and actions (default 7)")
    ap.add_argument("--jsonl", help="also write every iteration's metrics here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        old = load_run(args.run_dir)[0]
    except MetaRLError as e:
        ap.error(str(e))
    if not isinstance(old, RL2):
        ap.error(f"{args.run_dir} is a {type(old).__name__} run, not an RL2 one")
    config = dataclasses.replace(old.config, num_trials=args.trials, learning_rate=args.lr, late_iteration=0)
    if args.entropy_coef is not None:
        config = dataclasses.replace(config, entropy_coef=args.entropy_coef)
    agent = RL2(old.env_id, config, seed=args.seed, env_kwargs=old.env_kwargs)
    agent.net.load_state_dict(old.net.state_dict())
    out = open(args.jsonl, "w", encoding="utf-8") if args.jsonl else None  # noqa: SIM115
    t0, minute, returns, i = time.perf_counter(), 1, [], 0
    try:
        while (wall := time.perf_counter() - t0) < args.minutes * 60:
            if wall >= minute * 60:
                print(f"minute {minute}: trial return {sum(returns) / len(returns):.3f} ({len(returns)} iterations)", flush=True)
                minute, returns = minute + 1, []
            m = agent.train_iteration(i)
            i += 1
            returns.append(m["rollout/trial_return"])
            if out is not None:
                out.write(json.dumps({**m, "wall_s": time.perf_counter() - t0, "iteration": i}) + "\n")
        if returns:
            print(f"minute {minute} (part): trial return {sum(returns) / len(returns):.3f} ({len(returns)} iterations)")
    finally:
        if out is not None:
            out.close()


if __name__ == "__main__":
    main()
