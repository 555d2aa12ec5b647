"""RL² benchmarks: training throughput and time to UCB1's level, sb3-contrib side by side, preset memory.

Run (each prints a markdown table)::

    python benchmarks/bench_rl2.py throughput --wall 300   # k=5, n=100 bandits: RL² vs RecurrentPPO
    python benchmarks/bench_rl2.py memory                  # peak RSS of one iteration of every preset

``throughput`` trains metarl's RL² (batched trial env, ``num_trials`` trials per iteration) and
``sb3_contrib.RecurrentPPO`` on the single :class:`~metarl.trials.TrialEnv` (8 envs in SB3's
``DummyVecEnv``) for the same wall-clock budget, checkpoints both at the same wall times and scores
them on the 40 held-out k=5 tasks (evaluation time excluded from the budget), beside tuned UCB1.
``memory`` runs one training iteration of each ``rl2-*`` preset in a fresh subprocess and records
its peak RSS (the default run must stay under 2 GiB, every preset under 8 GiB).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch

import metarl
from metarl.classic import evaluate_baselines
from metarl.trials import TrialEnv

K, N_PULLS = 5, 100
ENV_KW = {"num_arms": K, "horizon": 1}


def _held_out() -> list:
    return metarl.make_vec("metarl/Bandit-v0", 1, num_arms=K).held_out_tasks()


def _sb3_score(model, tasks, trials_per_task: int, seed: int) -> float:
    """Mean trial return of an SB3 recurrent model on ``tasks`` (stochastic actions, as RL²'s)."""
    env = TrialEnv("metarl/Bandit-v0", N_PULLS, **ENV_KW)
    total = []
    for i, task in enumerate(tasks):
        for j in range(trials_per_task):
            obs, _ = env.reset(seed=seed + 1000 * i + j, options={"task": task})
            state, start, ret, done = None, np.array([True]), 0.0, False
            while not done:
                action, state = model.predict(obs, state=state, episode_start=start, deterministic=False)
                obs, r, done, _, _ = env.step(action)
                ret += r
                start = np.array([done])
            total.append(ret)
    return float(np.mean(total))


def throughput(args: argparse.Namespace) -> None:
    from metarl.agents.rl2 import RL2, RL2Config

    torch.set_num_threads(args.threads)
    tasks = _held_out()
    base, extra = evaluate_baselines("metarl/Bandit-v0", tasks, episodes_per_trial=N_PULLS, trials_per_task=20, seed=0, env_kwargs=ENV_KW)
    ucb = float(base["ucb1"].sum(1).mean())
    checkpoints = [args.wall * f for f in (0.25, 0.5, 0.75, 1.0)]

    cfg = RL2Config(episodes_per_trial=N_PULLS, num_trials=args.trials, hidden_size=args.hidden, learning_rate=args.lr,
                    reward_scale=args.reward_scale, eval_trials_per_task=10, eval_baselines=False)
    agent = RL2("metarl/Bandit-v0", cfg, seed=0, env_kwargs=ENV_KW)
    rl2_rows, train_s, steps, reached = [], 0.0, 0, None
    rollout_rates = []
    for mark in checkpoints:
        while train_s < mark:
            t = time.perf_counter()
            m = agent.train_iteration(agent.iteration)
            train_s += time.perf_counter() - t
            steps += m["env_steps"]
            rollout_rates.append(m["rollout/steps_per_s"])
        score = float(agent.evaluate(tasks, seed=1).trial_returns.mean())
        if reached is None and score >= ucb:
            reached = train_s
        rl2_rows.append((train_s, steps, score))
        print(f"rl2  t={train_s:6.0f}s steps={steps:,} held-out trial return {score:.2f}", flush=True)

    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(lambda: TrialEnv("metarl/Bandit-v0", N_PULLS, **ENV_KW), n_envs=8, seed=0)
    model = RecurrentPPO("MlpLstmPolicy", venv, n_steps=200, batch_size=400, seed=0, device="cpu",
                         policy_kwargs={"lstm_hidden_size": args.hidden, "net_arch": []})
    sb3_rows, sb3_s, sb3_reached = [], 0.0, None
    for mark in checkpoints:
        while sb3_s < mark:
            t = time.perf_counter()
            model.learn(total_timesteps=1600, reset_num_timesteps=False)
            sb3_s += time.perf_counter() - t
        score = _sb3_score(model, tasks, args.sb3_eval_trials, seed=1)
        if sb3_reached is None and score >= ucb:
            sb3_reached = sb3_s
        sb3_rows.append((sb3_s, model.num_timesteps, score))
        print(f"sb3  t={sb3_s:6.0f}s steps={model.num_timesteps:,} held-out trial return {score:.2f}", flush=True)

    print(f"\nk={K}, n={N_PULLS} bandits; held-out: random {base['random'].sum(1).mean():.2f}, tuned UCB1 (c={extra['ucb1_c']}) {ucb:.2f}, "
          f"Thompson {base['thompson'].sum(1).mean():.2f}, Gittins approx {base['gittins'].sum(1).mean():.2f}")
    print(f"RL² config: {json.dumps({k: v for k, v in dataclasses.asdict(cfg).items() if k in ('num_trials', 'hidden_size', 'learning_rate', 'reward_scale')})}; "
          f"torch threads {args.threads}\n")
    print("| learner | train wall s | env steps | env-steps/s (training) | held-out trial return |")
    print("|---|---:|---:|---:|---:|")
    for name, rows in (("metarl RL2", rl2_rows), ("sb3-contrib RecurrentPPO", sb3_rows)):
        for s, n, score in rows:
            print(f"| {name} | {s:.0f} | {n:,} | {n / s:,.0f} | {score:.2f} |")
    print(f"\nRL² rollout env-steps/s (sampling only): median {np.median(rollout_rates):,.0f}")
    fmt = lambda r: "not within budget" if r is None else f"{r:.0f} s"  # noqa: E731
    print(f"wall time to reach tuned UCB1 ({ucb:.2f}): metarl RL2 {fmt(reached)}, RecurrentPPO {fmt(sb3_reached)}")


def _one_iteration(preset: str, overrides: str) -> None:
    """Child process: one training iteration of ``preset``; prints peak RSS (MiB) as JSON."""
    from metarl.agents.rl2 import RL2, RL2Config
    from metarl.config import build_config, load_preset

    torch.set_num_threads(1)
    if preset == "default":
        agent = RL2(seed=0)
    else:
        p = load_preset(preset)
        cfg = build_config(RL2Config, {**p.config, **json.loads(overrides)}, source=preset)
        agent = RL2(p.env, cfg, seed=0, env_kwargs=p.env_kwargs)
    t = time.perf_counter()
    m = agent.train_iteration(0)
    wall = time.perf_counter() - t
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"rss_mib": rss_mib, "iteration_s": wall, "env_steps": m["env_steps"]}))


def memory(args: argparse.Namespace) -> None:
    from metarl.config import list_presets

    names = ["default"] + sorted(p for p in list_presets() if p.startswith("rl2-"))
    runs = [(n, "{}") for n in names]
    runs.append(("rl2-bandit-k50-n500", json.dumps({"bptt_chunk": 0})))  # what chunking saves
    print("| preset | overrides | env steps / iteration | iteration s | peak RSS MiB |")
    print("|---|---|---:|---:|---:|")
    for name, over in runs:
        out = subprocess.run([sys.executable, __file__, "_child", name, over], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"| {name} | {over} | failed: {out.stderr.strip().splitlines()[-1][:80]} | | |", flush=True)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {name} | {over} | {r['env_steps']:,} | {r['iteration_s']:.1f} | {r['rss_mib']:,.0f} |", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _one_iteration(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    tp = sub.add_parser("throughput", help="RL² vs RecurrentPPO on k=5, n=100 for the same wall time")
    tp.add_argument("--wall", type=float, default=300.0, help="training wall-clock budget per learner (s)")
    tp.add_argument("--trials", type=int, default=256, help="RL² parallel trials per iteration")
    tp.add_argument("--hidden", type=int, default=64, help="GRU/LSTM hidden units (both learners)")
    tp.add_argument("--lr", type=float, default=3e-3)
    tp.add_argument("--reward-scale", type=float, default=0.1, help="RL² reward scale (value targets O(1))")
    tp.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    tp.add_argument("--sb3-eval-trials", type=int, default=2, help="trials per held-out task for SB3's score")
    sub.add_parser("memory", help="peak RSS of one iteration of each rl2 preset")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), python {platform.python_version()}, torch {torch.__version__}")
    throughput(args) if args.cmd == "throughput" else memory(args)


if __name__ == "__main__":
    main()
