"""Config dataclasses, YAML presets and the resolved run config.

An agent's config is a dataclass with a docstring on every field (``Agent.config_cls``); the
command line is generated from it by tyro. A *preset* is ``metarl/presets/<name>.yaml``, named
after its paper setting::

    agent: maml                       # AGENTS key
    env: metarl/HalfCheetahVel-v0     # env id
    source: "Finn et al. 2017, §5.3"  # where the numbers come from
    description: "one line"
    config: {meta_batch_size: 40}     # fields of the agent's config dataclass
    env_kwargs: {}                    # optional kwargs for the env

Every float field of a config is checked generically (:func:`check_numbers`, run by
:func:`build_config`): it must be finite, and non-negative unless the field declares another
range with :func:`number_range` (e.g. a coefficient that may be negative). Agents add their
tighter per-field checks (``> 0``, ``<= 1``) on top.

Precedence: dataclass defaults < preset < command-line flags. The resolved values are written to
the run directory as ``config.yaml`` (:class:`RunConfig`).

>>> from dataclasses import dataclass
>>> @dataclass
... class Cfg:
...     lr: float = 0.1
...     '''learning rate'''
...     hidden: tuple[int, ...] = (32,)
...     '''hidden sizes'''
>>> build_config(Cfg, {"hidden": [8, 8]})
Cfg(lr=0.1, hidden=(8, 8))
>>> build_config(Cfg, {"lrr": 1.0}, source="preset p")
Traceback (most recent call last):
...
metarl.errors.ConfigError: preset p: unknown field 'lrr' of Cfg; did you mean 'lr'?
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tempfile
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from metarl.errors import ConfigError

__all__ = [
    "TrainOptions",
    "Preset",
    "RunConfig",
    "list_presets",
    "load_preset",
    "build_config",
    "check_numbers",
    "number_range",
    "check_writable_dir",
    "config_to_dict",
    "read_run_config",
    "write_run_config",
]

_PRESET_KEYS = {"agent", "env", "source", "description", "config", "env_kwargs"}


@dataclass
class TrainOptions:
    """Trainer-level options of ``metarl train`` (not part of any agent's config)."""

    env: str | None = None
    """Env id (``metarl envs`` lists them); default: the preset's env, else the agent's default env."""
    config: str | None = None
    """Preset name (``metarl/presets/<name>.yaml``) or path to a preset YAML file."""
    seed: int = 0
    """Seed of the run (python, numpy and torch global RNGs and the agent's own generators)."""
    iterations: int | None = None
    """Meta-iterations to train (total, counting those already done when resuming); default: the agent config's ``iterations`` if it has one, else 100."""
    device: str = "cpu"
    """Device of networks and updates: cpu, cuda or cuda:N (envs always step on CPU)."""
    out: Path | None = None
    """Run directory; default ``runs/<agent>-<env name>-s<seed>``."""
    resume: bool = False
    """Continue the run in ``--out`` from its latest checkpoint (exactly, as if never stopped)."""
    checkpoint_every: int = 10
    """Save a checkpoint every this many iterations (and always after the last)."""
    keep_checkpoints: int = 3
    """Keep only the newest this many checkpoints (0 keeps all)."""
    log_every: int = 10
    """Print a metrics line every this many iterations (0: only the progress bar)."""
    eval_tasks: int = 10
    """Held-out tasks of the quick evaluation printed at the end (adaptation gain); 0 skips it."""
    threads: str = "auto"
    """torch intra-op CPU threads: auto (one; see metarl.threads) or a positive int. Results are bit-identical only under the same setting (--resume keeps the run's unless given)."""
    sampler: str = "local"
    """Where rollouts are collected: ``local`` (this process) or ``ray`` (Ray actors; ``pip install "metarl-lab[ray]"``). Same bits either way."""
    num_workers: int = 2
    """Ray sampling actors (``--sampler ray``); each steps one batched env holding a shard of the meta-batch."""
    ray_address: str | None = None
    """Ray cluster to join (``auto``, ``ray://HOST:10001``); default: start a local one (``--sampler ray``)."""


@dataclass(frozen=True)
class Preset:
    """A parsed preset file."""

    name: str
    agent: str
    env: str
    source: str = ""
    description: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    path: str = ""


def list_presets() -> list[str]:
    """Names of the presets shipped in ``metarl/presets``."""
    folder = resources.files("metarl").joinpath("presets")
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> Preset:
    """Load a shipped preset by name, or a preset file by path (``.yaml``/``.yml``).

    Raises:
        ConfigError: unknown name (with suggestions), unreadable YAML, missing or unknown keys.
    """
    if name.endswith((".yaml", ".yml")) or os.sep in name:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"preset file {name!r} does not exist")
        text, label = path.read_text(encoding="utf-8"), path.stem
    else:
        ref = resources.files("metarl").joinpath("presets", f"{name}.yaml")
        if not ref.is_file():
            known = list_presets()
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            listing = f" (known: {', '.join(known)})" if known else " (no presets are installed)"
            raise ConfigError(f"unknown preset {name!r}{hint}{listing}")
        text, label, path = ref.read_text(encoding="utf-8"), name, Path(str(ref))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"preset {label!r} ({path}) is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"preset {label!r} ({path}) must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - _PRESET_KEYS)
    if unknown:
        raise ConfigError(f"preset {label!r} has unknown key(s) {unknown}; allowed: {sorted(_PRESET_KEYS)}")
    for key in ("agent", "env"):
        if not isinstance(data.get(key), str):
            raise ConfigError(f"preset {label!r} needs a string {key!r}, got {data.get(key)!r}")
    for key in ("config", "env_kwargs"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ConfigError(f"preset {label!r}: {key!r} must be a mapping, got {data[key]!r}")
    return Preset(
        name=label,
        agent=data["agent"],
        env=data["env"],
        source=str(data.get("source") or ""),
        description=str(data.get("description") or ""),
        config=dict(data.get("config") or {}),
        env_kwargs=dict(data.get("env_kwargs") or {}),
        path=str(path),
    )


def _convert(name: str, tp: Any, value: Any, where: str) -> Any:
    """Check/convert a YAML value to a field type (lists -> tuples; int -> float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    bad = ConfigError(f"{where}: field {name!r} = {value!r} is not a valid {_type_name(tp)}")
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(name, a, value, where)
            except ConfigError:
                continue
        raise bad
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: field {name!r} = {value!r} must be one of {list(args)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(name, args[0], v, where) for v in value)
        if args and len(args) != len(value):
            raise bad
        return tuple(_convert(name, a, v, where) for a, v in zip(args, value, strict=False)) if args else tuple(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad
        return [_convert(name, args[0], v, where) for v in value] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise bad
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return build_config(tp, value, source=where)
    return value


#: Default range of a float config field: finite and non-negative (rates, coefficients, scales,
#: probabilities, dampings and regularisers all are).
DEFAULT_RANGE = (0.0, math.inf)


def number_range(low: float = -math.inf, high: float = math.inf) -> dict[str, Any]:
    """Field metadata declaring the allowed range of a float config field (finite is always required).

    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Cfg:
    ...     bias: float = field(default=-1.0, metadata=number_range(-10.0, 10.0))
    ...     lr: float = 0.1
    >>> check_numbers(Cfg(lr=float("nan")))
    Traceback (most recent call last):
    ...
    metarl.errors.ConfigError: config: Cfg.lr = nan must be a finite number >= 0.0
    >>> check_numbers(Cfg(bias=-2.0)).bias
    -2.0
    """
    return {"range": (float(low), float(high))}


def _is_float_type(tp: Any) -> bool:
    if tp is float:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_is_float_type(a) for a in args if a is not type(None))
    if origin in (tuple, list):
        return any(_is_float_type(a) for a in args if a is not Ellipsis)
    return False


def check_numbers(config: Any, *, source: str = "config") -> Any:
    """Check every float field of the dataclass ``config`` (and of nested config dataclasses).

    Each value (each element of a tuple of floats) must be a finite real number inside the field's
    declared :func:`number_range`, by default ``[0, inf)``. Returns ``config``.

    Raises:
        ConfigError: naming the field and the value.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ConfigError(f"{source}: expected a config dataclass instance, got {config!r}")
    hints = typing.get_type_hints(type(config))
    name = type(config).__name__
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_numbers(value, source=source)
            continue
        if not _is_float_type(hints.get(f.name)):
            continue
        low, high = f.metadata.get("range", DEFAULT_RANGE)
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if v is None:
                continue
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and low <= v <= high
            if not ok:
                allowed = f">= {low}" if high == math.inf and low > -math.inf else f"in [{low}, {high}]"
                raise ConfigError(f"{source}: {name}.{f.name} = {v!r} must be a finite number {allowed}")
    return config


def check_writable_dir(path: str | os.PathLike, what: str = "directory") -> Path:
    """Check that ``path`` is (or can be created as) a directory this process can write; returns it.

    Nothing is created. Raises :class:`ConfigError` naming the path when a file is in the way, a
    parent is not a directory, or the nearest existing folder is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a directory; choose another path or remove the file")
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} {path} cannot be created: {existing} is a file, not a directory")
    problem = None
    if not os.access(existing, os.W_OK | os.X_OK):
        problem = "permission denied"
    else:
        try:  # the real test (read-only mounts, ACLs); the probe file is removed on close
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as e:
            problem = e.strerror or str(e)
    if problem is not None:
        where = "" if existing == path else f" (its nearest existing parent {existing})"
        raise ConfigError(f"{what} {path} is not writable{where}: {problem}")
    return path


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def build_config(config_cls: type, values: dict[str, Any], *, source: str = "config") -> Any:
    """An instance of ``config_cls`` from defaults overridden by ``values`` (checked and converted).

    Raises:
        ConfigError: an unknown field (with a suggestion), a value of the wrong type, or a float
            field that is not finite or outside its range (:func:`check_numbers`).
    """
    if not dataclasses.is_dataclass(config_cls):
        raise ConfigError(f"{source}: config class {config_cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(config_cls) if f.init}
    hints = typing.get_type_hints(config_cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; fields: {', '.join(fields)}"
            raise ConfigError(f"{source}: unknown field {key!r} of {config_cls.__name__}{hint}")
        kwargs[key] = _convert(key, hints.get(key, Any), value, source)
    try:
        config = config_cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: invalid {config_cls.__name__}: {e}") from None
    return check_numbers(config, source=source)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain YAML/JSON values (tuples -> lists, paths -> str)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(config)


@dataclass
class RunConfig:
    """Everything that defines a run; written to ``<run>/config.yaml``."""

    agent: str
    """Agent name or ``module:Class`` path."""
    env: str
    seed: int
    iterations: int
    device: str
    config: dict[str, Any]
    """The agent config, resolved (defaults < preset < flags)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    trainer: dict[str, Any] = field(default_factory=dict)
    """checkpoint_every, keep_checkpoints, log_every, eval_tasks, threads."""
    metarl_version: str = ""


def write_run_config(path: str | os.PathLike, run: RunConfig) -> None:
    """Write ``run`` as YAML (atomically)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config_to_dict(run), sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)


def read_run_config(path: str | os.PathLike) -> RunConfig:
    """Read a run's ``config.yaml``; :class:`ConfigError` names the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist (not a metarl run directory?)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(RunConfig)}
    required = {f.name for f in dataclasses.fields(RunConfig) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(data))
    if missing:
        raise ConfigError(f"{path} is missing {missing}")
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{path} has unknown key(s) {unknown}")
    return RunConfig(**data)
