"""The ``metarl`` command line (tyro, driven by typed config dataclasses).

::

    metarl envs                                   # registered ids, what varies, defaults
    metarl train AGENT [--env ID] [--config PRESET] [--seed S] [--iterations N]
                       [--device cpu|cuda] [--out DIR] [--resume] [agent config flags]
    metarl eval DIR [--num-tasks N] [--seed S]    # -> DIR/eval.json, DIR/adaptation.png
    metarl bench throughput --env ID --num-envs N [N ...]
    metarl bench adaptation DIR [DIR ...]

``AGENT`` is a registered name (``metarl.agent.AGENTS``) or a ``module:Class`` path. Agent config
flags come from the agent's config dataclass (its field docstrings are the help text); a preset
(``--config``) sets their defaults and explicit flags override it. A user mistake (unknown agent,
env, flag or preset, invalid value, missing run directory, bad checkpoint) prints one line on
stderr and exits non-zero; it never prints a traceback.

>>> main(["--version"])
metarl 0.1.0
0
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import sys
import typing
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import tyro

from metarl.errors import ConfigError, MetaRLError, MetaRLWarning

__all__ = ["main", "plain_help", "EvalArgs", "EnvsArgs", "ThroughputArgs", "AdaptationArgs"]

_COMMANDS = {
    "envs": "list the registered meta-envs (id, what varies, defaults)",
    "train": "train an agent: metarl train AGENT [--env ID] [--config PRESET] ...",
    "eval": "evaluate a run on held-out tasks: writes DIR/eval.json and DIR/adaptation.png",
    "bench": "benchmarks: `bench throughput` (native vs SyncVectorEnv), `bench adaptation DIR...`",
}


class UsageError(Exception):
    """A command-line mistake caught by the parser (printed as one line, exit status 2)."""


# --- argument dataclasses -----------------------------------------------------------------------
@dataclass
class EnvsArgs:
    """List the registered metarl meta-envs."""

    ids_only: bool = False
    """Print only the ids, one per line."""


@dataclass
class EvalArgs:
    """Adapt a trained run to the env's held-out tasks; write DIR/eval.json and DIR/adaptation.png."""

    run_dir: tyro.conf.Positional[Path]
    """Run directory written by ``metarl train``."""
    num_tasks: int | None = None
    """Number of held-out tasks (the first N of the fixed list); default: all."""
    seed: int = 0
    """Evaluation seed (same seed and checkpoint give an identical eval.json)."""
    chunk_size: int = 10
    """Tasks per ``Agent.evaluate`` call (chunk i uses seed + i); the progress bar moves per chunk."""
    checkpoint: Path | None = None
    """Checkpoint file; default: the run's newest."""
    env: str | None = None
    """Evaluate on another env id (its spaces must match the checkpoint's); default: the run's env."""
    device: str | None = None
    """Device of the agent's networks; default: the run's."""
    threads: str | None = None
    """torch intra-op CPU threads: auto (one) or a positive int; default: the run's setting."""
    trials_per_task: int | None = None
    """Trials per held-out task for agents that run several (RL², PEARL: their eval_trials_per_task); default: the run's setting."""
    relabel: bool | None = None
    """RL²: score each trial on a randomly relabeled copy of its held-out task (bandit arms, MDP states and actions), True or False; default: the run's eval_relabel (on)."""


@dataclass
class ThroughputArgs:
    """Env-steps/s of the native batched env vs Gymnasium SyncVectorEnv of the same single envs."""

    env: str = "metarl/Navigation2D-v0"
    """Env id."""
    num_envs: tuple[int, ...] = (16, 256, 4096)
    """Numbers of sub-envs to measure."""
    seconds: float = 1.0
    """Time budget of each measurement."""
    include_async: bool = False
    """Also measure AsyncVectorEnv (subprocesses; slow to start)."""


@dataclass
class AdaptationArgs:
    """Table of held-out adaptation of trained runs, with the baselines their agents provide."""

    run_dirs: tyro.conf.Positional[tuple[Path, ...]]
    """Run directories."""
    num_tasks: int | None = None
    """Held-out tasks per run (when an evaluation is (re)run); default: all."""
    seed: int = 0
    """Evaluation seed."""
    rerun: bool = False
    """Re-evaluate even if the run has an eval.json with this seed and task count."""


# --- parsing ------------------------------------------------------------------------------------
_BOX_CHARS = "│╭╰╮╯─┃━┏┓┗┛|+-=_ \t"


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _one_line(text: str) -> str:
    """The gist of a tyro error box as one line (its message, plus 'did you mean').

    tyro draws the box with unicode or ASCII characters depending on the terminal, coloured with
    ANSI escapes on a real terminal; all are handled: escapes are dropped, separator lines split
    the box into sections, the first section is the message.
    """
    text = _ANSI.sub("", text).replace("\r", "")
    sections: list[list[str]] = [[]]
    for raw in text.splitlines():
        if "╭" in raw or "╰" in raw:  # unicode title/bottom border
            continue
        line = raw.strip(_BOX_CHARS.replace("-", "").replace("_", "").replace("=", "").replace("+", "")).strip()
        if not raw.strip(_BOX_CHARS):
            if sections[-1]:
                sections.append([])
            continue
        sections[-1].append(line)
    sections = [sec for sec in sections if sec]
    if not sections:
        return re.sub(r"\s+", " ", text).strip()
    if len(sections) > 1 and len(sections[0]) == 1 and not re.search(r"[:'\"]", sections[0][0]):
        sections = sections[1:]  # an ASCII box's title line
    msg = " ".join(sections[0])
    for sec in sections[1:]:
        if sec[0].startswith("Perhaps you meant") and len(sec) > 1:
            msg += f" (did you mean {sec[1].split()[0]}?)"
            break
    return re.sub(r"\s+", " ", msg).strip(" │|┃")


# reStructuredText roles (:class:`~a.B`, :func:`f`) and literals (``x``) in docstrings become
# plain text in --help: tyro prints docstrings verbatim.
_RST_ROLE = re.compile(r":(?:[a-z]+:)?[a-z]+:`~?([^`<]*?)(?:\s*<[^`>]*>)?`")
_RST_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)


def plain_help(text: str | None) -> str | None:
    """``text`` without reStructuredText markup (for help output).

    >>> plain_help("Run dir (``runs/x``); see :class:`~metarl.trainer.Trainer` and :func:`f`.")
    'Run dir (runs/x); see Trainer and f.'
    """
    if not text:
        return text

    def role(m: re.Match) -> str:
        target = m.group(1).strip()
        return target.rpartition(".")[2] if m.group(0).split("`")[1].startswith("~") else target

    return _RST_LITERAL.sub(r"\1", _RST_ROLE.sub(role, text))


@contextlib.contextmanager
def _plain_docstrings() -> Any:
    """While tyro builds a parser, hand it docstrings without reStructuredText markup."""
    from tyro import _docstrings

    field_doc, callable_doc = _docstrings.get_field_docstring, _docstrings.get_callable_description

    def field_docstring(*args: Any, **kwargs: Any) -> str | None:
        return plain_help(field_doc(*args, **kwargs))

    def callable_description(*args: Any, **kwargs: Any) -> str:
        return plain_help(callable_doc(*args, **kwargs)) or ""

    _docstrings.get_field_docstring = field_docstring
    _docstrings.get_callable_description = callable_description
    try:
        yield
    finally:
        _docstrings.get_field_docstring, _docstrings.get_callable_description = field_doc, callable_doc


def _parse(cls: Any, args: Sequence[str], prog: str, default: Any = None, description: str | None = None) -> Any:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), _plain_docstrings():
            kwargs = {"default": default} if default is not None else {}
            return tyro.cli(cls, args=list(args), prog=prog, description=plain_help(description), **kwargs)
    except SystemExit as e:
        if e.code in (0, None):
            raise
        raise UsageError(f"{prog}: {_one_line(err.getvalue())}") from None


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # logs and pipes: do not fold tables at 80 columns
    return console


# --- commands -----------------------------------------------------------------------------------
def _cmd_envs(args: Sequence[str]) -> int:
    from rich.table import Table

    from metarl.registry import registered_envs

    opts = _parse(EnvsArgs, args, "metarl envs")
    envs = registered_envs()
    if opts.ids_only:
        print("\n".join(envs))
        return 0
    table = Table(title="metarl meta-envs", show_lines=False)
    table.add_column("id", no_wrap=True)
    for col in ("task varies", "defaults", "description", "source"):
        table.add_column(col, overflow="fold")
    for info in envs.values():
        defaults = ", ".join(f"{k}={v}" for k, v in info.defaults.items())
        table.add_row(info.id, info.varies, defaults, info.description, info.source)
    _console().print(table)
    return 0


def _prescan(args: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in ``args`` (``--flag V`` or ``--flag=V``) before tyro parses them."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _explicit_flags(args: Sequence[str]) -> set[str]:
    names = set()
    for a in args:
        if a.startswith("--"):
            name = a[2:].split("=", 1)[0].replace("-", "_")
            names.add(name)
            if name.startswith("no_"):
                names.add(name[3:])
    return names


def _without_fields(config_cls: type, names: set[str]) -> type:
    """A subclass of ``config_cls`` whose fields ``names`` are hidden from the command line."""
    hints = typing.get_type_hints(config_cls)
    redeclared = []
    for f in dataclasses.fields(config_cls):
        if f.name in names:
            default = f.default if f.default is not dataclasses.MISSING else dataclasses.MISSING
            spec = field(default=default) if f.default_factory is dataclasses.MISSING else field(default_factory=f.default_factory)
            redeclared.append((f.name, Annotated[hints[f.name], tyro.conf.Suppress], spec))
    return dataclasses.make_dataclass(config_cls.__name__, redeclared, bases=(config_cls,))


def _train_help() -> str:
    from metarl.agent import AGENTS
    from metarl.config import list_presets

    presets = list_presets()
    return (
        "usage: metarl train AGENT [--env ID] [--config PRESET] [--seed S] [--iterations N]\n"
        "                    [--device cpu|cuda] [--out DIR] [--resume] [agent config flags]\n\n"
        f"AGENT: one of {', '.join(sorted(AGENTS))}, or a module:Class path to an Agent subclass.\n"
        f"presets: {', '.join(presets) if presets else '(none installed)'}\n"
        "`metarl train AGENT --help` lists the trainer options and that agent's config flags."
    )


def _cmd_train(args: Sequence[str]) -> int:
    from metarl import __version__
    from metarl.agent import load_agent_class
    from metarl.config import (
        RunConfig,
        TrainOptions,
        build_config,
        config_to_dict,
        load_preset,
        read_run_config,
    )
    from metarl.evaluation import adaptation_gain, evaluate_run
    from metarl.meta_env import check_seed
    from metarl.registry import check_meta_env_id
    from metarl.threads import check_threads
    from metarl.trainer import Trainer, default_run_dir

    if not args or args[0] in ("-h", "--help"):
        print(_train_help())
        return 0 if args else 2
    agent_spec, rest = args[0], list(args[1:])
    if agent_spec.startswith("-"):
        raise UsageError(f"metarl train: the first argument must be AGENT, got {agent_spec!r}")
    agent_cls = load_agent_class(agent_spec)
    config_cls = agent_cls.config_cls
    preset_name = _prescan(rest, "--config")
    preset = load_preset(preset_name) if preset_name and "--help" not in rest and "-h" not in rest else None
    if preset is not None and preset.agent != agent_spec and load_agent_class(preset.agent) is not agent_cls:
        raise ConfigError(f"preset {preset.name!r} is for agent {preset.agent!r}, not {agent_spec!r}")
    base = build_config(config_cls, preset.config if preset else {}, source=f"preset {preset.name!r}" if preset else "config")

    # A config field named like a trainer option (e.g. MAML's `iterations`) is set by that option:
    # it is hidden from the agent's flags, so every other flag keeps its plain `--name`.
    clash = {f.name for f in dataclasses.fields(TrainOptions)} & {f.name for f in dataclasses.fields(config_cls) if f.init}
    cli_cls = _without_fields(config_cls, clash) if clash else config_cls
    cli_base = cli_cls(**{f.name: getattr(base, f.name) for f in dataclasses.fields(config_cls) if f.init})
    combined = dataclasses.make_dataclass(
        "TrainArgs",
        [
            ("trainer", Annotated[TrainOptions, tyro.conf.OmitArgPrefixes], field(default_factory=TrainOptions)),
            ("agent", Annotated[cli_cls, tyro.conf.OmitArgPrefixes], field(default_factory=lambda: cli_base)),
        ],
    )
    doc = (agent_cls.__doc__ or "").strip().splitlines()
    description = f"Train {agent_spec}: {doc[0] if doc else agent_cls.__name__}"
    if preset is not None:
        description += f"  [preset {preset.name}: {preset.source}]"
    parsed = _parse(combined, rest, f"metarl train {agent_spec}", default=combined(TrainOptions(), cli_base), description=description)
    opts: TrainOptions = parsed.trainer
    check_seed(opts.seed, "--seed")
    values = {f.name: getattr(parsed.agent, f.name) for f in dataclasses.fields(config_cls) if f.init}
    explicit = _explicit_flags(rest)
    values.update({name: getattr(opts, name) for name in clash if name in explicit})
    cfg = build_config(config_cls, values, source="command line")

    env = opts.env or (preset.env if preset else None) or getattr(agent_cls, "default_env", None)
    if not env:
        raise ConfigError(f"agent {agent_spec!r} has no default_env; pass --env ID")
    check_meta_env_id(env)
    if preset is not None and env == preset.env:
        env_kwargs = dict(preset.env_kwargs)
    elif env == getattr(agent_cls, "default_env", None):
        env_kwargs = dict(getattr(agent_cls, "default_env_kwargs", None) or {})
    else:
        env_kwargs = {}
    console = _console()
    if preset is not None and preset.env_kwargs and env != preset.env:
        _console(stderr=True).print(f"note: preset env_kwargs {preset.env_kwargs} are for {preset.env}; not used for {env}")
    out = opts.out or default_run_dir(agent_spec, env, opts.seed)
    trainer_opts = {
        "checkpoint_every": opts.checkpoint_every,
        "keep_checkpoints": opts.keep_checkpoints,
        "log_every": opts.log_every,
        "eval_tasks": opts.eval_tasks,
        "threads": check_threads(opts.threads),  # the thread policy (metarl.threads)
        "sampler": opts.sampler,
        "num_workers": opts.num_workers,
        "ray_address": opts.ray_address,
    }
    if opts.resume:
        run = read_run_config(Path(out) / "config.yaml")
        stored = {"env": run.env, "seed": run.seed, "device": run.device, "config": run.preset}
        given = {"env": env, "seed": opts.seed, "device": opts.device, "config": preset.name if preset else None}
        new_cfg = config_to_dict(cfg)
        conflicts = [f"--{k.replace('_', '-')}: run has {stored[k]!r}, given {given[k]!r}" for k in stored if k in explicit and stored[k] != given[k]]
        conflicts += [
            f"--{k.replace('_', '-')}: run has {run.config.get(k)!r}, given {new_cfg[k]!r}"
            for k in new_cfg
            if k in explicit and k not in clash and run.config.get(k) != new_cfg[k]
        ]
        if run.agent != agent_spec and load_agent_class(run.agent) is not agent_cls:
            conflicts.insert(0, f"AGENT: run has {run.agent!r}, given {agent_spec!r}")
        if conflicts:
            raise ConfigError(f"--resume continues {out} with its stored config; conflicting: {'; '.join(conflicts)}")
        if opts.iterations is not None:
            run.iterations = opts.iterations
        for name in clash & explicit:
            run.config[name] = getattr(opts, name)
        run.trainer.update({k: v for k, v in trainer_opts.items() if k in explicit})
    else:
        iterations = opts.iterations
        if iterations is None:
            iterations = getattr(cfg, "iterations", None) or getattr(agent_cls, "default_iterations", None) or 100
        run = RunConfig(
            agent=agent_spec,
            env=env,
            seed=opts.seed,
            iterations=int(iterations),
            device=opts.device,
            config=config_to_dict(cfg),
            env_kwargs=env_kwargs,
            preset=preset.name if preset else None,
            trainer=trainer_opts,
            metarl_version=__version__,
        )
    result = Trainer(run, out, resume=opts.resume, console=console).train()
    console.print(
        f"trained {run.agent} on {run.env}: {result.iterations} iterations, {result.env_steps:,} env steps, "
        f"{result.wall_s:.1f} s -> {result.run_dir}"
    )
    n_eval = int(run.trainer.get("eval_tasks", 0))
    if n_eval > 0:
        from metarl.evaluation import held_out_tasks

        n_eval = min(n_eval, len(held_out_tasks(run.env, run.env_kwargs)))
        summary = evaluate_run(result.run_dir, num_tasks=n_eval, seed=run.seed, write=False, console=console)
        pre, post = summary["curve"][0]["mean_return"], summary["curve"][-1]["mean_return"]
        what = "gradient steps" if summary["x"] == "gradient_steps" else "episodes"
        console.print(
            f"adaptation gain on {n_eval} held-out tasks: {adaptation_gain(summary):+.4g} "
            f"(mean return {pre:.4g} -> {post:.4g} over {len(summary['curve']) - 1} {what}); "
            f"full evaluation: metarl eval {result.run_dir}"
        )
    return 0


def _cmd_eval(args: Sequence[str]) -> int:
    from rich.table import Table

    from metarl.config import check_writable_dir
    from metarl.evaluation import adaptation_gain, evaluate_run
    from metarl.meta_env import check_count, check_seed
    from metarl.registry import check_meta_env_id

    opts = _parse(EvalArgs, args, "metarl eval")
    check_seed(opts.seed, "--seed")
    check_count(opts.chunk_size, "--chunk-size")
    if opts.num_tasks is not None:  # the upper bound (the env's held-out count) is checked on load
        check_count(opts.num_tasks, "--num-tasks")
    if opts.trials_per_task is not None:  # whether the agent has trials per task is checked on load
        check_count(opts.trials_per_task, "--trials-per-task")
    if opts.env is not None:
        check_meta_env_id(opts.env)
    if opts.run_dir.is_dir():  # eval.json and adaptation.png go there: fail before evaluating
        check_writable_dir(opts.run_dir, "run directory")
    console = _console()
    summary = evaluate_run(
        opts.run_dir,
        num_tasks=opts.num_tasks,
        seed=opts.seed,
        chunk_size=opts.chunk_size,
        checkpoint=opts.checkpoint,
        env_id=opts.env,
        device=opts.device,
        threads=opts.threads,
        trials_per_task=opts.trials_per_task,
        relabel=opts.relabel,
        console=console,
    )
    trials = f", {summary['trials_per_task']} trials each" if "trials_per_task" in summary else ""
    trials += " (relabeled)" if summary.get("relabeled") else ""
    table = Table(title=f"{summary['agent']} on {summary['env_id']}: {summary['num_tasks']} held-out tasks{trials}, seed {summary['seed']}")
    table.add_column(summary["x"], justify="right")
    table.add_column("mean return", justify="right")
    table.add_column("95% CI", justify="right")
    for p in summary["curve"]:
        table.add_row(str(p["x"]), f"{p['mean_return']:.4g}", _ci(p["ci95"]))
    if "trial_return" in summary:
        table.add_row("trial", f"{summary['trial_return']['mean']:.4g}", _ci(summary["trial_return"]["ci95"]))
    for name, b in summary.get("baselines", {}).items():
        table.add_row(f"baseline {name}", f"{b['mean']:.4g}", _ci(b["ci95"]))
    console.print(table)
    console.print(f"adaptation gain {adaptation_gain(summary):+.4g}; wrote {opts.run_dir / 'eval.json'} and {opts.run_dir / 'adaptation.png'}")
    return 0


def _ci(value: float | None) -> str:
    return "-" if value is None else f"±{value:.3g}"


def _cmd_bench(args: Sequence[str]) -> int:
    subs = {"throughput": ThroughputArgs, "adaptation": AdaptationArgs}
    if not args or args[0] in ("-h", "--help"):
        print("usage: metarl bench {throughput,adaptation} [--help]\n")
        for name, cls in subs.items():
            print(f"  {name:<11} {cls.__doc__}")
        return 0 if args else 2
    if args[0] not in subs:
        raise UsageError(f"metarl bench: unknown benchmark {args[0]!r}; choose from {', '.join(subs)}")
    if args[0] == "throughput":
        return _bench_throughput(_parse(ThroughputArgs, args[1:], "metarl bench throughput"))
    return _bench_adaptation(_parse(AdaptationArgs, args[1:], "metarl bench adaptation"))


def _bench_throughput(opts: ThroughputArgs) -> int:
    import platform

    from rich.table import Table

    from metarl.benchmarking import check_memory, ratio_table
    from metarl.registry import check_meta_env_id

    check_meta_env_id(opts.env)
    if not opts.num_envs or min(opts.num_envs) < 1:
        raise ConfigError(f"--num-envs must be positive ints, got {list(opts.num_envs)}")
    if not 0 < opts.seconds < float("inf"):
        raise ConfigError(f"--seconds must be a positive finite number, got {opts.seconds}")
    modes = ("native", "sync", "async") if opts.include_async else ("native", "sync")
    check_memory(opts.env, list(opts.num_envs), modes)  # before allocating any of them
    console = _console()
    rows = []
    with console.status(f"measuring {opts.env} ({', '.join(modes)}) ..."):
        rows = ratio_table(opts.env, list(opts.num_envs), modes=modes, seconds=opts.seconds)
    table = Table(title=f"{opts.env} env-steps/s ({platform.machine()}, {os.cpu_count()} cores, one run)")
    table.add_column("num_envs", justify="right")
    for m in modes:
        table.add_column(f"{m} steps/s", justify="right")
    table.add_column("native / sync", justify="right")
    for r in rows:
        table.add_row(str(r["num_envs"]), *(f"{r[f'{m}_steps_per_s']:,.0f}" for m in modes), f"{r['native_over_sync']:.1f}x")
    console.print(table)
    return 0


def _bench_adaptation(opts: AdaptationArgs) -> int:
    import json

    from rich.table import Table

    from metarl.evaluation import adaptation_gain, evaluate_run
    from metarl.meta_env import check_count, check_seed

    check_seed(opts.seed, "--seed")
    if opts.num_tasks is not None:
        check_count(opts.num_tasks, "--num-tasks")
    console = _console()
    table = Table(title="held-out adaptation (mean ± 95% CI)")
    for col in ("run", "agent", "env", "tasks", "pre", "post", "gain", "trial return", "baselines"):
        table.add_column(col, overflow="fold")
    for run_dir in opts.run_dirs:
        summary = None
        path = run_dir / "eval.json"
        if path.is_file() and not opts.rerun:
            try:
                cached = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                cached = None
            if cached and cached.get("seed") == opts.seed and (opts.num_tasks is None or cached.get("num_tasks") == opts.num_tasks):
                summary = cached
        if summary is None:
            summary = evaluate_run(run_dir, num_tasks=opts.num_tasks, seed=opts.seed, console=console)
        c0, c1 = summary["curve"][0], summary["curve"][-1]
        trial = summary.get("trial_return")
        table.add_row(
            str(run_dir),
            summary["agent"],
            summary["env_id"],
            str(summary["num_tasks"]),
            f"{c0['mean_return']:.4g} {_ci(c0['ci95'])}",
            f"{c1['mean_return']:.4g} {_ci(c1['ci95'])}",
            f"{adaptation_gain(summary):+.4g}",
            f"{trial['mean']:.4g} {_ci(trial['ci95'])}" if trial else "-",
            "; ".join(f"{k} {v['mean']:.4g} {_ci(v['ci95'])}" for k, v in summary.get("baselines", {}).items()) or "-",
        )
    console.print(table)
    return 0


# --- entry point --------------------------------------------------------------------------------
def _usage() -> str:
    lines = ["usage: metarl {envs,train,eval,bench} ... [--help]", "", "commands:"]
    lines += [f"  {name:<6} {text}" for name, text in _COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``metarl`` command line; returns the exit status (0 ok, 1 error, 2 usage)."""
    args = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        warnings.simplefilter("always", MetaRLWarning)
        other = warnings.showwarning

        def show(message: Any, category: type, *rest: Any, **kwargs: Any) -> None:
            # metarl's own warnings as one line (no file:line, no source); others as Python shows them.
            if issubclass(category, MetaRLWarning):
                print(f"metarl: warning: {_flat(message)}", file=sys.stderr)
            else:
                other(message, category, *rest, **kwargs)

        warnings.showwarning = show
        return _main(args)


def _main(args: list[str]) -> int:
    try:
        if not args or args[0] in ("-h", "--help"):
            print(_usage())
            return 0 if args else 2
        if args[0] in ("-V", "--version"):
            from metarl import __version__

            print(f"metarl {__version__}")
            return 0
        commands = {"envs": _cmd_envs, "train": _cmd_train, "eval": _cmd_eval, "bench": _cmd_bench}
        if args[0] not in commands:
            import difflib

            close = difflib.get_close_matches(args[0], list(commands), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"unknown command {args[0]!r}{hint} (commands: {', '.join(commands)})")
        return commands[args[0]](args[1:])
    except UsageError as e:
        print(f"metarl: usage error: {e}", file=sys.stderr)
        return 2
    except MetaRLError as e:
        print(f"metarl: error: {_flat(e)}", file=sys.stderr)
        return 1
    except OSError as e:  # the file system said no (permissions, disk full, ...): the user can act on it
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"metarl: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except MemoryError:
        print("metarl: error: out of memory; use smaller sizes (e.g. --num-envs, --meta-batch-size)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("metarl: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:  # --help from tyro
        return int(e.code or 0)


def _flat(e: BaseException) -> str:
    return re.sub(r"\s*\n\s*", " ", str(e)).strip()


if __name__ == "__main__":
    sys.exit(main())
