"""The interface every metarl agent implements, so `metarl train/eval` and checkpoints work for it.

An agent module in ``metarl.agents`` defines a config dataclass (docstring on every field; it
becomes the command line) and an :class:`Agent` subclass, and is listed in :data:`AGENTS`
(a name -> ``"module:Class"`` map: the core never imports agents at import time).

The trainer (``metarl train``) calls, in order::

    agent = AgentCls(env_id, config, seed=seed, device=device)
    for it in range(start, iterations):
        metrics = agent.train_iteration(it)        # {"rollout/...": .., "train/...": .., "env_steps": int}
    state = agent.state_dict()                     # tensors + JSON-able values (RNG states included)
    agent.load_state_dict(state)                   # exact resume

and ``metarl eval`` calls :meth:`Agent.evaluate` on the env's held-out tasks.

Additions since the first version (all optional for an agent author):

- ``AGENT`` on the command line may also be a ``"module:Class"`` path (a plugin agent outside
  ``metarl.agents``): :func:`load_agent_class` imports it and checks it is an :class:`Agent`.
- Preset ``env_kwargs`` reach the agent as an ``env_kwargs: dict | None = None`` keyword of its
  constructor; an agent without that keyword runs only with empty ``env_kwargs`` (the trainer
  says so with a :class:`~metarl.errors.ConfigError` otherwise).
- The trainer records the env's observation/action spaces in every checkpoint itself, merged
  with :meth:`Agent.spaces_signature`, and refuses to load a checkpoint into an env whose spaces
  differ (:class:`~metarl.errors.SpaceMismatchError`).
- :attr:`Agent.headline` names the metric shown live in the progress bar.
- Optional class attributes read by ``metarl train``: ``default_env_kwargs`` (env kwargs used
  with ``default_env`` when no preset gives any; recorded in ``config.yaml``) and
  ``default_iterations`` (iterations when neither ``--iterations`` nor a config field
  ``iterations`` says; else 100).
- ``metarl eval`` calls :meth:`Agent.evaluate` in chunks of held-out tasks (``--chunk-size``,
  chunk ``i`` with seed ``seed + i``) so its progress bar moves; results are concatenated.
- CPU threads are one policy (:mod:`metarl.threads`): every subclass's ``train_iteration``,
  ``evaluate``, ``adapt`` and ``act`` (those it defines) run inside
  ``torch_threads(agent.threads)`` (default ``"auto"``: one torch intra-op thread), set by
  ``metarl train/eval --threads`` or ``agent.threads = N``, and restore the caller's setting
  after; an agent needs no thread code of its own. Its ``__init__`` runs under ``"auto"`` (one
  thread; ``agent.threads`` is set after construction), so the initial weights do not depend on
  the process's thread count: LAPACK's QR behind ``nn.init.orthogonal_`` gives other last bits
  with two threads than with one, and a run pinned to one core (``taskset``) then trained on other
  bits than the same seed unpinned. Other methods run with the caller's setting (wrap them in
  ``metarl.threads.torch_threads(agent.threads)`` where it matters).
"""

from __future__ import annotations

import functools
import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from metarl.errors import ConfigError
from metarl.tasks import Task
from metarl.threads import ThreadSetting, check_threads, torch_threads

__all__ = ["Agent", "EvalResult", "AGENTS", "load_agent_class", "resolve_device"]

def resolve_device(device: Any) -> torch.device:
    """``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``) as a ``torch.device``.

    Raises :class:`~metarl.errors.ConfigError` for a name torch does not know or for CUDA on a
    machine without it, so every agent rejects a bad ``device=`` the same way.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be like 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


#: Registered agents: CLI name -> "module:Class". Agents add themselves here.
AGENTS: dict[str, str] = {
    "maml": "metarl.agents.maml:MAML",
    "promp": "metarl.agents.promp:ProMP",
    "emaml": "metarl.agents.emaml:EMAML",
    "reptile": "metarl.agents.reptile:Reptile",
    "rl2": "metarl.agents.rl2:RL2",
    "pearl": "metarl.agents.pearl:PEARL",
}


@dataclass
class EvalResult:
    """Per-task adaptation results on a list of tasks.

    Attributes:
        x: ``"gradient_steps"`` (MAML-style) or ``"episode"`` (RL²-style).
        returns: ``[num_tasks, num_points]`` mean return of each task at each point of the curve
            (point ``k`` = after ``k`` gradient steps, or episode ``k`` of the trial).
        trial_returns: ``[num_tasks]`` total return over the trial (RL²-style agents), else None.
        baselines: name -> ``[num_tasks]`` per-task score of a comparison method, on the same scale
            as ``trial_returns`` (or the curve's last point where there is no trial).
        extra: JSON-able details (e.g. tuned baseline constants) recorded in ``eval.json``.
        success: ``[num_tasks, num_points]`` success rate of each task at each point (fraction
            of episodes with ``info["success"]`` at any step), or None when the env reports none.
    """

    x: str
    returns: np.ndarray
    trial_returns: np.ndarray | None = None
    baselines: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    success: np.ndarray | None = None


class Agent(ABC):
    """Base class of meta-learning agents (see the module docstring for the call order)."""

    #: CLI name ("maml", "rl2", ...).
    name: ClassVar[str]
    #: The config dataclass; its fields (with docstrings) become ``metarl train NAME`` flags.
    config_cls: ClassVar[type]
    #: Default env id when ``--env`` is not given (small, trains in about a minute).
    default_env: ClassVar[str]

    #: Methods that run under the thread policy (wrapped in every subclass that defines them);
    #: ``__init__`` runs under the default, one thread, whatever the caller's count.
    _THREADED: ClassVar[tuple[str, ...]] = ("__init__", "train_iteration", "evaluate", "adapt", "act")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls._THREADED:
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "_metarl_threaded", False):
                setattr(cls, name, _under_thread_policy(method))

    def __init__(self, env_id: str, config: Any, *, seed: int = 0, device: str = "cpu") -> None:
        self.env_id = env_id
        self.config = config
        self.seed = seed
        self.device = device

    @property
    def threads(self) -> ThreadSetting:
        """torch intra-op threads of ``train_iteration``/``evaluate``/``adapt``/``act``: ``"auto"`` (one) or an int."""
        return getattr(self, "_threads", "auto")

    @threads.setter
    def threads(self, value: ThreadSetting) -> None:
        self._threads = check_threads(value)

    @abstractmethod
    def train_iteration(self, iteration: int) -> dict[str, float]:
        """One meta-iteration. Returns namespaced scalar metrics; must include ``"env_steps"``
        (env steps this iteration) and should include a headline ``"rollout/..."`` return."""

    @abstractmethod
    def evaluate(self, tasks: Sequence[Task], *, seed: int, num_steps: int | None = None) -> EvalResult:
        """Adapt to each task from scratch and report the adaptation curve (no training)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: tensors (any nesting of dicts/lists) and
        JSON-able values, including this agent's RNG states (numpy ``bit_generator.state``,
        torch ``Generator.get_state()``) and its envs' task-sampler states."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def spaces_signature(self) -> dict[str, str]:
        """Observation/action spaces the agent was built for (checked when loading a checkpoint)."""
        return {}

    headline: ClassVar[str] = "rollout/return"


def _under_thread_policy(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(self: Agent, *args: Any, **kwargs: Any) -> Any:
        with torch_threads(self.threads):
            return method(self, *args, **kwargs)

    wrapper._metarl_threaded = True  # type: ignore[attr-defined]
    return wrapper


def load_agent_class(name: str) -> type[Agent]:
    """The agent class registered under ``name``, or at a ``"module:Class"`` path (imported on demand)."""
    if name not in AGENTS and ":" in name:
        return _import_agent(name, name)
    if name not in AGENTS:
        import difflib

        close = difflib.get_close_matches(name, list(AGENTS), n=2)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"unknown agent {name!r}{hint} (known: {', '.join(sorted(AGENTS))})")
    return _import_agent(name, AGENTS[name])


def _import_agent(name: str, path: str) -> type[Agent]:
    module, _, cls = path.partition(":")
    if not module or not cls:
        raise ConfigError(f"agent path {path!r} must look like 'package.module:ClassName'")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise ConfigError(f"agent {name!r} is not available: {e}") from None
    found = getattr(mod, cls, None)
    if found is None:
        raise ConfigError(f"agent {name!r}: module {module!r} has no class {cls!r}")
    if not (isinstance(found, type) and issubclass(found, Agent)):
        raise ConfigError(f"agent {name!r}: {path} is not a metarl.agent.Agent subclass")
    return found
