"""Classic baselines for the RL² tables: bandit index policies and PSRL, batched over trials.

Each policy runs ``N`` independent trials at once with numpy arrays (``[N, k]`` arm statistics,
``[N, S, A, S]`` transition counts), in the same native batched env and with the same trial
structure (``episodes_per_trial`` episodes on one task) as the RL² agent, so the numbers go in
the same table (Duan et al. 2016, Tables 1 and 2):

- bandits: random, greedy, ε-greedy, UCB1, Thompson sampling, Gittins index (approximation);
- tabular MDPs: random, PSRL, UCRL2, BEB, ε-greedy and greedy (certainty-equivalent value
  iteration), the rows of Duan et al. 2016, Table 2.

As in the RL² paper, UCB1's exploration constant is tuned per setting (arms, pulls) on *training*
tasks (never the held-out ones) — with short horizons the textbook constant scores far lower;
ε-greedy's ε, UCRL2's confidence-width scale and BEB's β are tuned the same way. :func:`tune_constant` does it and the constant is reported
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
    "MDPGreedy",
    "MDPEpsilonGreedy",
    "BEB",
    "UCRL2",
    "extended_backup",
    "run_classic",
    "tune_constant",
    "UCB1_GRID",
    "EPSILON_GRID",
    "BEB_GRID",
    "UCRL2_GRID",
    "evaluate_baselines",
    "is_bandit",
]

#: Exploration constants UCB1 is tuned over (index ``mean + c·sqrt(2 ln t / n_a)``; ``c = 1`` is Auer et al.'s).
UCB1_GRID: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
#: Exploration rates ε-greedy is tuned over.
EPSILON_GRID: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
#: BEB's bonus coefficients β (reward bonus ``β / (1 + n(s, a))``).
BEB_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
#: Scales of UCRL2's confidence widths (``1`` is Jaksch et al.'s; far too wide for trials of 100-250 steps).
UCRL2_GRID: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


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
class _TabularModel(ClassicPolicy):
    """Counts of one trial's transitions and rewards ``[N, S, A(, S)]``; plans at each episode start.

    Subclasses give :meth:`plan` (``Q [H, N, S, A]``, ``Q[h]`` with ``H - h`` steps to go); the
    policy acts greedily in it for the whole episode (ties broken at random).
    """

    def reset(self, env: BatchedMetaEnv, total_steps: int, rng: np.random.Generator) -> None:
        super().reset(env, total_steps, rng)
        S = int(env.single_observation_space.shape[0])
        A = int(env.single_action_space.n)
        self.S, self.A, self.H = S, A, env.max_episode_steps
        self.counts = np.zeros((self.num, S, A, S))
        self.reward_sum = np.zeros((self.num, S, A))
        self.visits = np.zeros((self.num, S, A))
        self._rows = np.arange(self.num)

    def posterior_mean(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean MDP under the task distribution's priors (PSRL's): ``P ~ Dirichlet(1)``, ``μ ~ N(1, 1)``."""
        P = (self.counts + 1.0) / (self.visits[..., None] + self.S)
        R = (1.0 + self.reward_sum) / (1.0 + self.visits)
        return P, R

    def backward(self, P: np.ndarray, R: np.ndarray) -> np.ndarray:
        """Finite-horizon backward induction: ``Q [H, N, S, A]`` of the MDP ``(P, R)``."""
        V = np.zeros((self.num, self.S))
        Q = np.empty((self.H, self.num, self.S, self.A))
        for h in range(self.H - 1, -1, -1):
            Q[h] = R + np.einsum("nsat,nt->nsa", P, V)
            V = Q[h].max(axis=-1)
        return Q

    @abstractmethod
    def plan(self) -> np.ndarray: ...

    def begin_episode(self, obs: np.ndarray) -> None:
        self.Q = self.plan()

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        s = obs.argmax(axis=1)
        return _argmax_random(self.Q[min(step, self.H - 1), self._rows, s], self.rng)

    def update(self, obs, actions, rewards, next_obs, active) -> None:
        s, s2 = obs.argmax(axis=1), next_obs.argmax(axis=1)
        w = active.astype(np.float64)
        np.add.at(self.counts, (self._rows, s, actions, s2), w)
        np.add.at(self.reward_sum, (self._rows, s, actions), rewards * w)
        np.add.at(self.visits, (self._rows, s, actions), w)
        self.t += 1


class PSRL(_TabularModel):
    """Posterior sampling for RL (Osband, Russo & Van Roy 2013) on finite-horizon tabular MDPs.

    Priors match the task distribution (RL², §3.2): ``P(·|s,a) ~ Dirichlet(1)`` and, with the
    reward noise ``N(0, 1)`` known, ``μ(s,a) ~ N(1, 1)`` (conjugate normal posterior). At each
    episode start one MDP is drawn from the posterior of every trial and solved by backward
    induction over the episode horizon; the policy acts greedily in it for the episode.
    """

    name = "psrl"

    def plan(self) -> np.ndarray:
        P = self.rng.standard_gamma(self.counts + 1.0)  # Dirichlet(1 + counts) via normalised gammas
        P /= P.sum(axis=-1, keepdims=True)
        prec = 1.0 + self.visits  # prior precision 1, noise precision 1
        mean = (1.0 + self.reward_sum) / prec
        R = mean + self.rng.standard_normal(mean.shape) / np.sqrt(prec)
        return self.backward(P, R)


class MDPGreedy(_TabularModel):
    """Certainty-equivalent control: at each episode start, solve the posterior-mean MDP and act greedily in it.

    Duan et al. 2016 (Table 2, "Greedy"); the estimate uses the task prior (``P ~ Dirichlet(1)``,
    ``μ ~ N(1, 1)``) so unvisited pairs keep the prior mean.
    """

    name = "greedy"

    def plan(self) -> np.ndarray:
        return self.backward(*self.posterior_mean())


class MDPEpsilonGreedy(MDPGreedy):
    """:class:`MDPGreedy` that takes a uniformly random action with probability ``epsilon`` at each step."""

    name = "epsilon_greedy"

    def __init__(self, epsilon: float = 0.1) -> None:
        if not (math.isfinite(epsilon) and 0.0 <= epsilon <= 1.0):
            raise ConfigError(f"epsilon must lie in [0, 1], got {epsilon!r}")
        self.epsilon = float(epsilon)

    def act(self, obs: np.ndarray, step: int) -> np.ndarray:
        greedy = super().act(obs, step)
        explore = self.rng.random(self.num) < self.epsilon
        return np.where(explore, self.rng.integers(0, self.A, size=self.num), greedy)


class BEB(MDPGreedy):
    """Bayesian Exploration Bonus (Kolter & Ng 2009): the posterior-mean MDP with reward bonus ``β / (1 + n(s, a))``.

    ``n(s, a)`` counts the trial's visits to ``(s, a)``; the MDP is solved by backward induction at
    each episode start. ``β`` is tuned on training tasks (:data:`BEB_GRID`).
    """

    name = "beb"

    def __init__(self, beta: float = 1.0) -> None:
        if not (math.isfinite(beta) and beta >= 0.0):
            raise ConfigError(f"BEB bonus beta must be finite and >= 0, got {beta!r}")
        self.beta = float(beta)

    def bonus(self) -> np.ndarray:
        """``β / (1 + n(s, a))``, ``[N, S, A]``."""
        return self.beta / (1.0 + self.visits)

    def plan(self) -> np.ndarray:
        P, R = self.posterior_mean()
        return self.backward(P, R + self.bonus())


def extended_backup(p_hat: np.ndarray, width: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Most optimistic expected next value ``max_p p·V`` over ``{p in simplex : ‖p - p_hat‖₁ <= width}``.

    The inner step of UCRL2's extended value iteration (Jaksch et al. 2010, Fig. 2): put
    ``min(1, p̂(s*) + width/2)`` on the best next state ``s*`` and take the excess back from the
    worst states first.

    Args:
        p_hat: ``[N, S, A, S]`` empirical transition probabilities (rows sum to 1).
        width: ``[N, S, A]`` L1 radius of the confidence set.
        V: ``[N, S]`` next-state values.

    Returns:
        ``[N, S, A]`` optimistic expected next value.

    >>> p = np.array([[[[0.5, 0.5, 0.0]]]])
    >>> float(extended_backup(p, np.array([[[0.4]]]), np.array([[0.0, 1.0, 2.0]]))[0, 0, 0])
    0.9
    """
    order = np.argsort(-V, axis=1, kind="stable")  # best state first
    Vs = np.take_along_axis(V, order, axis=1)  # [N, S]
    p = np.take_along_axis(p_hat, order[:, None, None, :], axis=3).copy()
    top = np.minimum(1.0, p[..., 0] + width / 2.0)
    excess = top - p[..., 0]
    p[..., 0] = top
    # Mass after position j (the states worse than j): it is removed before any of j's.
    after = np.cumsum(p[..., ::-1], axis=-1)[..., ::-1]
    after = np.concatenate([after[..., 1:], np.zeros_like(after[..., :1])], axis=-1)
    take = np.clip(excess[..., None] - after, 0.0, p)
    take[..., 0] = 0.0
    p -= take
    return np.einsum("nsat,nt->nsa", p, Vs)


class UCRL2(_TabularModel):
    """UCRL2 (Jaksch, Ortner & Auer 2010) for finite-horizon episodes: optimism in confidence sets.

    At each episode start it plans by extended backward induction over the episode horizon in the
    set of MDPs with ``|r - r̂(s,a)| <= c·sqrt(3.5 ln(2SAt/δ) / n⁺)`` and
    ``‖p - p̂(·|s,a)‖₁ <= c·sqrt(14 S ln(2At/δ) / n⁺)``, ``n⁺ = max(1, n(s, a))``, ``t`` the steps
    taken in the trial so far (at least 1). Jaksch et al.'s widths (``c = 1``) assume rewards in
    [0, 1] and long runs; here rewards are N(μ, 1) and trials are short, so ``c`` is tuned on
    training tasks (:data:`UCRL2_GRID`), as Duan et al. 2016 tuned their baselines. Unvisited pairs
    have ``p̂`` uniform and ``r̂ = 0``.
    """

    name = "ucrl2"

    def __init__(self, c: float = 1.0, delta: float = 0.05) -> None:
        if not (math.isfinite(c) and c >= 0.0):
            raise ConfigError(f"UCRL2 width scale c must be finite and >= 0, got {c!r}")
        if not (math.isfinite(delta) and 0.0 < delta < 1.0):
            raise ConfigError(f"UCRL2 confidence delta must lie in (0, 1), got {delta!r}")
        self.c, self.delta = float(c), float(delta)

    def widths(self) -> tuple[np.ndarray, np.ndarray]:
        """``(reward width, transition L1 width)``, each ``[N, S, A]``."""
        n = np.maximum(self.visits, 1.0)
        t = max(self.t, 1)
        w_r = self.c * np.sqrt(3.5 * math.log(2.0 * self.S * self.A * t / self.delta) / n)
        w_p = self.c * np.sqrt(14.0 * self.S * math.log(2.0 * self.A * t / self.delta) / n)
        return w_r, w_p

    def plan(self) -> np.ndarray:
        n = self.visits[..., None]
        p_hat = np.where(n > 0, self.counts / np.maximum(n, 1.0), 1.0 / self.S)
        r_hat = self.reward_sum / np.maximum(self.visits, 1.0)
        w_r, w_p = self.widths()
        R = r_hat + w_r
        V = np.zeros((self.num, self.S))
        Q = np.empty((self.H, self.num, self.S, self.A))
        for h in range(self.H - 1, -1, -1):
            Q[h] = R + extended_backup(p_hat, w_p, V)
            V = Q[h].max(axis=-1)
        return Q


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
    make, grid, num_tasks = _TUNABLE[kind]
    best, scores = tune_constant(make, grid, env_id, episodes_per_trial=episodes_per_trial, num_tasks=num_tasks, env_kwargs=env_kwargs)
    return best, tuple(scores.items())


#: Training tasks each MDP constant is tuned on (planning every episode makes a trial ~100x a bandit's cost).
MDP_TUNING_TASKS = 200

#: Tuned constants: kind -> (policy from the constant, grid searched on training tasks, number of tasks).
_TUNABLE: dict[str, tuple[Callable[[float], ClassicPolicy], tuple[float, ...], int]] = {
    "ucb1": (UCB1, UCB1_GRID, 500),
    "epsilon": (EpsilonGreedy, EPSILON_GRID, 500),
    "mdp_epsilon": (MDPEpsilonGreedy, EPSILON_GRID, MDP_TUNING_TASKS),
    "beb": (BEB, BEB_GRID, MDP_TUNING_TASKS),
    "ucrl2": (UCRL2, UCRL2_GRID, MDP_TUNING_TASKS),
}


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
        eps, eps_scores = _tuned("mdp_epsilon", env_id, episodes_per_trial, key)
        beta, beta_scores = _tuned("beb", env_id, episodes_per_trial, key)
        c, c_scores = _tuned("ucrl2", env_id, episodes_per_trial, key)
        results["psrl"] = run(PSRL())
        results["ucrl2"] = run(UCRL2(c))
        results["beb"] = run(BEB(beta))
        results["epsilon_greedy"] = run(MDPEpsilonGreedy(eps))
        results["greedy"] = run(MDPGreedy())
        extra.update(
            ucrl2_c=c, ucrl2_tuning={str(k): v for k, v in c_scores},
            beb_beta=beta, beb_tuning={str(k): v for k, v in beta_scores},
            epsilon=eps, epsilon_tuning={str(k): v for k, v in eps_scores},
            tuning=f"grid search on {MDP_TUNING_TASKS} training tasks (seed 12345), never the held-out ones",
        )
    return results, extra
