"""Regenerate the shipped held-out task files: ``python -m metarl.envs.make_held_out``.

Each file in ``metarl/envs/held_out/`` freezes one family configuration's held-out tasks, drawn by
:meth:`~metarl.meta_env.TaskDistribution.generate_held_out` (the distribution's ``sample`` with
its ``held_out_seed``). Files are data: they *define* the held-out tasks and change only with a
new env version. A recipe's float math (numpy's SIMD ``exp``, libm in ``dirichlet``/``normal``)
may differ by an ulp between CPUs, so an existing file is compared with the regenerated tasks
by :func:`metarl.portable.compare_tasks` (float fields within ``HELD_OUT_RTOL`` = 1e-12,
integer and discrete fields exactly): a match leaves the file untouched (byte for byte), a
difference stops the script unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from metarl.meta_env import TaskDistribution
from metarl.portable import compare_tasks

HERE = Path(__file__).parent / "held_out"


def distributions() -> list[TaskDistribution]:
    """Every configuration whose held-out tasks ship with the package."""
    from metarl.envs.bandit import BanditDistribution
    from metarl.envs.navigation import Navigation2DDistribution
    from metarl.envs.tabular_mdp import TabularMDPDistribution

    dists: list[TaskDistribution] = [Navigation2DDistribution(), TabularMDPDistribution()]
    dists += [BanditDistribution(k) for k in (5, 10, 50)]
    try:  # MuJoCo families register their own configurations when present
        from metarl.envs import mujoco as _mj

        dists += list(getattr(_mj, "held_out_distributions", lambda: [])())
    except ImportError:
        pass
    return dists


def write(dist: TaskDistribution, force: bool = False) -> Path:
    """Write ``dist``'s held-out file unless one matching the recipe exists; return its path."""
    key = dist.held_out_key()
    if key is None:
        raise ValueError(f"{type(dist).__name__} has no held-out key for this configuration")
    tasks = dist.generate_held_out()
    payload = {
        "key": key,
        "version": 0,
        "recipe": f"{type(dist).__name__}.sample(metarl.meta_env.held_out_rng({dist.held_out_seed}), {dist.num_held_out})",
        "tasks": [t.to_dict() for t in tasks],
    }
    path = HERE / f"{key}.json"
    if path.exists() and not force:
        old = json.loads(path.read_text())
        diff = compare_tasks([dist.task_type.from_dict(d) for d in old["tasks"]], tasks)
        if diff is not None:
            raise SystemExit(
                f"{path} differs from the recipe ({diff}); held-out tasks change only with a new env version"
            )
        return path  # the shipped bits stay: the file, not this machine's rounding, defines the tasks
    path.write_text(json.dumps(payload, indent=None) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="overwrite files whose tasks differ")
    args = parser.parse_args()
    HERE.mkdir(exist_ok=True)
    for dist in distributions():
        print(write(dist, force=args.force))


if __name__ == "__main__":
    main()
