"""Learning check on Meta-World ML1 (issue 13): held-out success rate while MAML or RL² trains.

A short budget, not the paper's: ML1 ``reach-v3`` with episodes cut to ``--horizon`` steps (reach
is solved well within 150 of Meta-World's 500). Every ``--eval-every`` iterations the agent is
evaluated on the first ``--num-tasks`` held-out goals (``agent.evaluate``, as ``metarl eval``):
MAML's success rate before and after one gradient step, RL²'s in the first and last episode of
the trial. Prints one JSON line per evaluation and writes them all to ``--out``. Run in the
Meta-World venv:

    python benchmarks/learn_metaworld.py maml --iterations 16 --eval-every 4 --out maml.json
    python benchmarks/learn_metaworld.py rl2 --iterations 60 --eval-every 15 --out rl2.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agent", choices=["maml", "rl2"])
    parser.add_argument("--task-name", default="reach-v3")
    parser.add_argument("--horizon", type=int, default=150)
    parser.add_argument("--iterations", type=int, default=16)
    parser.add_argument("--eval-every", type=int, default=4)
    parser.add_argument("--num-tasks", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="learn_metaworld.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    env_id = "metarl/MetaWorld-ML1-v0"
    env_kwargs = {"task_name": args.task_name, "max_episode_steps": args.horizon}
    if args.agent == "maml":
        from metarl.agents.maml import MAML

        cfg = {"meta_batch_size": 10, "episodes_per_task": 10, "eval_steps": 1, "inner_lr": 0.1}
        agent = MAML(env_id, cfg, seed=args.seed, env_kwargs=env_kwargs)
        held = agent.held_out_tasks()[: args.num_tasks]
    else:
        from metarl.agents.rl2 import RL2, RL2Config

        cfg = RL2Config(episodes_per_trial=2, num_trials=20, num_minibatches=4, hidden_size=64, learning_rate=1e-3,
                        reward_scale=0.1, eval_trials_per_task=2, eval_baselines=False)
        agent = RL2(env_id, cfg, seed=args.seed, env_kwargs=env_kwargs)
        held = agent.trials.env.held_out_tasks()[: args.num_tasks]
    rows, steps, t0, last = [], 0, time.perf_counter(), {}
    for it in range(args.iterations + 1):
        if it % args.eval_every == 0 or it == args.iterations:
            res = agent.evaluate(held, seed=1000)
            rows.append({
                "iteration": it, "env_steps": steps, "wall_s": round(time.perf_counter() - t0, 1),
                "held_out_success_first": float(res.success[:, 0].mean()),
                "held_out_success_last": float(res.success[:, -1].mean()),
                "held_out_return_first": float(res.returns[:, 0].mean()),
                "held_out_return_last": float(res.returns[:, -1].mean()),
                "train_success_rate": last.get("rollout/success_rate"),  # of the iteration just run
                "loadavg": [round(x, 2) for x in os.getloadavg()],
            })
            print(json.dumps(rows[-1]), flush=True)
        if it == args.iterations:
            break
        last = agent.train_iteration(it)
        steps += int(last["env_steps"])
    with open(args.out, "w") as f:
        json.dump({"agent": args.agent, "env_id": env_id, "env_kwargs": env_kwargs, "config": str(cfg), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
