"""The train loop behind ``metarl train``: run directories, checkpoints and exact resume.

A run directory holds::

    config.yaml        the resolved RunConfig (agent, env, seed, every config field, trainer options)
    metrics.jsonl      one JSON object per iteration: iteration, env_steps (cumulative), wall_s,
                       and the agent's namespaced metrics
    tb/                TensorBoard event files (same scalars)
    checkpoints/       ckpt-<next iteration>.pt (format: metarl.checkpoint)

A fresh run checks that its directory can be written before any work, and creates it only after
the config and env validated; if the run then fails before its first checkpoint, the directory it
created is removed again, so the corrected command can run as is.

Exact resume: the trainer seeds the python/numpy/torch global RNGs from the run seed, and every
checkpoint holds those RNG states, the agent's state (its own generators and task samplers
included), the iteration, cumulative env steps, wall time and the logger step. Resuming loads the
newest checkpoint that verifies (skipping, with a warning, any newer one that is corrupt), drops
the ``metrics.jsonl`` rows (and TensorBoard events) written after it,
and continues; the result is identical to a run that was never stopped (except ``wall_s``).

>>> import tempfile
>>> from pathlib import Path
>>> default_run_dir("maml", "metarl/Navigation2D-v0", 3)
PosixPath('runs/maml-Navigation2D-v0-s3')
"""

from __future__ import annotations

import inspect
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarl import __version__
from metarl.agent import Agent, load_agent_class
from metarl.checkpoint import (
    TRAINING_KEYS,
    capture_rng_states,
    check_spaces,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    remove_stray_temps,
    restore_rng_states,
    save_checkpoint,
)
from metarl.config import (
    RunConfig,
    build_config,
    check_writable_dir,
    config_to_dict,
    read_run_config,
    write_run_config,
)
from metarl.errors import ConfigError, TrainingDivergedError
from metarl.logger import JSONLOutput, Logger, StdoutOutput, TensorBoardOutput, truncate_metrics
from metarl.meta_env import check_seed
from metarl.registry import check_meta_env_id, make
from metarl.samplers import attach_sampler, check_sampler_options
from metarl.threads import check_threads

__all__ = [
    "Trainer",
    "TrainResult",
    "default_run_dir",
    "seed_everything",
    "check_device",
    "env_spaces",
    "build_agent",
    "load_run",
]


def default_run_dir(agent: str, env_id: str, seed: int) -> Path:
    """``runs/<agent>-<env name>-s<seed>`` (a ``module:Class`` agent uses its class name)."""
    name = agent.rpartition(":")[2] if ":" in agent else agent
    return Path("runs") / f"{name}-{env_id.rpartition('/')[2]}-s{seed}"


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's and torch's global RNGs (for third-party code; metarl's
    own sampling uses owned generators). Raises :class:`ConfigError` for a seed outside ``[0, 2**63)``."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global RNG itself is saved/seeded here)
    torch.manual_seed(seed)


def check_device(device: str) -> str:
    """``device`` if torch can use it here, else :class:`ConfigError` naming it."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {device!r} is not a torch device (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available (torch.cuda.is_available() is False)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {device!r} requested but MPS is not available")
    elif dev.type != "cpu":
        raise ConfigError(f"device {device!r} is not supported (use cpu, cuda or cuda:N)")
    return device


def env_spaces(env_id: str, env_kwargs: dict[str, Any] | None = None) -> dict[str, str]:
    """``{"observation_space": ..., "action_space": ...}`` of the single env, as text."""
    try:
        env = make(env_id, **(env_kwargs or {}))
    except TypeError as e:
        raise ConfigError(f"env {env_id!r} rejected env_kwargs {env_kwargs!r}: {e}") from None
    try:
        return {"observation_space": str(env.observation_space), "action_space": str(env.action_space)}
    finally:
        env.close()


def build_agent(
    agent_cls: type[Agent], env_id: str, config: Any, *, seed: int, device: str, env_kwargs: dict[str, Any] | None
) -> Agent:
    """``agent_cls(env_id, config, seed=, device=[, env_kwargs=])``."""
    kwargs: dict[str, Any] = {"seed": seed, "device": device}
    if env_kwargs:
        params = inspect.signature(agent_cls.__init__).parameters
        takes = "env_kwargs" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        if not takes:
            raise ConfigError(
                f"agent {agent_cls.__name__} does not accept env_kwargs (got {env_kwargs!r}); "
                "its constructor needs an `env_kwargs` keyword"
            )
        kwargs["env_kwargs"] = dict(env_kwargs)
    return agent_cls(env_id, config, **kwargs)


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` returns."""

    run_dir: Path
    iterations: int
    env_steps: int
    wall_s: float
    last_metrics: dict[str, Any]
    resumed_from: int | None


class Trainer:
    """Trains one run (fresh or resumed) with checkpoints, metrics and a progress bar.

    Args:
        run: the resolved run config (written to ``run_dir/config.yaml`` on a fresh start).
        run_dir: the run directory.
        resume: continue ``run_dir`` from its newest checkpoint; without it an existing,
            non-empty ``run_dir`` is refused.
        console: a ``rich.console.Console`` for the progress bar and metric lines (None: quiet).
    """

    def __init__(self, run: RunConfig, run_dir: str | Path, *, resume: bool = False, console: Any = None) -> None:
        self.run = run
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.console = console
        self._created_dir = False
        opts = run.trainer
        self.checkpoint_every = _positive(opts.get("checkpoint_every", 10), "checkpoint_every")
        self.keep_checkpoints = _non_negative(opts.get("keep_checkpoints", 3), "keep_checkpoints")
        self.log_every = _non_negative(opts.get("log_every", 10), "log_every")
        _non_negative(opts.get("eval_tasks", 0), "eval_tasks")
        _non_negative(run.iterations, "iterations")
        check_seed(run.seed)
        self.threads = check_threads(opts.get("threads", "auto"))
        self.agent_cls = load_agent_class(run.agent)
        check_meta_env_id(run.env)
        check_device(run.device)
        check_writable_dir(self.run_dir, "run directory")
        check_sampler_options(opts.get("sampler", "local"), opts.get("num_workers", 2))

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def _prepare_dir(self) -> None:
        if self.resume:
            if not (self.run_dir / "config.yaml").is_file():
                raise ConfigError(f"cannot resume: {self.run_dir} is not a run directory (no config.yaml)")
            write_run_config(self.run_dir / "config.yaml", self.run)  # e.g. an extended --iterations
            return
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            if (self.run_dir / "config.yaml").is_file() and not list_checkpoints(self.checkpoint_dir):
                raise ConfigError(
                    f"run directory {self.run_dir} already exists but holds no checkpoint (a run that failed "
                    f"before its first one?): delete it (rm -r {self.run_dir}) and run again, or choose another --out"
                )
            raise ConfigError(
                f"run directory {self.run_dir} already exists; pass --resume to continue it or choose another --out"
            )
        self._created_dir = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run.metarl_version = __version__
        write_run_config(self.run_dir / "config.yaml", self.run)

    def train(self) -> TrainResult:
        """Run iterations ``[start, run.iterations)``; returns totals and the last metrics row."""
        run = self.run
        if self.resume:
            self._prepare_dir()
        # Validate the config and env before a fresh run directory is created.
        config = build_config(self.agent_cls.config_cls, run.config, source=f"{self.run_dir}/config.yaml" if self.resume else "config")
        spaces = env_spaces(run.env, run.env_kwargs)
        if self.resume:
            return self._train(config, spaces)
        run.config = config_to_dict(config)  # the resolved config, every field
        self._prepare_dir()
        try:
            return self._train(config, spaces)
        except BaseException:
            # A fresh run that fails before its first checkpoint leaves nothing to resume: remove what
            # it wrote, so the corrected command is not refused for an existing run directory.
            if not list_checkpoints(self.checkpoint_dir):
                self._remove_run_dir()
            raise

    def _remove_run_dir(self) -> None:
        if self._created_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        else:  # the user's own (empty) folder: keep it, empty again
            for p in self.run_dir.iterdir():
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)

    def _train(self, config: Any, spaces: dict[str, str]) -> TrainResult:
        run = self.run
        seed_everything(run.seed)
        agent = build_agent(self.agent_cls, run.env, config, seed=run.seed, device=run.device, env_kwargs=run.env_kwargs)
        agent.threads = self.threads  # train_iteration runs under it (metarl.threads)
        spaces = {**spaces, **agent.spaces_signature()}
        opts = run.trainer
        sampler = attach_sampler(agent, opts.get("sampler", "local"), num_workers=opts.get("num_workers", 2), address=opts.get("ray_address"))

        start, env_steps, wall_s, logger_step, resumed_from = 0, 0, 0.0, 0, None
        if self.resume:
            remove_stray_temps(self.checkpoint_dir)  # of a write that was killed
        if self.resume and list_checkpoints(self.checkpoint_dir):
            path, state = load_latest_checkpoint(self.checkpoint_dir, required=TRAINING_KEYS)
            check_spaces(state["spaces"], spaces, source=f"checkpoint {path}")
            agent.load_state_dict(state["agent"])
            restore_rng_states(state["rng"])
            start, env_steps, wall_s = int(state["iteration"]), int(state["env_steps"]), float(state["wall_s"])
            logger_step, resumed_from = int(state["logger_step"]), int(state["iteration"])
        metrics_path = self.run_dir / "metrics.jsonl"
        if self.resume:
            truncate_metrics(metrics_path, start)
        outputs = [JSONLOutput(metrics_path), TensorBoardOutput(self.run_dir / "tb", purge_step=start)]
        if self.log_every and self.console is not None:
            outputs.append(StdoutOutput(self.log_every, self.console))
        logger = Logger(outputs, step=logger_step)

        headline = getattr(agent, "headline", "rollout/return")
        last: dict[str, Any] = {}
        progress = _progress(self.console)
        try:
            with progress:
                bar = progress.add_task(
                    f"train {run.agent} on {run.env}", total=run.iterations, completed=start, headline=""
                )
                for it in range(start, run.iterations):
                    t0 = time.perf_counter()
                    metrics = dict(agent.train_iteration(it))
                    wall_s += time.perf_counter() - t0
                    if "env_steps" not in metrics:
                        raise ConfigError(
                            f"{self.agent_cls.__name__}.train_iteration must return 'env_steps' (env steps this iteration)"
                        )
                    env_steps += int(metrics.pop("env_steps"))
                    value = metrics.get(headline)
                    if value is not None and not math.isfinite(float(value)):
                        raise TrainingDivergedError(f"iteration {it}: {headline} is {float(value)}")
                    logger.record_dict(metrics)
                    last = logger.dump({"iteration": it, "env_steps": env_steps, "wall_s": round(wall_s, 6)})
                    shown = f"{headline} {float(value):.4g}" if value is not None else ""
                    progress.update(bar, advance=1, headline=shown)
                    if (it + 1) % self.checkpoint_every == 0 or it + 1 == run.iterations:
                        self._save(agent, it + 1, env_steps, wall_s, logger.step, spaces)
        finally:
            logger.close()
            if sampler is not None:
                sampler.close()
        return TrainResult(self.run_dir, run.iterations, env_steps, wall_s, last, resumed_from)

    def _save(self, agent: Agent, iteration: int, env_steps: int, wall_s: float, logger_step: int, spaces: dict) -> None:
        state = {
            "iteration": iteration,
            "env_steps": env_steps,
            "wall_s": wall_s,
            "logger_step": logger_step,
            "rng": capture_rng_states(),
            "spaces": spaces,
            "run": {"agent": self.run.agent, "env": self.run.env, "seed": self.run.seed},
            "agent": agent.state_dict(),
        }
        save_checkpoint(checkpoint_path(self.checkpoint_dir, iteration), state)
        if self.keep_checkpoints:
            for _, old in list_checkpoints(self.checkpoint_dir)[: -self.keep_checkpoints]:
                old.unlink(missing_ok=True)


def load_run(
    run_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    env_id: str | None = None,
    device: str | None = None,
    threads: Any = None,
) -> tuple[Agent, RunConfig, dict[str, Any]]:
    """Rebuild a run's agent from ``config.yaml`` and a checkpoint (default: the newest).

    ``env_id`` loads the agent for another env (its spaces must match the checkpoint's);
    ``threads`` overrides the run's thread setting (``trainer.threads``, default ``"auto"``).

    Raises:
        ConfigError: ``run_dir`` is not a run directory.
        CheckpointError: no checkpoint that verifies, or a given ``checkpoint`` that does not
            (naming the file).
        SpaceMismatchError: the env's spaces differ from the checkpoint's (both listed).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist")
    run = read_run_config(run_dir / "config.yaml")
    if env_id is not None and env_id != run.env:
        check_meta_env_id(env_id)
        run.env, run.env_kwargs = env_id, {}
    if device is not None:
        run.device = device
    check_device(run.device)
    thread_setting = check_threads(run.trainer.get("threads", "auto") if threads is None else threads)
    if checkpoint is not None:
        path = Path(checkpoint)
        state = load_checkpoint(path, required=TRAINING_KEYS)
    else:  # the newest that verifies; a newer corrupt one is skipped with a CheckpointWarning
        path, state = load_latest_checkpoint(run_dir / "checkpoints", required=TRAINING_KEYS)
    # Compare spaces before building the agent: an agent built for the wrong env may fail obscurely.
    check_spaces(state["spaces"], env_spaces(run.env, run.env_kwargs), source=f"checkpoint {path}")
    agent_cls = load_agent_class(run.agent)
    config = build_config(agent_cls.config_cls, run.config, source=f"{run_dir}/config.yaml")
    seed_everything(run.seed)
    agent = build_agent(agent_cls, run.env, config, seed=run.seed, device=run.device, env_kwargs=run.env_kwargs)
    check_spaces(state["spaces"], {**env_spaces(run.env, run.env_kwargs), **agent.spaces_signature()}, source=f"checkpoint {path}")
    agent.load_state_dict(state["agent"])
    agent.threads = thread_setting
    return agent, run, state


def _progress(console: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[headline]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=console is None or not console.is_terminal,
    )


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return value


def _non_negative(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative int, got {value!r}")
    return value
