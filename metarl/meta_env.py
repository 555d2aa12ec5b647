"""Meta-env protocol: task distributions, native batched envs, and their single-env view.

A task family is written once, as a :class:`BatchedMetaEnv` subclass that steps all ``N``
sub-envs with array math (no per-env Python loop on the step path), plus a
:class:`TaskDistribution` that samples its tasks. :class:`SingleMetaEnv` turns the batched
class into a plain ``gymnasium.Env`` (it is the batched env with ``N = 1``), so single and
batched envs share every line of dynamics.

Task API (both views, in the convention of learn2learn and Meta-World)::

    tasks = env.unwrapped.sample_tasks(40, seed=0)   # training distribution, env's own RNG
    env.unwrapped.set_task(tasks[0]); env.unwrapped.get_task()
    env.reset(options={"task": tasks[0]})
    env.unwrapped.held_out_tasks()                    # fixed, versioned, shipped as JSON

    venv = gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")
    venv.set_tasks(tasks); venv.get_tasks(); venv.reset(seed=0, options={"tasks": tasks})

Autoreset follows Gymnasium 1.x: ``NEXT_STEP`` by default (the step after an episode ends
resets that sub-env, ignores its action and returns reward 0); ``SAME_STEP`` and ``DISABLED``
are available through ``autoreset_mode=``.
"""

from __future__ import annotations

import difflib
import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from importlib import resources
from typing import Any, ClassVar, Generic, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from metarl.errors import (
    ConfigError,
    InvalidActionError,
    InvalidTaskError,
    TaskNotSetError,
    UnknownArgumentError,
)
from metarl.streams import SubEnvRNG
from metarl.tasks import Task

__all__ = [
    "TaskDistribution", "TaskSource", "BatchedMetaEnv", "SingleMetaEnv", "NUM_HELD_OUT",
    "check_range", "check_seed", "check_count", "check_kwargs", "accepted_kwargs", "check_action",
    "held_out_rng", "reset_options", "task_rng", "SEED_LIMIT",
]

TaskT = TypeVar("TaskT", bound=Task)

#: Number of held-out tasks of a continuous task family (DESIGN.md).
NUM_HELD_OUT = 40


class TaskDistribution(ABC, Generic[TaskT]):
    """The training distribution of a task family, and its fixed held-out tasks.

    Subclasses set :attr:`task_type`, implement :meth:`sample` and :meth:`contains`, and name
    their held-out file with :meth:`held_out_key`.

    Held-out tasks are identical on every machine:

    - A shipped file ``metarl/envs/held_out/<key>.json`` *defines* its configuration's tasks.
      Files are versioned data, never regenerated in place: the float math of a recipe
      (libm, SIMD, fused multiply-add) may differ by an ulp between CPUs. A test checks that
      :meth:`generate_held_out` still reproduces each file within
      :data:`metarl.portable.HELD_OUT_RTOL` (integer and discrete fields exactly), and
      ``python -m metarl.envs.make_held_out`` refuses to overwrite with the same comparison.
    - A configuration with no file (a non-default size or range, a user's dynamics ranges)
      generates them at run time from :attr:`held_out_seed` with a recipe that is exact by
      construction (:mod:`metarl.portable`: ``Generator.random`` bits, IEEE ``+ - * /``,
      decimal ``exp``/``ln``), so they are the same bits on every machine.
    """

    task_type: ClassVar[type[Task]]
    #: Seed of the recipe that produced the shipped held-out file (and the fallback draw).
    held_out_seed: ClassVar[int] = 20171103
    num_held_out: ClassVar[int] = NUM_HELD_OUT
    #: Package whose ``held_out/`` folder holds the JSON files.
    held_out_package: ClassVar[str] = "metarl.envs"

    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> list[TaskT]:
        """Draw ``n`` tasks with ``rng`` (and nothing else)."""

    @abstractmethod
    def contains(self, task: TaskT) -> bool:
        """Whether ``task`` lies in the support of this distribution."""

    def relabel(self, task: TaskT, rng: np.random.Generator) -> TaskT:
        """``task`` under a random relabeling that leaves this distribution unchanged (the arms of a
        bandit, the actions of an MDP), drawn with ``rng``'s integers only; default: ``task`` itself
        (a family without such a symmetry).

        Evaluation scores each trial on its own relabeled copy of a held-out task
        (``RL2Config.eval_relabel``), so that the label order a trained policy happens to prefer
        (which arm to pull first) does not meet the held-out tasks' particular order: a fixed set
        of 40 tasks would otherwise reward or punish that arbitrary preference, seed by seed.
        """
        return task

    def trial_copies(self, tasks: Sequence[TaskT], per_task: int, seed: int, *, relabel: bool = True) -> list[TaskT]:
        """``per_task`` copies of each of ``tasks``, task-major (copy ``r`` of task ``m`` at
        ``m * per_task + r``), each relabeled on its own (:meth:`relabel`) with a generator drawn
        from ``seed`` when ``relabel``, else the task itself. RL²'s evaluation runs one trial on
        each, and the classic baselines run on the same list."""
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(0x2E1A,)))
        return [self.relabel(t, rng) if relabel else t for t in tasks for _ in range(per_task)]

    def default_task(self) -> TaskT:
        """The task an env starts with (documented per family); the first held-out task."""
        return self.held_out()[0]

    def held_out_key(self) -> str | None:
        """File stem of the shipped held-out tasks for this configuration, or None."""
        return None

    def held_out(self) -> list[TaskT]:
        """The shipped file's tasks when this configuration has one, else :meth:`generate_held_out`."""
        key = self.held_out_key()
        if key is not None:
            path = resources.files(self.held_out_package).joinpath("held_out", f"{key}.json")
            if not path.is_file():
                # A keyed configuration ships its file; regenerating would only match it to rounding.
                raise FileNotFoundError(
                    f"held-out task file {key}.json is missing from the installed package ({path}); "
                    "reinstall metarl-lab (its package data is incomplete)"
                )
            data = json.loads(path.read_text())
            return [self.task_type.from_dict(d) for d in data["tasks"]]  # type: ignore[misc]
        return self.generate_held_out()

    def generate_held_out(self) -> list[TaskT]:
        """The recipe of the held-out tasks: :meth:`sample` with :func:`held_out_rng`.

        Families whose :meth:`sample` is not exact by construction override it for
        configurations without a shipped file (see the class docstring).
        """
        return self.sample(held_out_rng(self.held_out_seed), self.num_held_out)

    def check(self, task: Any) -> TaskT:
        """``task`` as this family's task type (a dict or JSON string is decoded), or a typed error."""
        if isinstance(task, str):
            task = self.task_type.from_json(task)
        elif isinstance(task, dict):
            task = self.task_type.from_dict(task)
        if not isinstance(task, self.task_type):
            raise InvalidTaskError(
                "task", task, f"expected a {self.task_type.__name__}, got {type(task).__name__}"
            )
        return task  # type: ignore[return-value]


def check_range(
    name: str, value: Sequence[float], *, min_low: float = -np.inf, max_high: float = np.inf
) -> tuple[float, float]:
    """Validate a ``(low, high)`` kwarg: finite, ``low <= high``, inside ``[min_low, max_high]``."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a pair (low, high), got {value!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and min_low <= low <= high <= max_high):
        raise ConfigError(f"{name} must be finite with {min_low} <= low <= high <= {max_high}, got {value!r}")
    return low, high


def held_out_rng(seed: int) -> np.random.Generator:
    """The generator of held-out tasks: a stream no ``sample_tasks(seed=...)`` call can reproduce.

    Training draws use ``default_rng(seed)`` (a root seed sequence); this one is a spawned child.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x4E1D,)))


def task_rng(seed: int | None) -> np.random.Generator:
    """An env's own task generator for reset seed ``seed`` (``None``: fresh OS entropy).

    A stream separate from the episode RNG: sampling tasks never shifts rollouts, and vice versa.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x7A5C,)))


#: Seeds are ints in ``[0, SEED_LIMIT)``: they fit an int64 (numpy arrays, JSON, checkpoints) and
#: every RNG metarl seeds (``numpy.random.SeedSequence``, ``torch.manual_seed``, ``random.seed``).
SEED_LIMIT = 2**63


def check_seed(seed: Any, name: str = "seed", *, span: int = 1) -> int:
    """``seed`` as an int, or a :class:`ConfigError` naming ``name`` and the value.

    Valid seeds are ints (not bools or floats) with ``0 <= seed`` and ``seed + span - 1 < 2**63``
    (``span`` consecutive seeds are derived from it, e.g. ``seed + i`` for sub-env ``i``).

    >>> check_seed(3)
    3
    >>> check_seed(-1)
    Traceback (most recent call last):
    ...
    metarl.errors.ConfigError: seed must be a non-negative int below 2**63, got -1
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"{name} must be a non-negative int below 2**63, got {seed!r} ({type(seed).__name__})")
    if not 0 <= int(seed) <= SEED_LIMIT - span:
        limit = "2**63" if span == 1 else f"2**63 - {span - 1} (it seeds {span} sub-envs: seed + i)"
        raise ConfigError(f"{name} must be a non-negative int below {limit}, got {seed!r}")
    return int(seed)


def check_count(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum`` (not a bool or float), or a :class:`ConfigError` naming it.

    >>> check_count(2.5, "num_envs")
    Traceback (most recent call last):
    ...
    metarl.errors.ConfigError: num_envs must be an int >= 1, got 2.5 (float)
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def accepted_kwargs(cls: type) -> list[str]:
    """Keyword arguments ``cls(...)`` takes: its ``__init__`` and the bases it forwards ``**kwargs`` to."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names += [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return list(dict.fromkeys(names))


def check_kwargs(owner: str, given: Any, allowed: Sequence[str]) -> None:
    """Raise :class:`UnknownArgumentError` for keys of ``given`` not in ``allowed`` ("did you mean")."""
    unknown = [k for k in given if k not in allowed]
    if not unknown:
        return
    key = unknown[0]
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UnknownArgumentError(
        f"{owner} got an unknown keyword argument {key!r} (= {given[key]!r}); {hint}it takes: {', '.join(allowed)}"
    )


def reset_options(options: dict[str, Any] | None, allowed: Sequence[str]) -> dict[str, Any]:
    """``reset`` options as a dict, or a :class:`ConfigError` naming unknown keys."""
    options = dict(options or {})
    unknown = set(options) - set(allowed)
    if unknown:
        raise ConfigError(
            f"unknown reset option(s) {sorted(unknown)}; allowed: {', '.join(repr(a) for a in allowed)}"
        )
    return options


class TaskSource:
    """Mixin of the task-sampling half of the task API, for any class with a ``distribution``.

    ``sample_tasks`` draws with a fresh generator when given a seed, else with the object's own
    task generator, which :meth:`seed_tasks` (called from ``reset(seed=...)``) seeds.
    """

    distribution: TaskDistribution
    _task_rng: np.random.Generator | None = None

    def seed_tasks(self, seed: int | None) -> None:
        """Re-seed this object's own task generator (``reset(seed=s)`` calls it with ``s``)."""
        self._task_rng = task_rng(seed)

    def sample_tasks(self, n: int, *, seed: int | None = None) -> list:
        """Draw ``n`` training tasks; with ``seed`` from a fresh generator, else the env's own."""
        n = check_count(n, "n (number of tasks)", minimum=0)
        if seed is not None:
            rng = np.random.default_rng(check_seed(seed))
        else:
            if self._task_rng is None:
                self.seed_tasks(None)
            rng = self._task_rng
        return self.distribution.sample(rng, int(n))

    def held_out_tasks(self) -> list:
        """The family's fixed, versioned held-out tasks (never drawn by :meth:`sample_tasks`' seeds)."""
        return self.distribution.held_out()


class BatchedMetaEnv(TaskSource, VectorEnv, Generic[TaskT]):
    """Base of the native batched envs: ``N`` sub-envs, each with its own task, stepped at once.

    Subclasses implement four array methods over all sub-envs (axis 0 is the sub-env):

    - :meth:`_apply_tasks` — write tasks into per-env arrays (e.g. ``goals[idx] = ...``);
    - :meth:`_reset_state` — reset the state of the sub-envs in a boolean mask;
    - :meth:`_advance` — apply validated actions ``[N, ...]``, return ``(reward[N], terminated[N])``;
    - :meth:`_observe` — observations ``[N, ...]`` of the current state.

    The base class owns seeding, tasks, time limits, action validation and autoreset.
    All randomness comes from :attr:`rng` (seeded by ``reset(seed=...)``): a
    :class:`~metarl.streams.SubEnvRNG` with one stream per sub-env, so ``rng.random(N)`` and
    ``rng.standard_normal(N)`` give sub-env ``i`` the same draws in any batch (sharded sampling).
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int,
        distribution: TaskDistribution[TaskT],
        *,
        max_episode_steps: int,
        single_observation_space: spaces.Space,
        single_action_space: spaces.Space,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        require_task: bool = False,
        **unknown: Any,
    ) -> None:
        # Subclasses forward their unknown kwargs here: name the family's own, not this signature's.
        check_kwargs(type(self).__name__, unknown, [a for a in accepted_kwargs(type(self)) if a not in _BATCH_ONLY[2:]])
        num_envs = check_count(num_envs, "num_envs")
        max_episode_steps = check_count(max_episode_steps, "max_episode_steps")
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ConfigError(
                f"autoreset_mode must be one of {[m.value for m in AutoresetMode]}, got {autoreset_mode!r}"
            ) from None
        self.num_envs = int(num_envs)
        self.distribution = distribution
        self.max_episode_steps = int(max_episode_steps)
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = batch_space(single_observation_space, self.num_envs)
        self.action_space = batch_space(single_action_space, self.num_envs)
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.autoreset_mode = mode
        self.rng: SubEnvRNG = SubEnvRNG(None, self.num_envs)
        self._task_rng: np.random.Generator | None = None
        self._tasks: list[TaskT] | None = None
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._has_reset = False
        #: Set by SingleMetaEnv, so errors point at the single-env task API.
        self._single_view = False
        if not require_task:
            self.set_tasks([distribution.default_task()] * self.num_envs)

    # --- subclass hooks ----------------------------------------------------------------------
    @abstractmethod
    def _apply_tasks(self, idx: np.ndarray, tasks: Sequence[TaskT]) -> None: ...

    @abstractmethod
    def _reset_state(self, mask: np.ndarray) -> None: ...

    @abstractmethod
    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def _observe(self) -> np.ndarray: ...

    # --- tasks -------------------------------------------------------------------------------
    def set_tasks(self, tasks: Sequence[TaskT | dict | str], indices: Sequence[int] | None = None) -> None:
        """Give sub-env ``i`` the task ``tasks[i]``; takes effect at each sub-env's next reset.

        With ``indices``, only those sub-envs get new tasks (``tasks[j]`` for ``indices[j]``),
        e.g. when some trials end and others run on.
        """
        idx = np.arange(self.num_envs) if indices is None else self._check_indices(indices)
        if isinstance(tasks, (Task, str, dict)) or len(tasks) != len(idx):
            got = "a single task" if isinstance(tasks, (Task, str, dict)) else f"{len(tasks)} tasks"
            want = f"one task per sub-env ({self.num_envs})" if indices is None else f"one task per index ({len(idx)})"
            raise InvalidTaskError("tasks", got, f"need {want}")
        if indices is not None:
            if self._tasks is None:
                self.get_tasks()  # raises TaskNotSetError: set all tasks once first
        checked = [self.distribution.check(t) for t in tasks]
        self._apply_tasks(idx, checked)
        if indices is None:
            self._tasks = checked
        else:
            assert self._tasks is not None
            for i, t in zip(idx.tolist(), checked, strict=True):
                self._tasks[i] = t

    def get_tasks(self) -> list[TaskT]:
        if self._tasks is None:
            if self._single_view:
                raise TaskNotSetError(
                    "no task set (require_task=True): call env.unwrapped.set_task(task) or "
                    "env.reset(options={'task': task}) first; env.unwrapped.sample_tasks(n) draws tasks"
                )
            raise TaskNotSetError(
                "no tasks set (require_task=True): call env.set_tasks(tasks) (one per sub-env) or "
                "env.reset(options={'tasks': tasks}) first; env.sample_tasks(n) draws tasks"
            )
        return list(self._tasks)

    def _check_indices(self, indices: Any) -> np.ndarray:
        """``indices`` of ``set_tasks`` as distinct in-range ints, or :class:`InvalidTaskError`."""
        if isinstance(indices, (str, bytes, dict)) or not hasattr(indices, "__len__"):
            raise InvalidTaskError("indices", indices, "must be a sequence of sub-env indices (ints)")
        values = list(np.asarray(indices, dtype=object).reshape(-1)) if isinstance(indices, np.ndarray) else list(indices)
        for v in values:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise InvalidTaskError("indices", values, f"must be ints, got {v!r} ({type(v).__name__})")
        bad = [int(v) for v in values if not 0 <= v < self.num_envs]
        if bad:
            raise InvalidTaskError("indices", values, f"{bad[0]} is out of range: sub-env indices lie in [0, {self.num_envs})")
        idx = np.asarray(values, dtype=np.int64)
        uniq, counts = np.unique(idx, return_counts=True)
        if (counts > 1).any():
            raise InvalidTaskError("indices", values, f"must be distinct; {int(uniq[counts > 1][0])} is repeated")
        return idx

    # --- gymnasium API -----------------------------------------------------------------------
    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset sub-envs. An int ``seed`` gives sub-env ``i`` the seed ``seed + i``.

        ``options``: ``{"tasks": [...]}`` sets one task per sub-env first;
        ``{"reset_mask": bool[N]}`` resets only those sub-envs (Gymnasium 1.x partial reset).
        """
        options = reset_options(options, ("tasks", "reset_mask"))
        if seed is not None:
            seeds = self._expand_seeds(seed)
            # One stream per sub-env: its draws never depend on the batch it is in (sharding).
            self.rng = SubEnvRNG(seeds)
            self.seed_tasks(seeds[0])
        if "tasks" in options:
            self.set_tasks(options["tasks"])
        if self._tasks is None:
            self.get_tasks()  # raises TaskNotSetError
        mask = options.get("reset_mask")
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        else:
            mask = np.asarray(mask)
            if mask.dtype != bool or mask.shape != (self.num_envs,):
                raise ConfigError(f"reset_mask must be a bool array of shape ({self.num_envs},), got {mask!r}")
        self._reset_state(mask)
        self._elapsed[mask] = 0
        self._needs_reset[mask] = False
        self._has_reset = True
        return self._observe(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._has_reset:
            raise TaskNotSetError("call reset() before step()")
        actions = self._check_actions(actions)
        reset_now = self._needs_reset.copy() if self.autoreset_mode is AutoresetMode.NEXT_STEP else None
        reward, terminated = self._advance(actions)
        self._elapsed += 1
        truncated = (self._elapsed >= self.max_episode_steps) & ~terminated
        info: dict[str, Any] = {}
        if reset_now is not None and reset_now.any():
            self._reset_state(reset_now)
            self._elapsed[reset_now] = 0
            reward[reset_now] = 0.0
            terminated[reset_now] = False
            truncated[reset_now] = False
        done = terminated | truncated
        if self.autoreset_mode is AutoresetMode.SAME_STEP and done.any():
            # Dense final observations (rows of envs not done are their current obs), with the mask.
            info["final_obs"] = self._observe().copy()
            info["_final_obs"] = done.copy()
            info["final_info"] = {}
            info["_final_info"] = done.copy()
            self._reset_state(done)
            self._elapsed[done] = 0
        elif self.autoreset_mode is AutoresetMode.NEXT_STEP:
            self._needs_reset = done
        return self._observe(), reward, terminated, truncated, info

    def observe(self) -> np.ndarray:
        """The sub-envs' current observations ``[N, ...]`` (what the last reset/step returned)."""
        return self._observe()

    # --- helpers -----------------------------------------------------------------------------
    def _expand_seeds(self, seed: int | Sequence[int]) -> list[int]:
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            base = check_seed(seed, span=self.num_envs)
            return [base + i for i in range(self.num_envs)]
        if isinstance(seed, Sequence) and len(seed) == self.num_envs:
            return [check_seed(s, f"seed[{i}]") for i, s in enumerate(seed)]
        raise ConfigError(f"seed must be an int or a list of {self.num_envs} ints, got {seed!r}")

    def _check_actions(self, actions: Any) -> np.ndarray:
        return check_action(self.single_action_space, actions, batch=self.num_envs)

    def __repr__(self) -> str:
        name = self.spec.id if self.spec is not None else type(self).__name__
        return f"{type(self).__name__}({name}, num_envs={self.num_envs})"


def check_action(space: spaces.Space, action: Any, *, batch: int | None = None) -> np.ndarray:
    """Validate an action (``batch=None``) or a batch ``[batch, ...]`` of actions for ``space``.

    The one place every metarl env checks actions. Discrete: integers (or integral floats) in
    range, returned as ``int64`` offsets from ``space.start``. Box: real finite numbers of the
    right shape, returned as ``float64`` (not clipped: each family documents its clipping).
    Complex, object, string and bool arrays are :class:`InvalidActionError`, never cast.
    """
    what = "action" if batch is None else "actions"
    try:
        a = np.asarray(action)
    except (TypeError, ValueError):
        raise InvalidActionError(f"{what} must be array-like, got {type(action).__name__}") from None
    lead = () if batch is None else (batch,)
    if isinstance(space, spaces.Discrete):
        if a.shape != lead:
            raise InvalidActionError(f"{what} must have shape {lead}, got {a.shape} ({_preview(a)})")
        if a.dtype.kind not in "iu":
            if a.dtype.kind != "f" or not np.isfinite(a).all() or (a != np.round(a)).any():
                raise InvalidActionError(f"discrete {what} must be integers, got {_preview(a)} (dtype {a.dtype})")
        a = a.astype(np.int64)
        if ((a < space.start) | (a >= space.start + space.n)).any():
            raise InvalidActionError(
                f"discrete {what} must lie in [{space.start}, {space.start + space.n - 1}], got {_preview(a)}"
            )
        return a - space.start
    want = (*lead, *space.shape)
    if a.dtype.kind not in "iuf":  # complex, object, strings, bools, datetimes: never cast silently
        raise InvalidActionError(f"{what} must be real numbers, got dtype {a.dtype} ({_preview(a)})")
    if a.shape != want:
        raise InvalidActionError(f"{what} must have shape {want}, got {a.shape} ({_preview(a)})")
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise InvalidActionError(f"{what} must be finite, got {a[tuple(bad)]} at index {tuple(bad.tolist())}")
    return a


def _preview(a: np.ndarray) -> str:
    flat = a.reshape(-1)
    return str(flat[:8].tolist()) + ("..." if flat.size > 8 else "")


#: Kwargs of a batched env that its single view sets itself.
_BATCH_ONLY = ("num_envs", "autoreset_mode", "distribution", "single_observation_space", "single_action_space")


class SingleMetaEnv(gym.Env, Generic[TaskT]):
    """A single Gymnasium env made from a :class:`BatchedMetaEnv` class with ``N = 1``.

    Subclasses only set :attr:`batched_cls`; constructor kwargs go to it. The env starts with the
    family's documented default task (so ``gym.make`` + ``check_env`` work as is), unless
    ``require_task=True``, in which case reset before ``set_task`` raises :class:`TaskNotSetError`.
    """

    batched_cls: ClassVar[type[BatchedMetaEnv]]
    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None:
            raise ConfigError(f"render_mode {render_mode!r} is not supported by {type(self).__name__}")
        if "autoreset_mode" in kwargs:
            raise ConfigError(
                f"autoreset_mode={kwargs['autoreset_mode']!r} applies to batched envs (make_vec); a single env does not autoreset"
            )
        allowed = [a for a in accepted_kwargs(self.batched_cls) if a not in _BATCH_ONLY]
        check_kwargs(type(self).__name__, kwargs, allowed)
        self._core: BatchedMetaEnv[TaskT] = self.batched_cls(
            num_envs=1, autoreset_mode=AutoresetMode.DISABLED, **kwargs
        )
        self._core._single_view = True
        self.observation_space = self._core.single_observation_space
        self.action_space = self._core.single_action_space
        self.distribution = self._core.distribution
        self.max_episode_steps = self._core.max_episode_steps

    # --- tasks -------------------------------------------------------------------------------
    def sample_tasks(self, n: int, *, seed: int | None = None) -> list[TaskT]:
        return self._core.sample_tasks(n, seed=seed)

    def held_out_tasks(self) -> list[TaskT]:
        return self._core.held_out_tasks()

    def set_task(self, task: TaskT | dict | str) -> None:
        """Set the task; it takes effect at the next :meth:`reset`."""
        self._core.set_tasks([task])

    def get_task(self) -> TaskT:
        return self._core.get_tasks()[0]

    # --- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            check_seed(seed)
        super().reset(seed=seed)
        options = reset_options(options, ("task",))
        if seed is not None:
            self._core.seed_tasks(seed)
        self._core.rng = self.np_random
        obs, _ = self._core.reset(options={"tasks": [options["task"]]} if "task" in options else None)
        return obs[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action)
        obs, reward, terminated, truncated, _ = self._core.step(a[None])
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}
