"""Registration of metarl env ids with Gymnasium, and lookups with "did you mean".

Every family registers through :func:`register_meta_env`, which calls ``gymnasium.register``
with both an ``entry_point`` (the single env) and a ``vector_entry_point`` (the native batched
env), and records what varies across tasks for ``metarl envs``.

>>> import metarl
>>> metarl.make("metarl/Navigaton2D-v0")
Traceback (most recent call last):
...
metarl.errors.UnknownEnvError: unknown env id 'metarl/Navigaton2D-v0'; did you mean 'metarl/Navigation2D-v0'?
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from metarl.errors import ConfigError, UnknownEnvError

__all__ = ["EnvInfo", "register_meta_env", "registered_envs", "check_env_id", "check_meta_env_id", "make", "make_vec"]

NAMESPACE = "metarl"


@dataclass(frozen=True)
class EnvInfo:
    """What ``metarl envs`` prints about a registered id."""

    id: str
    varies: str
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    source: str = ""


_INFO: dict[str, EnvInfo] = {}


def register_meta_env(
    env_id: str,
    *,
    entry_point: str,
    vector_entry_point: str,
    varies: str,
    description: str,
    kwargs: dict[str, Any] | None = None,
    source: str = "",
) -> None:
    """Register ``env_id`` (``metarl/Name-vN``) with Gymnasium and the ``metarl envs`` listing."""
    if not env_id.startswith(NAMESPACE + "/"):
        raise ValueError(f"metarl env ids live in the {NAMESPACE!r} namespace, got {env_id!r}")
    if env_id not in gym.registry:
        gym.register(
            id=env_id,
            entry_point=entry_point,
            vector_entry_point=vector_entry_point,
            kwargs=dict(kwargs or {}),
            disable_env_checker=True,  # check_env is run by our tests, not on every make
        )
    _INFO[env_id] = EnvInfo(env_id, varies, description, dict(kwargs or {}), source)


def registered_envs() -> dict[str, EnvInfo]:
    """The metarl ids registered so far (importing :mod:`metarl.envs` registers them all)."""
    import metarl.envs  # noqa: F401  (registration happens on import)

    return dict(sorted(_INFO.items()))


def check_env_id(env_id: str) -> str:
    """Return ``env_id`` if registered, else raise :class:`UnknownEnvError` with suggestions."""
    if not isinstance(env_id, str):
        raise UnknownEnvError(f"env id must be a string like 'metarl/Navigation2D-v0', got {env_id!r}")
    known = registered_envs()
    if env_id in known or env_id in gym.registry:
        return env_id
    candidates = list(known) + [k for k in gym.registry if k not in known]
    close = difflib.get_close_matches(env_id, candidates, n=3, cutoff=0.8)
    if not close and "/" not in env_id:
        close = difflib.get_close_matches(f"{NAMESPACE}/{env_id}", list(known), n=3, cutoff=0.8)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "; run `metarl envs` to list them"
    raise UnknownEnvError(f"unknown env id {env_id!r}{hint}")


def check_meta_env_id(env_id: str) -> str:
    """Return ``env_id`` if it is a registered metarl meta-env (with the task API), else a typed error.

    Unknown ids raise :class:`UnknownEnvError` (with suggestions); a plain Gymnasium env such as
    ``CartPole-v1`` raises :class:`~metarl.errors.ConfigError` saying it has no task distribution.
    """
    if not isinstance(env_id, str):
        raise ConfigError(f"env id must be a string, got {env_id!r}")
    check_env_id(env_id)
    if env_id not in registered_envs():
        raise ConfigError(
            f"env {env_id!r} is a plain Gymnasium env, not a metarl meta-env (it has no task distribution "
            "to meta-train or evaluate on); `metarl envs` lists the meta-envs, and "
            "metarl.envs.mujoco.DynamicsTaskWrapper turns a Gymnasium MuJoCo env into one"
        )
    return env_id


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` with a typed "did you mean" error for unknown ids."""
    return gym.make(check_env_id(env_id), **kwargs)


def make_vec(env_id: str, num_envs: int, **kwargs: Any) -> gym.vector.VectorEnv:
    """The family's native batched env (``vectorization_mode="vector_entry_point"``)."""
    return gym.make_vec(check_env_id(env_id), num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
