"""Classic baselines for the RL² tables: bandit index policies and PSRL, batched over trials.

Each policy runs ``N`` independent trials at once with numpy arrays (``[N, k]`` arm statistics,
``[N, S, A, S]`` transition counts), in the same native batched env and with the same trial
structure (``episodes_per_trial`` episodes on one task) as the RL² agent, so the numbers go in
the same table (Duan et al. 2016, Tables 1 and 2):

- bandits: random, greedy, ε-greedy, UCB1, Thompson sampling, Gittins index (approximation);
- tabular MDPs: random, PSRL.

As in the RL² paper, UCB1's exploration constant is tuned per setting (arms, pulls) on *training*
tasks (never the held-out ones) — with short horizons the textbook constant scores far lower;
ε-greedy's ε is tuned the same way. :func:`tune_constant` does it and the constant is reported
with the result.

>>> import metarl
>>> env = metarl.make("metarl/Bandit-v0", num_arms=2)
>>> task = env.unwrapped.held_out_tasks()[0]
>>> ret = run_classic(UCB1(c=0.2), "metarl/Bandit-v0", [task], episodes_per_trial=1,
...                   trials_per_task=4, seed=0, env_kwargs={"num_arms": 2, "horizon": 50})
>>> ret.shape          # [num_tasks, episodes_per_trial], mean over the task's trials
(1, 1)
"""

from __future__ import annotations

import functools
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from metarl.errors import ConfigError
from metarl.meta_env import BatchedMetaEnv
from metarl.tasks import Task

__all__ = [
    "ClassicPolicy",
    "RandomPolicy",
    "Greedy",
    "EpsilonGreedy",
    "UCB1",
    "ThompsonSampling",
    "GittinsApprox",
    "PSRL",
    "run_classic",
    "tune_constant",
    "UCB1_GRID",
    "EPSILON_GRID",
    "evaluate_baselines",
    "is_bandit",
]

#: Exploration constants UCB1 is tuned over (index ``mean + c·sqrt(2 ln t / n_a)``; ``c = 1`` is Auer et al.'s).
UCB1_GRID: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
#: Exploration rates ε-greedy is tuned over.
EPSILON_GRID: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)


def _argmax_random(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax, ties broken uniformly at random (``+inf`` entries win first)."""
    finite = np.where(np.isposinf(scores), 1e18, scores)
    return np.argmax(finite + rng.random(scores.shape) * 1e-9, axis=1)


class ClassicPolicy(ABC):
    """A non-learned adaptive policy run on ``N`` trials at once.

    The runner calls :meth:`reset` once per trial batch, :meth:`begin_episode` at each episode
    start, then per step :meth:`act` and :meth:`update` (``active`` masks sub-envs whose episode
    already ended).
    """

    name: str = "classic"

    def reset(self, env: BatchedMetaEnv, total_steps: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.env = env
        self.num = env.num_envs
        self.total_steps = total_steps
        self.t = 0  # steps taken so far in the trial

    def begin_episode(self, obs: np.ndarray) -> None:  # noqa: B027 (optional hook)
        """Called at the start of every episode of the trial."""

    @abstractmethod
    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        """Actions ``[N]`` for observations ``[N, ...]`` at step ``step`` of the episode."""

    def update(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray, active: np.ndarray) -> None:  # noqa: B027
        """Learn from one step (only rows with ``active``)."""


class RandomPolicy(ClassicPolicy):
    """Uniformly random actions (any discrete env)."""

    name = "random"

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        return self.rng.integers(0, self.env.single_action_space.n, size=self.num)


# --- bandits ---------------------------------------------------------------------------------
class _BanditPolicy(ClassicPolicy):
    """Keeps per-arm pulls and successes ``[N, k]``; a Beta(1, 1) prior where one is used."""

    def reset(self, env: BatchedMetaEnv, total_steps: int, rng: np.random.Generator) -> None:
        super().reset(env, total_steps, rng)
        k = int(env.single_action_space.n)
        self.pulls = np.zeros((self.num, k))
        self.wins = np.zeros((self.num, k))
        self._rows = np.arange(self.num)

    def update(self, obs, actions, rewards, next_obs, active) -> None:
        w = active.astype(np.float64)
        np.add.at(self.pulls, (self._rows, actions), w)
        np.add.at(self.wins, (self._rows, actions), rewards * w)
        self.t += 1

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        return _argmax_random(self.scores(), self.rng)

    @abstractmethod
    def scores(self) -> np.ndarray: ...


class Greedy(_BanditPolicy):
    """The arm with the highest posterior mean under a Beta(1, 1) prior (no exploration)."""

    name = "greedy"

    def scores(self) -> np.ndarray:
        return (self.wins + 1.0) / (self.pulls + 2.0)


class EpsilonGreedy(Greedy):
    """Greedy, but a uniformly random arm with probability ``epsilon``."""

    name = "epsilon_greedy"

    def __init__(self, epsilon: float = 0.1) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ConfigError(f"epsilon must lie in [0, 1], got {epsilon!r}")
        self.epsilon = float(epsilon)

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        greedy = super().act(obs, step)
        explore = self.rng.random(self.num) < self.epsilon
        random = self.rng.integers(0, self.pulls.shape[1], size=self.num)
        return np.where(explore, random, greedy)


class UCB1(_BanditPolicy):
    """UCB1 (Auer et al. 2002) with an exploration constant: ``mean + c·sqrt(2 ln t / n_a)``.

    Every arm is pulled once first. ``c = 1`` is the textbook algorithm; the RL² paper tunes ``c``
    per setting (:func:`tune_constant` with :data:`UCB1_GRID`).
    """

    name = "ucb1"

    def __init__(self, c: float = 1.0) -> None:
        if not (math.isfinite(c) and c >= 0.0):
            raise ConfigError(f"UCB1 exploration constant c must be finite and >= 0, got {c!r}")
        self.c = float(c)

    def scores(self) -> np.ndarray:
        n = np.maximum(self.pulls, 1.0)
        bonus = self.c * np.sqrt(2.0 * math.log(max(self.t, 1)) / n)
        return np.where(self.pulls == 0, np.inf, self.wins / n + bonus)


class ThompsonSampling(_BanditPolicy):
    """Thompson sampling (Thompson 1933) with Beta(1, 1) priors: pull the argmax of a posterior draw."""

    name = "thompson"

    def scores(self) -> np.ndarray:
        return self.rng.beta(self.wins + 1.0, self.pulls - self.wins + 1.0)


def _brezzi_lai_psi(s: np.ndarray) -> np.ndarray:
    """The piecewise ψ of Brezzi & Lai (2002) approximating the normalised Gittins boundary.

    A curve fit: increasing on each piece, with small jumps where pieces meet (s = 0.2 and 15).
    """
    s = np.maximum(s, 1e-12)
    big = np.maximum(s, 15.0)  # the last branch only applies for s > 15 (keeps the logs defined)
    return np.select(
        [s <= 0.2, s <= 1.0, s <= 5.0, s <= 15.0],
        [np.sqrt(s / 2.0), 0.49 - 0.11 / np.sqrt(s), 0.63 - 0.26 / np.sqrt(s), 0.77 - 0.58 / np.sqrt(s)],
        default=np.sqrt(np.maximum(2.0 * np.log(big) - np.log(np.log(big)) - np.log(16.0 * np.pi), 0.0)),
    )


class GittinsApprox(_BanditPolicy):
    """An approximate Gittins index policy for Bernoulli arms with Beta(1, 1) priors.

    Approximation (documented, not exact): the closed form of Brezzi & Lai (2002),
    ``index ≈ μ + σ·ψ(1 / ((n + 1)·ln(1/γ)))`` with posterior mean ``μ``, posterior standard
    deviation ``σ = sqrt(μ(1-μ)/(n+1))`` after ``n`` observations (prior counts included), for a
    discount ``γ`` chosen so the effective horizon ``1/(1-γ)`` equals the number of pulls left in
    the trial. On the last pull ``γ = 0`` and the index is the posterior mean (greedy), which is
    exactly optimal there.
    """

    name = "gittins"

    def scores(self) -> np.ndarray:
        a = self.wins + 1.0
        n = self.pulls + 2.0  # posterior pseudo-count a + b
        mu = a / n
        sigma = np.sqrt(mu * (1.0 - mu) / (n + 1.0))
        remaining = max(self.total_steps - self.t, 1)
        if remaining <= 1:
            return mu
        log_inv_gamma = -math.log1p(-1.0 / remaining)
        return mu + sigma * _brezzi_lai_psi(1.0 / ((n + 1.0) * log_inv_gamma))


# --- tabular MDPs ----------------------------------------------------------------------------
class PSRL(ClassicPolicy):
    """Posterior sampling for RL (Osband, Russo & Van Roy 2013) on finite-horizon tabular MDPs.

    Priors match the task distribution (RL², §3.2): ``P(·|s,a) ~ Dirichlet(1)`` and, with the
    reward noise ``N(0, 1)`` known, ``μ(s,a) ~ N(1, 1)`` (conjugate normal posterior). At each
    episode start one MDP is drawn from the posterior of every trial and solved by backward
    induction over the episode horizon; the policy acts greedily in it for the episode.
    """

    name = "psrl"

    def reset(self, env: BatchedMetaEnv, total_steps: int, rng: np.random.Generator) -> None:
        super().reset(env, total_steps, rng)
        S = int(env.single_observation_space.shape[0])
        A = int(env.single_action_space.n)
        self.S, self.A, self.H = S, A, env.max_episode_steps
        self.counts = np.zeros((self.num, S, A, S))
        self.reward_sum = np.zeros((self.num, S, A))
        self.visits = np.zeros((self.num, S, A))
        self._rows = np.arange(self.num)

    def begin_episode(self, obs: np.ndarray) -> None:
        P = self.rng.standard_gamma(self.counts + 1.0)  # Dirichlet(1 + counts) via normalised gammas
        P /= P.sum(axis=-1, keepdims=True)
        prec = 1.0 + self.visits  # prior precision 1, noise precision 1
        mean = (1.0 + self.reward_sum) / prec
        R = mean + self.rng.standard_normal(mean.shape) / np.sqrt(prec)
        V = np.zeros((self.num, self.S))
        self.Q = np.empty((self.H, self.num, self.S, self.A))
        for h in range(self.H - 1, -1, -1):  # Q[h]: h steps taken, H - h to go
            self.Q[h] = R + np.einsum("nsat,nt->nsa", P, V)
            V = self.Q[h].max(axis=-1)

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        s = obs.argmax(axis=1)
        q = self.Q[min(step, self.H - 1), self._rows, s]
        return _argmax_random(q, self.rng)

    def update(self, obs, actions, rewards, next_obs, active) -> None:
        s, s2 = obs.argmax(axis=1), next_obs.argmax(axis=1)
        w = active.astype(np.float64)
        np.add.at(self.counts, (self._rows, s, actions, s2), w)
        np.add.at(self.reward_sum, (self._rows, s, actions), rewards * w)
        np.add.at(self.visits, (self._rows, s, actions), w)
        self.t += 1


# --- running -----------------------------------------------------------------------------------
def run_classic(
    policy: ClassicPolicy,
    env_id: str,
    tasks: Sequence[Task],
    *,
    episodes_per_trial: int,
    trials_per_task: int = 1,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Run ``policy`` for ``trials_per_task`` trials on each task, all trials in one batched env.

    Returns:
        ``[num_tasks, episodes_per_trial]`` return of each episode of the trial, averaged over the
        task's trials.
    """
    from metarl.registry import make_vec

    if episodes_per_trial < 1 or trials_per_task < 1 or not tasks:
        raise ConfigError(
            f"need episodes_per_trial >= 1, trials_per_task >= 1 and tasks, got {episodes_per_trial}, "
            f"{trials_per_task}, {len(tasks)} tasks"
        )
    M, R, E = len(tasks), int(trials_per_task), int(episodes_per_trial)
    env = make_vec(env_id, M * R, autoreset_mode=AutoresetMode.DISABLED, **dict(env_kwargs or {}))
    if not isinstance(env.single_action_space, spaces.Discrete):
        raise ConfigError(f"classic baselines need a discrete action space, {env_id} has {env.single_action_space}")
    all_tasks = [t for t in tasks for _ in range(R)]
    obs, _ = env.reset(seed=seed, options={"tasks": all_tasks})
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0xC1A5,)))
    H = env.max_episode_steps
    policy.reset(env, E * H, rng)
    returns = np.zeros((M * R, E))
    for e in range(E):
        if e > 0:
            obs, _ = env.reset()
        policy.begin_episode(obs)
        active = np.ones(M * R, dtype=bool)
        for h in range(H):
            actions = policy.act(obs, h)
            next_obs, reward, term, trunc, _ = env.step(actions)
            policy.update(obs, actions, reward, next_obs, active)
            returns[:, e] += reward * active
            active &= ~(term | trunc)
            obs = next_obs
            if not active.any():
                break
    return returns.reshape(M, R, E).mean(axis=1)


def tune_constant(
    make_policy: Callable[[float], ClassicPolicy],
    grid: Sequence[float],
    env_id: str,
    *,
    episodes_per_trial: int,
    num_tasks: int = 500,
    seed: int = 12345,
    env_kwargs: Mapping[str, Any] | None = None,
) -> tuple[float, dict[float, float]]:
    """Pick the constant of ``grid`` with the highest mean trial return on training tasks.

    Tasks come from the env's training distribution with ``seed`` (never the held-out list), one
    trial each; every constant sees the same tasks and the same env seed.

    Returns:
        ``(best constant, {constant: mean trial return})``.
    """
    from metarl.registry import make_vec

    probe = make_vec(env_id, 1, **dict(env_kwargs or {}))
    tasks = probe.sample_tasks(num_tasks, seed=seed)
    scores = {}
    for c in grid:
        ret = run_classic(make_policy(c), env_id, tasks, episodes_per_trial=episodes_per_trial, seed=seed, env_kwargs=env_kwargs)
        scores[float(c)] = float(ret.sum(axis=1).mean())
    best = max(scores, key=lambda c: (scores[c], -c))
    return best, scores


@functools.lru_cache(maxsize=64)
def _tuned(kind: str, env_id: str, episodes_per_trial: int, env_kwargs_json: str) -> tuple[float, tuple[tuple[float, float], ...]]:
    env_kwargs = json.loads(env_kwargs_json)
    if kind == "ucb1":
        best, scores = tune_constant(UCB1, UCB1_GRID, env_id, episodes_per_trial=episodes_per_trial, env_kwargs=env_kwargs)
    else:
        best, scores = tune_constant(EpsilonGreedy, EPSILON_GRID, env_id, episodes_per_trial=episodes_per_trial, env_kwargs=env_kwargs)
    return best, tuple(scores.items())


def is_bandit(env: BatchedMetaEnv) -> bool:
    """Whether ``env`` is a bandit (one constant state): the bandit baselines apply."""
    return type(env.distribution).__name__ == "BanditDistribution"


def evaluate_baselines(
    env_id: str,
    tasks: Sequence[Task],
    *,
    episodes_per_trial: int,
    trials_per_task: int = 1,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every classic baseline that fits the env, on ``tasks`` (tuned constants in the extras).

    Returns:
        ``({name: [num_tasks, episodes_per_trial] returns}, {"ucb1_c": ..., "epsilon": ..., ...})``.
    """
    from metarl.registry import make_vec

    env_kwargs = dict(env_kwargs or {})
    probe = make_vec(env_id, 1, **env_kwargs)
    run = functools.partial(
        run_classic, env_id=env_id, tasks=tasks, episodes_per_trial=episodes_per_trial,
        trials_per_task=trials_per_task, seed=seed, env_kwargs=env_kwargs,
    )
    key = json.dumps(env_kwargs, sort_keys=True)
    results: dict[str, np.ndarray] = {"random": run(RandomPolicy())}
    extra: dict[str, Any] = {}
    if is_bandit(probe):
        c, c_scores = _tuned("ucb1", env_id, episodes_per_trial, key)
        eps, eps_scores = _tuned("epsilon", env_id, episodes_per_trial, key)
        results["greedy"] = run(Greedy())
        results["epsilon_greedy"] = run(EpsilonGreedy(eps))
        results["ucb1"] = run(UCB1(c))
        results["thompson"] = run(ThompsonSampling())
        results["gittins"] = run(GittinsApprox())
        extra.update(
            ucb1_c=c, ucb1_tuning={str(k): v for k, v in c_scores},
            epsilon=eps, epsilon_tuning={str(k): v for k, v in eps_scores},
            tuning="grid search on 500 training tasks (seed 12345), as Duan et al. 2016 tuned UCB1",
        )
    elif isinstance(probe.single_action_space, spaces.Discrete) and hasattr(probe, "num_states"):
        results["psrl"] = run(PSRL())
    return results, extra
