"""Throughput of the native batched envs vs Gymnasium ``SyncVectorEnv`` of the same single envs.

Run: ``python benchmarks/bench_envs.py [--seconds 2] [--sizes 16 256 4096]``. Prints one markdown
table (env-steps/s of each, and their ratio, all measured in this one run).
"""

from __future__ import annotations

import argparse
import os
import platform

from metarl.benchmarking import ratio_table

IDS = ["metarl/Navigation2D-v0", "metarl/Bandit-v0", "metarl/TabularMDP-v0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per measurement")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 256, 4096])
    parser.add_argument("--ids", nargs="+", default=IDS)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}")
    print("| env | N | native env-steps/s | SyncVectorEnv env-steps/s | native / sync |")
    print("|---|---:|---:|---:|---:|")
    for env_id in args.ids:
        for row in ratio_table(env_id, args.sizes, seconds=args.seconds):
            print(
                f"| {env_id} | {row['num_envs']} | {row['native_steps_per_s']:,.0f} | "
                f"{row['sync_steps_per_s']:,.0f} | {row['native_over_sync']:.1f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
