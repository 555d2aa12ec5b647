"""Per-task replay buffers as preallocated tensors, filled and sampled with tensor indexing.

:class:`TaskReplay` holds ``num_tasks`` ring buffers side by side: every field is one tensor
``[num_tasks, capacity, ...]`` on the agent's device. :meth:`TaskReplay.add` writes a batch of
transitions of any tasks at once and :meth:`TaskReplay.sample` draws ``[M, B, ...]`` batches for
``M`` task indices at once; neither loops over transitions in Python. Task ``m``'s transitions
occupy slots ``[0, size[m])``; when full, the oldest is overwritten first (a ring).

Off-policy context-based agents use two (PEARL, Rakelly et al. 2019, §4.2): the RL replay for the
actor-critic and an encoder replay of recent on-task data for the context.

>>> import torch
>>> buf = TaskReplay(num_tasks=2, capacity=3, obs_dim=1, act_dim=1)
>>> tasks = torch.tensor([0, 0, 1, 0, 0])
>>> x = torch.arange(5.0).unsqueeze(-1)
>>> buf.add(tasks, x, x, torch.arange(5.0), x + 1, torch.zeros(5))
>>> buf.size.tolist(), buf.obs[0, :, 0].tolist()     # task 0 got 4 into 3 slots: the first is gone
([3, 1], [4.0, 1.0, 3.0])
>>> batch = buf.sample(torch.tensor([1, 1]), 4, torch.Generator().manual_seed(0))
>>> tuple(batch.obs.shape), set(batch.obs.flatten().tolist())
((2, 4, 1), {2.0})
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from metarl.errors import CheckpointError, ConfigError

__all__ = ["Transitions", "TaskReplay"]


class Transitions(NamedTuple):
    """A batch of transitions, ``[M, B, ...]`` (``M`` tasks, ``B`` per task) or ``[K, ...]``.

    Attributes:
        obs: ``[..., obs_dim]``.
        actions: ``[..., act_dim]``.
        rewards: ``[...]``.
        next_obs: ``[..., obs_dim]``.
        terminals: ``[...]`` float, 1 where the episode truly ended (no bootstrap).
    """

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    terminals: Tensor


class TaskReplay:
    """``num_tasks`` ring buffers of ``capacity`` transitions each (see the module docstring).

    Args:
        num_tasks: number of task slots (task ids are ``0 .. num_tasks-1``).
        capacity: transitions kept per task.
        obs_dim, act_dim: flat observation and action sizes.
        device: where the storage lives.
    """

    _FIELDS = Transitions._fields

    def __init__(self, num_tasks: int, capacity: int, obs_dim: int, act_dim: int, device: torch.device | str = "cpu") -> None:
        for name, v in (("num_tasks", num_tasks), ("capacity", capacity), ("obs_dim", obs_dim), ("act_dim", act_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"TaskReplay {name} must be a positive int, got {v!r}")
        self.num_tasks, self.capacity = num_tasks, capacity
        self.device = torch.device(device)
        shape = (num_tasks, capacity)
        kw: dict[str, Any] = {"device": self.device}
        self.obs = torch.zeros((*shape, obs_dim), **kw)
        self.actions = torch.zeros((*shape, act_dim), **kw)
        self.rewards = torch.zeros(shape, **kw)
        self.next_obs = torch.zeros((*shape, obs_dim), **kw)
        self.terminals = torch.zeros(shape, **kw)
        #: ``[num_tasks]`` filled slots and next write slot of each task.
        self.size = torch.zeros(num_tasks, dtype=torch.long, device=self.device)
        self.ptr = torch.zeros(num_tasks, dtype=torch.long, device=self.device)

    def _task_ids(self, task_ids: Tensor | Any) -> Tensor:
        ids = torch.as_tensor(task_ids, dtype=torch.long).to(self.device).reshape(-1)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_tasks):
            raise ConfigError(f"task ids must lie in [0, {self.num_tasks}), got min {int(ids.min())} max {int(ids.max())}")
        return ids

    def add(self, task_ids: Tensor, obs: Tensor, actions: Tensor, rewards: Tensor, next_obs: Tensor, terminals: Tensor) -> None:
        """Append ``K`` transitions, transition ``k`` to task ``task_ids[k]`` (in order within a task).

        Args:
            task_ids: ``[K]`` long. The other arguments are ``[K, ...]``.
        """
        ids = self._task_ids(task_ids)
        K = ids.numel()
        if K == 0:
            return
        counts = torch.bincount(ids, minlength=self.num_tasks)
        # Rank of each transition among its task's, in arrival order (a stable sort by task).
        order = torch.sort(ids, stable=True).indices
        first = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(ids)
        rank[order] = torch.arange(K, device=self.device) - first[ids[order]]
        # More than `capacity` for one task in one call: only its last `capacity` are written (the
        # earlier would be overwritten anyway, and duplicate slots in one write are unordered).
        keep = rank >= counts[ids] - self.capacity
        ids, rank = ids[keep], rank[keep]
        slot = (self.ptr[ids] + rank) % self.capacity
        for name, value in zip(self._FIELDS, (obs, actions, rewards, next_obs, terminals), strict=True):
            store = getattr(self, name)
            v = torch.as_tensor(value).to(device=self.device, dtype=store.dtype)
            v = v.reshape(K, *store.shape[2:])[keep]
            store[ids, slot] = v
        self.ptr = (self.ptr + counts) % self.capacity
        self.size = torch.clamp(self.size + counts, max=self.capacity)

    def clear(self, task_ids: Tensor | Any) -> None:
        """Empty the buffers of ``task_ids`` (their storage is reused)."""
        ids = self._task_ids(task_ids)
        self.size[ids] = 0
        self.ptr[ids] = 0

    def sample(self, task_ids: Tensor | Any, batch_size: int, generator: torch.Generator) -> Transitions:
        """``batch_size`` transitions of each of ``task_ids`` (uniform, with replacement): ``[M, B, ...]``.

        Row ``m`` holds only transitions of task ``task_ids[m]``. ``generator`` is a CPU generator.

        Raises:
            ConfigError: a requested task has no transition yet.
        """
        ids = self._task_ids(task_ids)
        sizes = self.size[ids]
        if ids.numel() and int(sizes.min()) == 0:
            empty = ids[sizes == 0].tolist()
            raise ConfigError(f"replay buffer of task(s) {empty} is empty; collect before sampling")
        # u in float64 (53 random bits): a float32 u has only 2**24 values, so with a 10**6-slot
        # buffer some slots would get 17 of them and others 16 (6% apart); in float64 the slots'
        # odds differ by at most size / 2**53. The clamp guards the product rounding up to size.
        u = torch.rand((ids.numel(), int(batch_size)), generator=generator, dtype=torch.float64).to(self.device)
        slot = torch.minimum((u * sizes.unsqueeze(1).double()).long(), sizes.unsqueeze(1) - 1)
        rows = ids.unsqueeze(1).expand_as(slot)
        return Transitions(*(getattr(self, name)[rows, slot] for name in self._FIELDS))

    def transitions(self) -> int:
        """Transitions held in all tasks."""
        return int(self.size.sum())

    def state_dict(self) -> dict[str, Any]:
        """Storage up to the largest filled size (the rest is unused), sizes and write pointers."""
        used = int(self.size.max()) if self.num_tasks else 0
        out: dict[str, Any] = {name: getattr(self, name)[:, :used].clone() for name in self._FIELDS}
        out.update(size=self.size.clone(), ptr=self.ptr.clone(), capacity=self.capacity)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (same ``num_tasks``, ``capacity`` and field sizes)."""
        if int(state["capacity"]) != self.capacity or tuple(state["size"].shape) != (self.num_tasks,):
            raise CheckpointError(
                f"replay buffer state is for {tuple(state['size'].shape)} tasks x {state['capacity']} transitions, "
                f"not {self.num_tasks} x {self.capacity}"
            )
        for name in self._FIELDS:
            store, saved = getattr(self, name), state[name]
            if tuple(saved.shape[2:]) != tuple(store.shape[2:]) or saved.shape[1] > self.capacity:
                raise CheckpointError(f"replay buffer field {name!r} has shape {tuple(saved.shape)}, expected [.., <= {self.capacity}, {tuple(store.shape[2:])}]")
            store.zero_()
            store[:, : saved.shape[1]] = saved.to(self.device)
        self.size = state["size"].to(self.device, torch.long).clone()
        self.ptr = state["ptr"].to(self.device, torch.long).clone()
