"""Throughput of the native batched MuJoCo envs with a torch policy in the loop (issue 6).

For each env (HalfCheetahVel, AntVel) and N (64, and 800 = a MAML meta-batch of 40 tasks x 20
episodes), one run measures env-steps/s of:

- ``ceiling``  — ``mujoco.rollout`` open loop over the same model: N trajectories of H env steps
  (H * frame_skip substeps) in one call, all threads, no outputs copied, replaying the actions
  the policy chose in a ``collect`` of the batched env (so the physics sees the same controls);
- ``metarl``   — ``metarl.sampling.collect`` on the native batched env (one ``rollout`` call per
  env step) with the torch MLP policy choosing every action;
- ``metarl, no policy`` — the same env stepped with those recorded actions (no torch);
- ``sync``     — Gymnasium ``SyncVectorEnv`` of ``HalfCheetah-v5``/``Ant-v5`` + the same policy;
- ``envpool``  — envpool's ``HalfCheetah-v4``/``Ant-v4`` + the same policy, if envpool imports.

Every configuration runs the policy with one torch thread: on the shared 2-core machine torch's
default two intra-op threads made one forward of the 800 x 17 MLP take ~63 ms instead of
~0.8 ms (its OpenMP workers contend with the physics threads and the other tenants).

Rates are env-steps per second of wall-clock time (``wall``) and per second of the process's CPU
time over all its threads (``cpu``, the work per step, which other tenants cannot distort).
Each figure is the best of ``--repeats`` timed runs of H steps, taken in rounds that run every
configuration once (the machines are shared: interleaving exposes all configurations to the same
load, and the best run is the least disturbed). Ratios are against the ceiling and against ``sync`` of the same run.

    python benchmarks/bench_mujoco.py                 # the full table (a few minutes)
    python benchmarks/bench_mujoco.py --n 64 --horizon 50 --repeats 1   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone

import gymnasium as gym
import mujoco
import numpy as np
import torch
from mujoco import rollout as mj_rollout

import metarl
from metarl.envs.mujoco import default_nthread, silence_settotalmass_notice
from metarl.sampling import collect

ENVS = {
    "HalfCheetahVel": ("metarl/HalfCheetahVel-v0", "HalfCheetah-v5", "HalfCheetah-v4"),
    "AntVel": ("metarl/AntVel-v0", "Ant-v5", "Ant-v4"),
}


def make_policy(obs_dim: int, act_dim: int) -> torch.nn.Module:
    """The policy every configuration runs: MLP 64-64 tanh, Gaussian sample (MAML's policy size)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(obs_dim, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
        torch.nn.Linear(64, act_dim),
    )


def act_fn(policy: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def act(obs: torch.Tensor) -> torch.Tensor:
        mean = policy(obs)
        return mean + 0.1 * torch.randn_like(mean)

    return act


Runner = tuple[Callable[[], int], Callable[[], None]]  # (timed run -> env steps made, close)


def policy_actions(env_id: str, n: int, horizon: int) -> np.ndarray:
    """``[H, N, nu]`` actions the policy takes in one ``collect`` of the batched env (seed 0)."""
    venv = metarl.make_vec(env_id, num_envs=n)
    act = act_fn(make_policy(venv.single_observation_space.shape[0], venv.single_action_space.shape[0]))
    torch.manual_seed(0)
    ro = collect(venv, lambda obs, t: (act(obs), {}), horizon=horizon, tasks=venv.sample_tasks(n, seed=0), seed=0)
    venv.close()
    return ro.actions.double().numpy()


def setup_ceiling(env_id: str, n: int, horizon: int, actions: np.ndarray) -> Runner:
    venv = metarl.make_vec(env_id, num_envs=n)
    venv.reset(seed=0)
    model, fs = venv.model, venv.family.frame_skip
    state0 = np.ascontiguousarray(venv._state)
    # The policy's own actions, each held for its frame_skip substeps as the env applies it.
    control = np.ascontiguousarray(np.repeat(actions.transpose(1, 0, 2), fs, axis=1))
    nthread = default_nthread()
    datas = [mujoco.MjData(model) for _ in range(max(1, nthread))]
    pool = mj_rollout.Rollout(nthread=nthread)
    models = [model] * n

    def run() -> int:
        pool.rollout(models, datas, state0, control, nstep=horizon * fs, skip_checks=True,
                     control_spec=mujoco.mjtState.mjSTATE_CTRL.value)
        return n * horizon

    def close() -> None:
        pool.close()
        venv.close()

    return run, close


def setup_metarl(env_id: str, n: int, horizon: int, actions: np.ndarray | None) -> Runner:
    """The batched env driven by the torch policy (``actions is None``) or replaying ``actions``."""
    venv = metarl.make_vec(env_id, num_envs=n)
    tasks = venv.sample_tasks(n, seed=0)
    act = act_fn(make_policy(venv.single_observation_space.shape[0], venv.single_action_space.shape[0]))

    def run() -> int:
        if actions is None:
            collect(venv, lambda obs, t: (act(obs), {}), horizon=horizon, tasks=tasks, seed=0)
        else:
            venv.reset(seed=0, options={"tasks": tasks})
            for a in actions:
                venv.step(a)
        return n * horizon

    return run, venv.close


def _policy_loop(env, horizon: int, n: int) -> Runner:
    obs_dim, act_dim = env.observation_space.shape[-1], env.action_space.shape[-1]
    act = act_fn(make_policy(obs_dim, act_dim))

    def run() -> int:
        obs, _ = env.reset(seed=0)
        for _ in range(horizon):
            with torch.no_grad():
                a = act(torch.as_tensor(obs, dtype=torch.float32)).numpy()
            obs, *_ = env.step(a)
        return n * horizon

    return run, env.close


def setup_sync(gym_id: str, n: int, horizon: int) -> Runner:
    with silence_settotalmass_notice(gym_id):  # else MUJOCO_LOG.TXT grows by one notice per env
        venv = gym.vector.SyncVectorEnv([lambda: gym.make(gym_id, max_episode_steps=horizon + 1) for _ in range(n)])
    return _policy_loop(venv, horizon, n)


def setup_envpool(pool_id: str, n: int, horizon: int) -> Runner | None:
    try:
        import envpool
    except ImportError:
        return None
    env = envpool.make(pool_id, env_type="gymnasium", num_envs=n, batch_size=n, num_threads=default_nthread(),
                       max_episode_steps=horizon + 1)
    return _policy_loop(env, horizon, n)


def measure(runners: dict[str, Runner | None], repeats: int) -> dict[str, tuple[float, float] | None]:
    """Best ``(wall, cpu)`` env-steps/s of each runner over ``repeats`` rounds.

    A round runs each runner once, so every configuration sees the same stretch of machine load.
    ``cpu`` divides by the process's CPU time (all its threads; the rollout pool and envpool
    block on condition variables rather than spin), which the other tenants of a shared machine
    do not distort: it measures work per env step.
    """
    best: dict[str, tuple[float, float] | None] = {n: ((0.0, 0.0) if r is not None else None) for n, r in runners.items()}
    for _ in range(repeats):
        for name, runner in runners.items():
            if runner is None:
                continue
            wall, cpu = time.perf_counter(), time.process_time()
            steps = runner[0]()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            old = best[name] or (0.0, 0.0)
            best[name] = (max(old[0], steps / wall), max(old[1], steps / cpu))
    for runner in runners.values():
        if runner is not None:
            runner[1]()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[64, 800], help="numbers of sub-envs")
    parser.add_argument("--horizon", type=int, default=200, help="env steps per timed run (MAML: 200)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (the best is kept)")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads for the policy (1: see the module docstring)")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    try:
        import envpool

        pool_version = envpool.__version__
    except ImportError:
        pool_version = "not installed"
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores "
          f"({default_nthread()} usable), python {platform.python_version()}, mujoco {mujoco.__version__}, "
          f"gymnasium {gym.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"envpool {pool_version}; horizon {args.horizon}, best of {args.repeats}")
    print("| env | N | per | ceiling (open-loop rollout) | metarl + policy | metarl, no policy "
          "| SyncVectorEnv + policy | envpool + policy | metarl / ceiling | metarl / sync |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.envs:
        env_id, gym_id, pool_id = ENVS[name]
        for n in args.n:
            actions = policy_actions(env_id, n, args.horizon)
            r = measure(
                {
                    "ceiling": setup_ceiling(env_id, n, args.horizon, actions),
                    "metarl": setup_metarl(env_id, n, args.horizon, None),
                    "bare": setup_metarl(env_id, n, args.horizon, actions),
                    "sync": setup_sync(gym_id, n, args.horizon),
                    "envpool": setup_envpool(pool_id, n, args.horizon),
                },
                args.repeats,
            )
            for k, label in ((0, "wall"), (1, "cpu")):
                v = {name: (None if x is None else x[k]) for name, x in r.items()}
                pool_txt = "—" if v["envpool"] is None else f"{v['envpool']:,.0f}"
                print(f"| {name} | {n} | {label} | {v['ceiling']:,.0f} | {v['metarl']:,.0f} | {v['bare']:,.0f} "
                      f"| {v['sync']:,.0f} | {pool_txt} | {v['metarl'] / v['ceiling']:.2f}× "
                      f"| {v['metarl'] / v['sync']:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
