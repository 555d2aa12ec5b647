"""Held-out evaluation: ``eval.json`` (DESIGN.md's schema, 95% CIs) and ``adaptation.png``.

The agent adapts from its checkpoint to each of the env's **held-out** tasks (never the training
distribution) and reports a curve: mean return after ``k`` gradient steps (MAML-style,
``x = "gradient_steps"``) or in episode ``k`` of a trial (RL²-style, ``x = "episode"``).
Each point's ``ci95`` is the half-width of the 95% Student-t confidence interval of the mean
over tasks (``t_{0.975, n-1} · s / √n``; ``null`` for a single task).

>>> import numpy as np
>>> from metarl.agent import EvalResult
>>> res = EvalResult(x="gradient_steps", returns=np.array([[-20.0, -10.0], [-22.0, -8.0]]))
>>> summary = eval_summary(res, env_id="metarl/Navigation2D-v0", agent="maml", seed=0)
>>> summary["curve"][1]["mean_return"], round(summary["curve"][1]["ci95"], 3)
(-9.0, 12.706)
>>> adaptation_gain(summary)
12.0
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metarl.agent import Agent, EvalResult
from metarl.errors import ConfigError
from metarl.meta_env import check_count
from metarl.registry import make
from metarl.tasks import Task

__all__ = [
    "mean_ci95",
    "held_out_tasks",
    "evaluate_tasks",
    "eval_summary",
    "adaptation_gain",
    "plot_adaptation",
    "evaluate_run",
    "X_KINDS",
]

X_KINDS = ("gradient_steps", "episode")


def mean_ci95(values: Sequence[float] | np.ndarray) -> tuple[float, float | None]:
    """Mean and 95% CI half-width (Student t) of ``values``; the half-width is None for n < 2."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ConfigError("cannot summarise an empty list of returns")
    mean = float(v.mean())
    if v.size < 2:
        return mean, None
    from scipy.stats import t

    return mean, float(t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))


def held_out_tasks(env_id: str, env_kwargs: dict[str, Any] | None = None) -> list[Task]:
    """The env's fixed held-out tasks (``env.unwrapped.held_out_tasks()``)."""
    env = make(env_id, **(env_kwargs or {}))
    try:
        return list(env.unwrapped.held_out_tasks())
    finally:
        env.close()


def _check_result(res: Any, n: int, who: str) -> EvalResult:
    if not isinstance(res, EvalResult):
        raise ConfigError(f"{who}.evaluate must return an EvalResult, got {type(res).__name__}")
    if res.x not in X_KINDS:
        raise ConfigError(f"{who}.evaluate returned x={res.x!r}; expected one of {X_KINDS}")
    r = np.asarray(res.returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != n or r.shape[1] < 1:
        raise ConfigError(f"{who}.evaluate returned returns of shape {r.shape}; expected ({n}, num_points)")
    trial = None if res.trial_returns is None else np.asarray(res.trial_returns, dtype=np.float64)
    if trial is not None and trial.shape != (n,):
        raise ConfigError(f"{who}.evaluate returned trial_returns of shape {trial.shape}; expected ({n},)")
    success = None if res.success is None else np.asarray(res.success, dtype=np.float64)
    if success is not None and success.shape != r.shape:
        raise ConfigError(f"{who}.evaluate returned success of shape {success.shape}; expected {r.shape} like returns")
    baselines = {}
    for name, v in res.baselines.items():
        b = np.asarray(v, dtype=np.float64)
        if b.shape != (n,):
            raise ConfigError(f"{who}.evaluate returned baseline {name!r} of shape {b.shape}; expected ({n},)")
        baselines[name] = b
    return EvalResult(res.x, r, trial, baselines, dict(res.extra), success)


def evaluate_tasks(
    agent: Agent,
    tasks: Sequence[Task],
    *,
    seed: int,
    chunk_size: int = 10,
    num_steps: int | None = None,
    console: Any = None,
) -> EvalResult:
    """``agent.evaluate`` on ``tasks`` in chunks (chunk ``i`` with seed ``seed + i``), concatenated.

    A rich progress bar (when ``console`` is given) shows the running mean of the curve's last point.
    """
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if not tasks:
        raise ConfigError("no tasks to evaluate on")
    from metarl.trainer import _progress

    who = type(agent).__name__
    parts: list[EvalResult] = []
    with _progress(console) as progress:
        bar = progress.add_task(f"eval {who}", total=len(tasks), headline="")
        for i, lo in enumerate(range(0, len(tasks), chunk_size)):
            chunk = list(tasks[lo : lo + chunk_size])
            kwargs = {"num_steps": num_steps} if num_steps is not None else {}
            parts.append(_check_result(agent.evaluate(chunk, seed=seed + i, **kwargs), len(chunk), who))
            done = np.concatenate([p.returns[:, -1] for p in parts])
            progress.update(bar, advance=len(chunk), headline=f"final return {done.mean():.4g}")
    first = parts[0]
    widths = {p.returns.shape[1] for p in parts}
    if len(widths) != 1 or {p.x for p in parts} != {first.x}:
        raise ConfigError(f"{who}.evaluate returned curves of different lengths/kinds across task chunks")
    has_trial = {p.trial_returns is not None for p in parts}
    if len({p.success is not None for p in parts}) != 1:
        raise ConfigError(f"{who}.evaluate reported success for some task chunks and not others")
    if len(has_trial) != 1 or {tuple(sorted(p.baselines)) for p in parts} != {tuple(sorted(first.baselines))}:
        raise ConfigError(f"{who}.evaluate returned inconsistent trial_returns/baselines across task chunks")
    return EvalResult(
        x=first.x,
        returns=np.concatenate([p.returns for p in parts]),
        trial_returns=np.concatenate([p.trial_returns for p in parts]) if first.trial_returns is not None else None,
        baselines={k: np.concatenate([p.baselines[k] for p in parts]) for k in first.baselines},
        extra=first.extra,
        success=np.concatenate([p.success for p in parts]) if first.success is not None else None,
    )


def _stat(values: np.ndarray) -> dict[str, float | None]:
    mean, ci = mean_ci95(values)
    return {"mean": mean, "ci95": ci}


def eval_summary(
    result: EvalResult, *, env_id: str, agent: str, seed: int, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``eval.json`` object of DESIGN.md (plus ``per_task_returns`` and ``extra``)."""
    res = _check_result(result, np.asarray(result.returns).shape[0], agent)
    curve = []
    for k in range(res.returns.shape[1]):
        mean, ci = mean_ci95(res.returns[:, k])
        curve.append({"x": k, "mean_return": mean, "ci95": ci})
        if res.success is not None:  # beside the return, where the env reports success
            curve[-1]["success_rate"], curve[-1]["success_ci95"] = mean_ci95(res.success[:, k])
    out: dict[str, Any] = {
        "env_id": env_id,
        "agent": agent,
        "split": "held_out",
        "num_tasks": int(res.returns.shape[0]),
        "seed": int(seed),
        "x": res.x,
        "curve": curve,
    }
    if res.trial_returns is not None:
        out["trial_return"] = _stat(res.trial_returns)
    if res.success is not None:
        # Meta-World's headline metric: success rate at the curve's last point (after adaptation).
        out["success_rate"] = _stat(res.success[:, -1])
        out["per_task_success"] = res.success.tolist()
    if res.baselines:
        out["baselines"] = {name: _stat(v) for name, v in res.baselines.items()}
    out["per_task_returns"] = res.returns.tolist()
    if res.extra:
        out["agent_extra"] = res.extra
    out.update(extra or {})
    return out


def adaptation_gain(summary: dict[str, Any]) -> float:
    """Post- minus pre-adaptation mean held-out return (last curve point minus the first)."""
    curve = summary["curve"]
    return float(curve[-1]["mean_return"] - curve[0]["mean_return"])


def plot_adaptation(summary: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``adaptation.png``: the curve with its 95% CI band, and baselines.

    Where the summary has success rates (Meta-World), they are drawn on a right-hand axis.

    Baselines are on the trial scale for RL²-style agents (then a second panel compares trial
    returns as bars with CI whiskers), else on the curve's last-point scale (horizontal lines).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    path = Path(path)
    x = np.array([p["x"] for p in summary["curve"]])
    mean = np.array([p["mean_return"] for p in summary["curve"]])
    ci = np.array([p["ci95"] if p["ci95"] is not None else 0.0 for p in summary["curve"]])
    trial = summary.get("trial_return")
    baselines = summary.get("baselines", {})
    ncols = 2 if trial is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(x, mean, marker="o", color="C0", label=summary["agent"])
    ax.fill_between(x, mean - ci, mean + ci, color="C0", alpha=0.25, label="95% CI")
    if trial is None:
        for i, (name, b) in enumerate(baselines.items(), start=1):
            ax.axhline(b["mean"], color=f"C{i}", linestyle="--", label=name)
            if b["ci95"]:
                ax.axhspan(b["mean"] - b["ci95"], b["mean"] + b["ci95"], color=f"C{i}", alpha=0.1)
    ax.set_xlabel("gradient steps" if summary["x"] == "gradient_steps" else "episode in trial")
    ax.set_ylabel("mean return (held-out tasks)")
    ax.set_xticks(x)
    ax.set_title(f"{summary['env_id']}: {summary['num_tasks']} held-out tasks, seed {summary['seed']}")
    ax.legend(loc="best")
    if "success_rate" in summary["curve"][0]:
        # Success rate (Meta-World's metric) beside the return, on its own [0, 1] axis.
        sx = ax.twinx()
        rate = np.array([p["success_rate"] for p in summary["curve"]])
        sci = np.array([p["success_ci95"] or 0.0 for p in summary["curve"]])
        sx.plot(x, rate, marker="s", linestyle=":", color="C3", label="success rate")
        sx.fill_between(x, np.clip(rate - sci, 0, 1), np.clip(rate + sci, 0, 1), color="C3", alpha=0.1)
        sx.set_ylim(-0.02, 1.02)
        sx.set_ylabel("success rate", color="C3")
        sx.legend(loc="lower right")
    if trial is not None:
        bx = axes[0, 1]
        names = [summary["agent"], *baselines]
        stats = [trial, *baselines.values()]
        bx.bar(
            names,
            [s["mean"] for s in stats],
            yerr=[s["ci95"] or 0.0 for s in stats],
            color=[f"C{i}" for i in range(len(names))],
            capsize=4,
        )
        bx.set_ylabel("trial return")
        bx.set_title("total return over the trial (95% CI)")
        bx.tick_params(axis="x", labelrotation=30)  # names like epsilon_greedy overlap flat
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    num_tasks: int | None = None,
    seed: int = 0,
    chunk_size: int = 10,
    checkpoint: str | os.PathLike | None = None,
    env_id: str | None = None,
    device: str | None = None,
    threads: Any = None,
    trials_per_task: int | None = None,
    relabel: bool | None = None,
    baselines: bool = True,
    write: bool = True,
    console: Any = None,
) -> dict[str, Any]:
    """Load a run (config + checkpoint), adapt on held-out tasks, return (and write) ``eval.json``.

    ``threads`` overrides the run's torch thread setting (:mod:`metarl.threads`);
    ``trials_per_task`` the run's ``eval_trials_per_task`` (agents that run several trials per
    held-out task: RL², PEARL), for a tighter estimate where a trial is cheap; ``relabel`` the
    run's ``eval_relabel`` (RL²: each trial on a randomly relabeled copy of its task; the summary
    records it as ``relabeled``). ``baselines=False`` skips the classic baselines of agents that run
    them (``eval_baselines``).

    Raises:
        ConfigError: not a run directory, ``num_tasks`` out of range, ``trials_per_task`` not a
            positive int or given for an agent without trials per task, or ``relabel`` not a bool
            or given for an agent without ``eval_relabel``.
        CheckpointError, SpaceMismatchError: see :func:`metarl.trainer.load_run`.
    """
    from metarl.trainer import load_run, seed_everything

    run_dir = Path(run_dir)
    if trials_per_task is not None:
        check_count(trials_per_task, "trials_per_task")
    if relabel is not None and not isinstance(relabel, bool):
        raise ConfigError(f"relabel must be a bool or None, got {relabel!r}")
    agent, run, state = load_run(run_dir, checkpoint=checkpoint, env_id=env_id, device=device, threads=threads)
    if trials_per_task is not None:
        if not hasattr(agent.config, "eval_trials_per_task"):
            raise ConfigError(
                f"trials_per_task={trials_per_task}: agent {run.agent!r} runs no trials per held-out task "
                "(only agents with an eval_trials_per_task setting do: rl2, pearl)"
            )
        agent.config.eval_trials_per_task = int(trials_per_task)
    if relabel is not None:
        if not hasattr(agent.config, "eval_relabel"):
            raise ConfigError(
                f"relabel={relabel}: agent {run.agent!r} does not relabel held-out tasks (only agents with an "
                "eval_relabel setting do: rl2)"
            )
        agent.config.eval_relabel = relabel
    if not baselines and hasattr(agent.config, "eval_baselines"):
        agent.config.eval_baselines = False
    trials = getattr(agent.config, "eval_trials_per_task", None)
    relabeled = getattr(agent.config, "eval_relabel", None)
    tasks = held_out_tasks(run.env, run.env_kwargs)
    if num_tasks is None:
        num_tasks = len(tasks)
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or not 1 <= num_tasks <= len(tasks):
        raise ConfigError(f"num_tasks must be in [1, {len(tasks)}] (held-out tasks of {run.env}), got {num_tasks!r}")
    seed_everything(seed)
    result = evaluate_tasks(agent, tasks[:num_tasks], seed=seed, chunk_size=chunk_size, console=console)
    summary = eval_summary(
        result,
        env_id=run.env,
        agent=run.agent,
        seed=seed,
        extra={"iteration": int(state["iteration"]), "env_steps": int(state["env_steps"]), "chunk_size": chunk_size,
               **({"trials_per_task": int(trials)} if trials is not None else {}),
               **({"relabeled": bool(relabeled)} if relabeled is not None else {})},
    )
    if write:
        tmp = run_dir / "eval.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, run_dir / "eval.json")
        plot_adaptation(summary, run_dir / "adaptation.png")
    return summary
