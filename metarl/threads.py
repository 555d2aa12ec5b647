"""The CPU thread policy of every agent: how many torch intra-op threads CPU work uses.

One setting, ``threads``: ``"auto"`` (the default) or a positive int. It is a field of
``metarl train`` / ``metarl eval`` (``--threads N``, recorded in the run's ``config.yaml`` under
``trainer``) and an attribute of every :class:`metarl.agent.Agent` (``agent.threads = 2``). The
``Agent`` base runs each agent's ``train_iteration`` and ``evaluate`` inside
:func:`torch_threads` with it, so MAML, RL² and every later agent share the policy without
code of their own, and the caller's torch setting is restored after each call.

``"auto"`` resolves to **one** intra-op thread. The networks here are small (MLPs of 100 units,
a GRU of 256): most ops last microseconds, and torch's OpenMP workers spin-wait between ops, so
extra threads gain little and collapse when another process wants the cores. On the project's
2-core machines (``benchmarks/RESULTS.md``, issue 9): idle, torch's default 2 threads ran the
default MAML iteration ~1.5x faster than 1 (1.7 s vs 2.7 s); with a second CPU-bound job, 2
threads took 18-27 s per iteration against 3-5 s with 1, and RL²'s default iteration 3.4 s
against 0.44 s. One thread bounds the worst case at a small idle cost;
``benchmarks/bench_threads.py`` measures both. Give more (``--threads 2``) on a dedicated
machine, or for large networks and batches, after measuring.

**Torch threads vs MuJoCo's rollout threads.** The MuJoCo families step all sub-envs in C on a
persistent pool of ``nthread`` threads (env kwarg, default
:func:`metarl.envs.mujoco.default_nthread`: every usable core). Sampling alternates in
lock-step (physics for all envs, then one policy forward), so the two pools never compute at the
same time; the physics is the hot path and scales with cores, so it keeps all of them, and torch
keeps one thread so that no spinning OpenMP worker competes with the physics threads that start
right after each forward (one policy forward took ~63 ms instead of ~0.8 ms that way,
``benchmarks/bench_mujoco.py``). The rule: physics gets the cores (``nthread``), torch gets
``threads`` (1 by default); the two settings are independent.

**Coarse task parallelism.** Besides the intra-op setting, work that splits into a few large
independent pieces (the TRPO meta-update's task groups, :mod:`metarl.gradient_meta`) runs them on
Python threads through :func:`parallel_map`, one piece per thread and at most one thread per
usable core. Torch releases the GIL inside its ops, so the pieces compute at once; each piece is
tenths of a second to seconds of work with one join at the end, so a busy neighbour costs a share
of a core, not the per-op stalls of spinning OpenMP workers (on a GPU the pieces run one after
another: their kernels share a stream). The pieces are fixed by the caller, never by the core
count, so results do not depend on how many threads ran them.

**Devices.** On CUDA the networks run on the GPU and torch's CPU threads only serve the small
host-side ops (observation tensors, metrics), so one thread costs nothing there; the policy is
the same on every device.

>>> import torch
>>> before = torch.get_num_threads()
>>> with torch_threads("auto"):
...     torch.get_num_threads()
1
>>> torch.get_num_threads() == before
True
>>> check_threads("0")
Traceback (most recent call last):
...
metarl.errors.ConfigError: threads must be 'auto' or a positive int, got '0'
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypeVar

import torch

from metarl.errors import ConfigError

__all__ = ["AUTO_THREADS", "ThreadSetting", "check_threads", "resolve_threads", "torch_threads", "usable_cores", "parallel_map"]

#: What ``"auto"`` resolves to (see the module docstring for why one).
AUTO_THREADS = 1

ThreadSetting = int | str
"""``"auto"`` or a positive int."""


def check_threads(value: Any) -> ThreadSetting:
    """``value`` as ``"auto"`` or a positive int (digit strings from the CLI/YAML are converted).

    Raises:
        ConfigError: anything else (naming the value).
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "auto":
            return "auto"
        if text.isdigit() and int(text) >= 1:
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise ConfigError(f"threads must be 'auto' or a positive int, got {value!r}")


def resolve_threads(value: Any) -> int:
    """The torch intra-op thread count a setting means (``"auto"``: :data:`AUTO_THREADS`)."""
    setting = check_threads(value)
    return AUTO_THREADS if setting == "auto" else int(setting)


@contextlib.contextmanager
def torch_threads(value: Any = "auto") -> Iterator[int]:
    """Run the block with torch's intra-op threads set by ``value``; restore the previous count after.

    Yields the thread count in effect. Validates ``value`` before changing anything.
    """
    n = resolve_threads(value)
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


T = TypeVar("T")
R = TypeVar("R")
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None) -> list[R]:
    """``[fn(x) for x in items]``, the calls spread over up to ``workers`` threads (default: the usable cores).

    Results come back in the order of ``items``; if calls raise, the exception of the first
    failing item (in item order) is re-raised after all have finished. With one item or one
    worker everything runs on the calling thread. Worker threads run with the caller's torch
    intra-op thread count; other thread-local torch state (grad mode) is not inherited, so ``fn``
    sets what it needs. Not re-entrant: ``fn`` must not call :func:`parallel_map` itself (the
    shared pool's threads would wait on each other).

    >>> parallel_map(lambda x: x * x, [1, 2, 3])
    [1, 4, 9]
    """
    n = min(len(items), usable_cores() if workers is None else int(workers))
    if n <= 1:
        return [fn(x) for x in items]
    # Keyed by process too: a forked child inherits the pool object but not its threads.
    key = (os.getpid(), n)
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="metarl")
    intra_op = torch.get_num_threads()

    def call(x: T) -> R:
        if torch.get_num_threads() != intra_op:  # a pool thread made under another setting
            torch.set_num_threads(intra_op)
        return fn(x)

    futures = [pool.submit(call, x) for x in items]
    wait(futures)
    return [f.result() for f in futures]
