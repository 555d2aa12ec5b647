"""One random stream per sub-env, drawn a batch-vector at a time.

A native batched env draws one value per sub-env per call (a bandit's Bernoulli reward, an MDP's
transition). If one generator served the whole batch, sub-env ``i``'s draws would depend on how
many sub-envs share the batch, and a sharded meta-batch (:mod:`metarl.samplers`) could not
reproduce the unsharded one. :class:`SubEnvRNG` gives sub-env ``i`` its own generator,
one stream per method (uniforms from ``np.random.default_rng(seed_i)``, the generator Gymnasium
gives a single env reset with ``seed_i``), so its draws depend only on its seed and on how many
draws it has made.
Draws are read from per-sub-env blocks refilled every ``block`` calls, so a step costs one
column read, not ``N`` generator calls.

>>> rng = SubEnvRNG([10, 11, 12])
>>> shard = SubEnvRNG([11, 12])
>>> a = [rng.random(3) for _ in range(100)]
>>> b = [shard.random(2) for _ in range(100)]
>>> all((x[1:] == y).all() for x, y in zip(a, b))
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metarl.errors import ConfigError

__all__ = ["SubEnvRNG"]

_METHODS = ("random", "standard_normal")


class SubEnvRNG:
    """Independent streams for ``N`` sub-envs with a vector interface (``size`` must be ``N``).

    Args:
        seeds: one seed per sub-env; ``None`` draws fresh OS entropy for each.
        num_envs: ``N`` (needed when ``seeds`` is ``None``).
        block: draws buffered per sub-env and method between refills.
    """

    def __init__(self, seeds: Sequence[int] | None, num_envs: int | None = None, *, block: int = 64) -> None:
        if seeds is None:
            if num_envs is None:
                raise ConfigError("SubEnvRNG needs seeds or num_envs")
            self._roots = np.random.SeedSequence().spawn(int(num_envs))
        else:
            self._roots = [np.random.SeedSequence(int(s)) for s in seeds]
        self.num_envs = len(self._roots)
        self.block = int(block)
        self._gens: dict[str, list[np.random.Generator]] = {}
        self._buf: dict[str, np.ndarray] = {}
        self._pos: dict[str, int] = {}

    def _generators(self, method: str) -> list[np.random.Generator]:
        # Each method has its own stream per sub-env, so interleaving methods (or another block
        # size) never shifts one method's draws; `random` uses the sub-env's root stream.
        if method not in self._gens:
            key = _METHODS.index(method)
            self._gens[method] = [
                np.random.default_rng(r if key == 0 else np.random.SeedSequence(r.entropy, spawn_key=(*r.spawn_key, key)))
                for r in self._roots
            ]
        return self._gens[method]

    def _draw(self, method: str, size: int | tuple[int, ...]) -> np.ndarray:
        n = size if isinstance(size, (int, np.integer)) else (size[0] if len(size) == 1 else -1)
        if n != self.num_envs:
            raise ConfigError(f"SubEnvRNG.{method} draws one value per sub-env: size must be {self.num_envs}, got {size!r}")
        pos = self._pos.get(method, self.block)
        if pos == self.block:
            self._buf[method] = np.stack([getattr(g, method)(self.block) for g in self._generators(method)])
            pos = 0
        self._pos[method] = pos + 1
        return self._buf[method][:, pos].copy()

    def random(self, size: int | tuple[int, ...]) -> np.ndarray:
        """One uniform ``[0, 1)`` draw per sub-env, ``float64[N]``."""
        return self._draw("random", size)

    def standard_normal(self, size: int | tuple[int, ...]) -> np.ndarray:
        """One standard normal draw per sub-env, ``float64[N]``."""
        return self._draw("standard_normal", size)
