"""Samplers: where a meta-batch's rollouts come from, behind one interface.

An agent hands a sampler what a worker needs to rebuild its policy (a picklable
:class:`PolicySpec`: architecture, parameters, per-task parameters for MAML, the action seed), the
env (:class:`EnvSpec`), one task per group of sub-envs, the number of episodes per task, the
horizon and the seed, and gets a :class:`~metarl.sampling.Rollout` back, ``[T, N, ...]`` with
``N = tasks × episodes`` (sub-env ``i`` holds task ``i // episodes``):

- :class:`LocalSampler` (the default) steps one native batched env in this process
  (:func:`metarl.sampling.collect`).
- :class:`RaySampler` shards the sub-envs over Ray core actors, each owning one native batched env
  for its shard (many sub-envs per actor); the policy is ``ray.put`` once per call, shards are
  gathered as they finish (``ray.wait``) and concatenated in sub-env order. A dead actor is
  replaced and its shard collected again with the same seeds.

Every backend and worker count gives the same bits: sub-env ``i`` always gets reset seed
``seed + i`` and its task, the env's random draws are per sub-env (:class:`metarl.streams.SubEnvRNG`),
an RL² trial restarted inside a rollout draws its task from sub-env ``i``'s own task stream
(:func:`metarl.meta_env.task_rng` of ``seed + i``), and a shard draws the action noise of the whole
batch and keeps its rows (torch's CPU generator cannot skip ahead; the cost is
``N × action_dim`` normals per step per shard, small beside a policy forward).

>>> import torch, metarl
>>> from metarl.policies import make_policy
>>> env = EnvSpec("metarl/Navigation2D-v0")
>>> venv = metarl.make_vec(env.env_id, 1)
>>> policy = make_policy(venv.single_observation_space, venv.single_action_space, (8,))
>>> params = policy.init_params(torch.Generator().manual_seed(0))
>>> spec = TaskPolicySpec(policy, {k: v.expand(2, *v.shape) for k, v in params.items()}, episodes=3, seed=0)
>>> tasks = venv.unwrapped.sample_tasks(2, seed=0)
>>> ro = LocalSampler().sample(env, spec, tasks, episodes=3, horizon=5, seed=0)
>>> tuple(ro.obs.shape), sorted(ro.extras)
((5, 6, 2), ['raw_action'])
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from metarl.errors import ConfigError, SamplerError
from metarl.meta_env import check_count, check_seed, task_rng
from metarl.policies import Params, StochasticPolicy, batched_dist_params
from metarl.sampling import Rollout, collect
from metarl.tasks import Task

__all__ = [
    "EnvSpec",
    "PolicySpec",
    "BoundPolicy",
    "TaskPolicySpec",
    "RecurrentPolicySpec",
    "LatentPolicySpec",
    "Sampler",
    "LocalSampler",
    "RaySampler",
    "make_sampler",
    "attach_sampler",
    "check_sampler_options",
    "collect_rows",
    "shard_bounds",
]

RAY_INSTALL_HINT = 'pip install "metarl-lab[ray]"'


# ==== what a worker rebuilds ====================================================================
@dataclass(frozen=True)
class EnvSpec:
    """A native batched env by id (hashable, picklable): ``make(n)`` builds it with ``n`` sub-envs.

    Args:
        env_id: a registered metarl env id.
        env_kwargs: keyword arguments of the env.
        episodes_per_trial: wrap in an RL² :class:`~metarl.trials.TrialVecEnv` of this many episodes.
    """

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    episodes_per_trial: int | None = None

    def key(self) -> str:
        return json.dumps([self.env_id, self.env_kwargs, self.episodes_per_trial], sort_keys=True, default=str)

    def __hash__(self) -> int:
        return hash(self.key())

    def make(self, num_envs: int) -> Any:
        import metarl

        if self.episodes_per_trial is None:
            return metarl.make_vec(self.env_id, num_envs, **self.env_kwargs)
        from metarl.trials import TrialVecEnv

        return TrialVecEnv.make(self.env_id, num_envs, self.episodes_per_trial, **self.env_kwargs)


class BoundPolicy(ABC):
    """A policy bound to the rows ``[lo, hi)`` of an ``N``-sub-env batch, for one rollout."""

    @abstractmethod
    def __call__(self, obs: Tensor, t: int) -> tuple[Tensor, dict[str, Tensor]]:
        """``act(obs [n, ...], t) -> (actions [n, ...], extras)`` (see :data:`metarl.sampling.Policy`)."""

    def finish(self, rollout: Rollout) -> dict[str, Tensor]:
        """Extras computed after the last step, with the sub-env axis second (``[*, n, ...]``)."""
        return {}


class PolicySpec(ABC):
    """A picklable policy description from which a worker rebuilds ``act`` for its rows."""

    #: Sub-envs come in groups of this size that must stay on one shard (MAML: a task's episodes).
    group_size: int = 1

    @abstractmethod
    def bind(self, env: Any, rows: range, num_envs: int, device: torch.device) -> BoundPolicy:
        """The policy for rows ``rows`` of an ``num_envs``-sub-env batch stepped by ``env``."""

    def cpu(self) -> PolicySpec:
        """A copy whose tensors and modules live on the CPU (what Ray workers receive)."""
        moved = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, Tensor):
                v = v.detach().cpu()
            elif isinstance(v, nn.Module):
                v = copy.deepcopy(v).cpu()
            elif isinstance(v, dict) and all(isinstance(x, Tensor) for x in v.values()):
                v = {k: x.detach().cpu() for k, x in v.items()}
            moved[f.name] = v
        return dataclasses.replace(self, **moved)  # type: ignore[type-var]


def _full_batch(x: Tensor, rows: range, num_envs: int) -> Tensor:
    """``x [n, ...]`` placed at ``rows`` of a zero ``[num_envs, ...]`` tensor (identity when n = N)."""
    if len(rows) == num_envs:
        return x
    out = x.new_zeros((num_envs, *x.shape[1:]))
    out[rows.start : rows.stop] = x
    return out


def _rows(x: Tensor, rows: range, num_envs: int) -> Tensor:
    return x if len(rows) == num_envs else x[rows.start : rows.stop]


@dataclass
class TaskPolicySpec(PolicySpec):
    """MAML's sampling policy: task ``m``'s ``episodes`` sub-envs act with ``params[·][m]``.

    Args:
        policy: the architecture (:func:`metarl.policies.make_policy`).
        params: per-task parameters, every tensor ``[M, ...]``.
        episodes: sub-envs per task ``E``.
        seed: seed of the action noise (a CPU generator over the whole ``[N, ...]`` batch).
        low, high: clip the env's actions to this box (the likelihood keeps the raw action).
    """

    policy: StochasticPolicy
    params: Params
    episodes: int
    seed: int
    low: Tensor | None = None
    high: Tensor | None = None

    @property
    def group_size(self) -> int:  # type: ignore[override]
        return self.episodes

    def bind(self, env: Any, rows: range, num_envs: int, device: torch.device) -> BoundPolicy:
        return _TaskPolicy(self, env, rows, num_envs, device)


class _TaskPolicy(BoundPolicy):
    def __init__(self, spec: TaskPolicySpec, env: Any, rows: range, num_envs: int, device: torch.device) -> None:
        E = spec.episodes
        self.spec, self.rows, self.N, self.E = spec, rows, num_envs, E
        self.M = len(rows) // E
        m0 = rows.start // E
        self.params = {k: v[m0 : m0 + self.M].to(device) for k, v in spec.params.items()}
        self.gen = torch.Generator().manual_seed(int(spec.seed))
        self.low = None if spec.low is None else spec.low.to(device)
        self.high = None if spec.high is None else spec.high.to(device)

    def __call__(self, obs: Tensor, t: int) -> tuple[Tensor, dict[str, Tensor]]:
        policy, M, E = self.spec.policy, self.M, self.E
        dist = batched_dist_params(policy, self.params, obs.reshape(M, E, -1))
        dist = tuple(_full_batch(d.reshape(M * E, *d.shape[2:]), self.rows, self.N) for d in dist)
        raw = _rows(policy.sample(dist, self.gen), self.rows, self.N)
        if self.low is None:
            return raw, {"raw_action": raw}
        # The env sees the action clipped to its box; the likelihood uses the sampled one
        # (rllab/maml_rl clip inside the env the same way).
        return torch.clamp(raw, self.low, self.high), {"raw_action": raw}


@dataclass
class RecurrentPolicySpec(PolicySpec):
    """RL²'s recurrent policy over trials (a :class:`~metarl.trials.TrialVecEnv`).

    The network needs ``initial_state(n, device)``, ``net(x [1, n, D], h) -> (out, value, h)``,
    ``sample(out, generator)`` and ``log_prob(out, actions)`` (``metarl.agents.rl2.GRUActorCritic``).
    Memory clears at trial starts only.

    Args:
        net: the network (its class must be importable where the workers run).
        seed: seed of the action noise (a generator over the whole ``[N, ...]`` batch).
        chunk: training rollouts (``chunk > 0``) record the hidden state every ``chunk`` steps
            (extra ``chunk_states [C, N, H]``), ``logp``, ``value`` and ``trial_start`` per step and
            the bootstrap ``last_value [1, N]``; ``0`` records only ``episode``.
        block: the network runs on blocks of this many sub-envs, aligned to multiples of
            ``block``, and shards split only between blocks. A BLAS product's bits for one row can
            depend on how many rows share the call (measured here: a 1-output value head differs
            in the last bit between 3, 4 and 7 rows), so fixed blocks are what makes every shard
            layout give the same bits; 64 rows cost no speed at RL²'s sizes (bench_samplers.py).
    """

    net: nn.Module
    seed: int
    chunk: int = 0
    block: int = 64

    @property
    def group_size(self) -> int:  # type: ignore[override]
        return self.block

    def bind(self, env: Any, rows: range, num_envs: int, device: torch.device) -> BoundPolicy:
        return _RecurrentPolicy(self, env, rows, num_envs, device)


class _RecurrentPolicy(BoundPolicy):
    def __init__(self, spec: RecurrentPolicySpec, env: Any, rows: range, num_envs: int, device: torch.device) -> None:
        self.spec, self.env, self.rows, self.N, self.device = spec, env, rows, num_envs, device
        self.net = spec.net
        self.h = self.net.initial_state(len(rows), device)
        self.gen = torch.Generator(device=device).manual_seed(int(spec.seed))
        self.states: list[Tensor] = []

    def _clear_at_trial_starts(self) -> Tensor:
        start = torch.as_tensor(self.env.trial_start).to(self.device)
        self.h = self.h * (~start).unsqueeze(-1).to(self.h.dtype)
        return start

    def _forward(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step of the network on ``obs [n, D]``, block by block (see ``RecurrentPolicySpec.block``)."""
        B, n = self.spec.block, obs.shape[0]
        if n <= B:
            return self.net(obs.unsqueeze(0), self.h)
        outs = [self.net(obs[a : a + B].unsqueeze(0), self.h[a : a + B]) for a in range(0, n, B)]
        return torch.cat([o[0] for o in outs], 1), torch.cat([o[1] for o in outs], 1), torch.cat([o[2] for o in outs], 0)

    def __call__(self, obs: Tensor, t: int) -> tuple[Tensor, dict[str, Tensor]]:
        start = self._clear_at_trial_starts()  # memory clears at trial starts only
        chunk = self.spec.chunk
        if chunk and t % chunk == 0:
            self.states.append(self.h)
        out, value, self.h = self._forward(obs)
        action = _rows(self.net.sample(_full_batch(out[0], self.rows, self.N), self.gen), self.rows, self.N)
        extras = {"episode": torch.as_tensor(self.env.episode_index).to(self.device)}
        if chunk:
            extras.update(logp=self.net.log_prob(out[0], action), value=value[0], trial_start=start)
        return action, extras

    def finish(self, rollout: Rollout) -> dict[str, Tensor]:
        if not self.spec.chunk:
            return {}
        with torch.no_grad():
            self._clear_at_trial_starts()
            _, last_value, _ = self._forward(rollout.next_obs)
        return {"chunk_states": torch.stack(self.states), "last_value": last_value}


@dataclass
class LatentPolicySpec(PolicySpec):
    """A context-conditioned policy (PEARL): sub-env ``i`` acts with ``π(a | s, z[i])``.

    The actor needs ``dist(x [n, obs_dim + L]) -> (mean, log_std)`` of the pre-squash Gaussian
    and ``squash(u) -> action`` (``metarl.agents.pearl.TanhGaussianActor``).

    Args:
        actor: the actor network (its class must be importable where the workers run).
        z: ``[N, L]`` latent of every sub-env (task-major, as the tasks are).
        seed: seed of the action noise (a CPU generator over the whole ``[N, act_dim]`` batch).
        deterministic: act with the squashed mean (no noise).
        block: the actor runs on aligned blocks of this many rows and shards split only between
            blocks, so every shard layout gives the same bits (see :class:`RecurrentPolicySpec`).
    """

    actor: nn.Module
    z: Tensor
    seed: int
    deterministic: bool = False
    block: int = 64

    @property
    def group_size(self) -> int:  # type: ignore[override]
        return self.block

    def bind(self, env: Any, rows: range, num_envs: int, device: torch.device) -> BoundPolicy:
        return _LatentPolicy(self, rows, num_envs, device)


class _LatentPolicy(BoundPolicy):
    def __init__(self, spec: LatentPolicySpec, rows: range, num_envs: int, device: torch.device) -> None:
        self.spec, self.rows, self.N = spec, rows, num_envs
        self.z = spec.z[rows.start : rows.stop].to(device)
        self.gen = torch.Generator().manual_seed(int(spec.seed))

    def __call__(self, obs: Tensor, t: int) -> tuple[Tensor, dict[str, Tensor]]:
        B, actor = self.spec.block, self.spec.actor
        x = torch.cat([obs.reshape(obs.shape[0], -1), self.z], -1)
        # Each block is copied to a fresh (aligned) tensor: a BLAS kernel's rounding can depend on
        # where a row slice starts in memory, which differs between shard layouts for small blocks.
        parts = [actor.dist(x[a : a + B].clone()) for a in range(0, x.shape[0], B)]
        mean, log_std = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        # Element-wise math (exp, tanh) runs on the whole [N, A] batch, zero-padded outside this
        # shard: SIMD kernels can round a row differently with the tensor's length, so every shard
        # layout computes every row in the same position of the same-sized tensor.
        mean, log_std = _full_batch(mean, self.rows, self.N), _full_batch(log_std, self.rows, self.N)
        if self.spec.deterministic:
            return _rows(actor.squash(mean), self.rows, self.N), {}
        eps = torch.randn(mean.shape, generator=self.gen).to(mean.device)  # the whole batch's noise
        return _rows(actor.squash(mean + log_std.exp() * eps), self.rows, self.N), {}


class _IndexedTasks:
    """Tasks of restarted RL² trials: shard row ``j`` draws from global sub-env ``rows[j]``'s stream."""

    def __init__(self, distribution: Any, seeds: Sequence[int]) -> None:
        self.distribution, self.seeds = distribution, list(seeds)
        self.rngs: dict[int, np.random.Generator] = {}

    def __call__(self, idx: np.ndarray) -> list[Task]:
        out = []
        for j in idx.tolist():
            if j not in self.rngs:
                self.rngs[j] = task_rng(self.seeds[j])
            out.append(self.distribution.sample(self.rngs[j], 1)[0])
        return out


# ==== the one shard job ===========================================================================
def collect_rows(
    env: Any,
    policy: PolicySpec,
    rows: range,
    num_envs: int,
    tasks: Sequence[Task],
    horizon: int,
    seed: int,
    device: torch.device | str = "cpu",
) -> Rollout:
    """Roll out rows ``rows`` of an ``num_envs``-sub-env meta-batch on ``env`` (``len(rows)`` sub-envs).

    Row ``i`` gets reset seed ``seed + i`` and ``tasks[i - rows.start]``; the result is those rows
    of the unsharded rollout, bit for bit.
    """
    device = torch.device(device)
    seeds = [int(seed) + i for i in rows]
    if hasattr(env, "indexed_task_sampler"):  # RL² trials: restarted trials draw per sub-env
        env.indexed_task_sampler = _IndexedTasks(env.env.distribution, seeds)
    act = policy.bind(env, rows, num_envs, device)
    # An int seed where the shard is the whole batch: the env expands it to seed + i itself.
    ro = collect(env, act, horizon, device=device, tasks=list(tasks), seed=int(seed) if len(rows) == num_envs else seeds)
    final = act.finish(ro)
    return ro._replace(extras={**ro.extras, **final}) if final else ro


def shard_bounds(num_envs: int, num_shards: int, group: int = 1) -> list[range]:
    """Split ``num_envs`` sub-envs into at most ``num_shards`` contiguous, near-equal ranges that
    start at multiples of ``group`` (the last group may be short).

    >>> shard_bounds(10, 3, group=2)
    [range(0, 2), range(2, 6), range(6, 10)]
    >>> shard_bounds(7, 2, group=4)
    [range(0, 4), range(4, 7)]
    """
    groups = -(-num_envs // group)
    k = max(1, min(num_shards, groups))
    cuts = [min(num_envs, group * (groups * s // k)) for s in range(k + 1)]
    return [range(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def _concat(parts: Sequence[Rollout]) -> Rollout:
    """Shards' rollouts side by side along the sub-env axis (axis 1; ``next_obs`` axis 0)."""
    if len(parts) == 1:
        return parts[0]
    cat = dict(
        obs=torch.cat([p.obs for p in parts], 1),
        actions=torch.cat([p.actions for p in parts], 1),
        rewards=torch.cat([p.rewards for p in parts], 1),
        terminated=torch.cat([p.terminated for p in parts], 1),
        truncated=torch.cat([p.truncated for p in parts], 1),
        valid=torch.cat([p.valid for p in parts], 1),
        next_obs=torch.cat([p.next_obs for p in parts], 0),
        extras={k: torch.cat([p.extras[k] for p in parts], 1) for k in parts[0].extras},
    )
    extra_fields = [f for f in Rollout._fields if f not in cat]  # e.g. per-step fields added later
    for name in extra_fields:
        vals = [getattr(p, name) for p in parts]
        cat[name] = None if vals[0] is None else torch.cat(vals, 1 if vals[0].dim() > 1 else 0)
    return Rollout(**cat)


# ==== backends ======================================================================================
class Sampler(ABC):
    """Collects meta-batches; see the module docstring. Use as a context manager to release workers."""

    @abstractmethod
    def sample(
        self,
        env: EnvSpec,
        policy: PolicySpec,
        tasks: Sequence[Task],
        *,
        episodes: int,
        horizon: int,
        seed: int,
        device: torch.device | str = "cpu",
    ) -> Rollout:
        """Roll out ``len(tasks) × episodes`` sub-envs (task-major) for ``horizon`` steps.

        Returns:
            A :class:`~metarl.sampling.Rollout` on ``device``, ``[T, N, ...]``; extras a policy
            computes after the last step have the sub-env axis second.
        """

    def close(self) -> None:  # noqa: B027 (a no-op for in-process samplers)
        """Release workers (a no-op locally)."""

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _check_call(tasks: Sequence[Task], episodes: int, horizon: int, seed: int) -> None:
    if not tasks:
        raise ConfigError("a sampler needs at least one task")
    check_count(episodes, "episodes")
    check_count(horizon, "horizon")
    check_seed(seed, span=len(tasks) * int(episodes))  # sub-env i is reset with seed + i


class LocalSampler(Sampler):
    """One native batched env in this process (cached per env and size): the embedded default."""

    def __init__(self) -> None:
        self._envs: dict[tuple[str, int], Any] = {}

    def adopt(self, env: EnvSpec, venv: Any) -> None:
        """Step ``venv`` (built from ``env``) for meta-batches of its size instead of building one."""
        self._envs[(env.key(), venv.num_envs)] = venv

    def env(self, env: EnvSpec, num_envs: int) -> Any:
        """The cached batched env of ``num_envs`` sub-envs for ``env``."""
        key = (env.key(), num_envs)
        if key not in self._envs:
            self._envs[key] = env.make(num_envs)
        return self._envs[key]

    def sample(self, env, policy, tasks, *, episodes, horizon, seed, device="cpu") -> Rollout:  # noqa: D102
        _check_call(tasks, episodes, horizon, seed)
        N = len(tasks) * episodes
        sub_tasks = [t for t in tasks for _ in range(episodes)]
        return collect_rows(self.env(env, N), policy, range(N), N, sub_tasks, horizon, int(seed), device)

    def __repr__(self) -> str:
        return "LocalSampler()"


class ShardWorker:
    """The body of a Ray sampling actor: one batched env per (env, shard size), reused across calls."""

    def __init__(self, torch_threads: int = 1) -> None:
        torch.set_num_threads(int(torch_threads))
        self._local = LocalSampler()

    def pid(self) -> int:
        """The actor's process id (for monitoring, and for tests that kill it)."""
        return os.getpid()

    def collect(
        self, env: EnvSpec, policy: PolicySpec, rows: range, num_envs: int, tasks: list[Task], horizon: int, seed: int
    ) -> Rollout:
        return collect_rows(self._local.env(env, len(rows)), policy, rows, num_envs, tasks, horizon, seed, "cpu")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(f"the Ray sampler needs ray, which is not installed: {RAY_INSTALL_HINT}") from None
    return ray


class RaySampler(Sampler):
    """Sub-envs sharded over Ray core actors, one native batched env per actor.

    Args:
        num_workers: actors (each gets at most one contiguous shard per call).
        address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``); ``None`` joins the
            cluster this process already initialised, else starts a local one.
        cpus_per_worker: CPUs each actor reserves (and its torch threads).
        start_timeout_s: how long an actor (or a dead actor's replacement) may take to start
            before :class:`~metarl.errors.SamplerError` (e.g. more workers than free CPUs).
        max_replacements: replacements per shard and call before :class:`~metarl.errors.SamplerError`.
        init_kwargs: extra ``ray.init`` arguments when this sampler starts Ray.
    """

    def __init__(
        self,
        num_workers: int = 2,
        *,
        address: str | None = None,
        cpus_per_worker: int = 1,
        start_timeout_s: float = 60.0,
        max_replacements: int = 3,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        for name, v in (("num_workers", num_workers), ("cpus_per_worker", cpus_per_worker)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"{name} must be a positive int, got {v!r}")
        if not start_timeout_s >= 0:
            raise ConfigError(f"start_timeout_s must be >= 0, got {start_timeout_s!r}")
        ray = _import_ray()
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, **(init_kwargs or {}))
        self.num_workers = int(num_workers)
        self.cpus_per_worker = int(cpus_per_worker)
        self.start_timeout_s = float(start_timeout_s)
        self.max_replacements = int(max_replacements)
        #: Actors replaced since creation (each after its process died).
        self.replacements = 0
        self._actor_cls = ray.remote(num_cpus=self.cpus_per_worker)(ShardWorker)
        self._workers: list[Any] = [self._actor_cls.remote(self.cpus_per_worker) for _ in range(self.num_workers)]
        self._await_started(list(range(self.num_workers)), "could not start")

    def _await_started(self, which: list[int], what: str) -> None:
        """Wait (all at once) for workers ``which`` to answer; :class:`SamplerError` after the timeout."""
        ray = self._ray
        pings = {self._workers[i].pid.remote(): i for i in which}
        _, late = ray.wait(list(pings), num_returns=len(pings), timeout=self.start_timeout_s)
        if late:
            names = ", ".join(str(pings[r]) for r in late)
            self.close()
            raise SamplerError(
                f"Ray sampling worker {names} {what} within {self.start_timeout_s:g} s: each needs {self.cpus_per_worker} "
                f"free CPU(s); the cluster has {ray.cluster_resources().get('CPU', 0):g} CPUs in all (`ray status`)"
            )

    def worker_pids(self) -> list[int]:
        """Process ids of the actors, in worker order."""
        return self._ray.get([w.pid.remote() for w in self._workers])

    def _replace(self, i: int, cause: BaseException) -> None:
        ray = self._ray
        try:
            ray.kill(self._workers[i], no_restart=True)
        except Exception:  # already gone  # noqa: BLE001
            pass
        self._workers[i] = self._actor_cls.remote(self.cpus_per_worker)
        self._await_started([i], f"died ({type(cause).__name__}) and no replacement started")
        self.replacements += 1

    def _submitted(self) -> None:
        """Hook called once all shards of a call are submitted (tests kill workers here)."""

    def sample(self, env, policy, tasks, *, episodes, horizon, seed, device="cpu") -> Rollout:  # noqa: D102
        _check_call(tasks, episodes, horizon, seed)
        ray = self._ray
        from ray.exceptions import RayActorError

        N = len(tasks) * episodes
        sub_tasks = [t for t in tasks for _ in range(episodes)]
        shards = shard_bounds(N, self.num_workers, policy.group_size)
        policy_ref = ray.put(policy.cpu())  # broadcast once; every actor reads the same object

        def submit(i: int) -> Any:
            rows = shards[i]
            return self._workers[i].collect.remote(env, policy_ref, rows, N, sub_tasks[rows.start : rows.stop], horizon, int(seed))

        pending = {submit(i): i for i in range(len(shards))}
        self._submitted()
        parts: list[Rollout | None] = [None] * len(shards)
        tries = [0] * len(shards)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    parts[i] = ray.get(ref)
                except RayActorError as e:
                    # The actor's process died: its shard is collected again, same rows and seeds,
                    # on a fresh actor (nothing of the dead attempt is kept, so nothing duplicates).
                    tries[i] += 1
                    if tries[i] > self.max_replacements:
                        raise SamplerError(f"Ray sampling worker {i} died {tries[i]} times collecting rows {shards[i]}") from e
                    self._replace(i, e)
                    pending[submit(i)] = i
        ro = _concat(parts)  # type: ignore[arg-type]
        return ro if torch.device(device).type == "cpu" else _to(ro, torch.device(device))

    def close(self) -> None:
        """Kill the actors (Ray itself stays up: it may serve other samplers)."""
        for w in self._workers:
            try:
                self._ray.kill(w, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self._workers = []

    def __repr__(self) -> str:
        return f"RaySampler(num_workers={self.num_workers})"


def _to(ro: Rollout, device: torch.device) -> Rollout:
    def move(v: Any) -> Any:
        if isinstance(v, Tensor):
            return v.to(device)
        return {k: x.to(device) for k, x in v.items()} if isinstance(v, dict) else v

    return Rollout(**{k: move(v) for k, v in ro._asdict().items()})


def check_sampler_options(kind: str, num_workers: int = 2) -> None:
    """Validate ``--sampler``/``--num-workers`` before anything starts (ray must be importable).

    Raises:
        ConfigError: unknown ``kind``, a bad ``num_workers``, or ``"ray"`` without ray installed
            (the message says how to install it).
    """
    if kind not in ("local", "ray"):
        raise ConfigError(f"sampler must be 'local' or 'ray', got {kind!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 1:
        raise ConfigError(f"num_workers must be a positive int, got {num_workers!r}")
    if kind == "ray":
        _import_ray()


def make_sampler(kind: str = "local", *, num_workers: int = 2, address: str | None = None) -> Sampler:
    """A sampler by name: ``"local"`` or ``"ray"`` (``num_workers`` actors, cluster ``address``).

    >>> make_sampler("local")
    LocalSampler()

    Raises:
        ConfigError: see :func:`check_sampler_options`.
    """
    check_sampler_options(kind, num_workers)
    return LocalSampler() if kind == "local" else RaySampler(num_workers, address=address)


def attach_sampler(agent: Any, kind: str, *, num_workers: int = 2, address: str | None = None) -> Sampler | None:
    """Give ``agent`` a ``kind`` sampler; returns it (to close) unless it is the local default.

    Raises:
        ConfigError: a non-local sampler for an agent that does not sample through a sampler.
    """
    check_sampler_options(kind, num_workers)
    if kind == "local":
        return None
    if not isinstance(getattr(agent, "sampler", None), Sampler):
        raise ConfigError(f"agent {type(agent).__name__} does not collect through metarl.samplers; --sampler {kind} needs one that does (maml, rl2, pearl)")
    agent.sampler = make_sampler(kind, num_workers=num_workers, address=address)
    return agent.sampler

