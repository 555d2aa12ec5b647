"""The exact Bayes-optimal policy for short Bernoulli-bandit trials: the ceiling of the n = 10 rows.

Run by hand (not in CI)::

    python benchmarks/bayes_optimal_bandit.py              # k = 5, 10, 50 arms, n = 10 pulls
    python benchmarks/bayes_optimal_bandit.py --arms 5 --pulls 10 --trials-per-task 200

The RL² bandit tasks draw each arm's success probability from U[0, 1] = Beta(1, 1) (Duan et al.
2016, §3.1), so the best any policy can do *in expectation over the task distribution* is the
finite-horizon Bayes-optimal value, found by backward induction over the arms' posterior counts
(Bellman 1956; Gittins, Glazebrook & Weber 2011, ch. 1). The Gittins index that ``metarl eval``
reports is an approximation of it (Brezzi & Lai 2002, :class:`metarl.classic.GittinsApprox`), so
"at or above the best classic baseline" at n = 10 asks a learner to match an approximation of the
optimum. This script prints, per setting:

- **prior-expected values, exact** (no sampling): the Bayes-optimal policy, and the Gittins
  approximation and greedy as ``metarl eval`` runs them (ties split evenly), by the same
  recursion — the numbers an RL² agent's *training-task* trial return estimates;
- **held-out values**: the Bayes-optimal policy run through :func:`metarl.classic.run_classic` on
  the env's fixed held-out tasks, on exactly the relabeled copies RL²'s evaluation draws
  (``RL2Config.eval_relabel``, evaluation seed 0, chunks of 10 tasks), beside Gittins run the same way — so its figure
  sits in the reproduction table's terms. The Gittins figure printed here equals the table's.

The posterior is symmetric in the arms, so a state is the multiset of the arms' (successes,
failures); with at most ``n`` pulled arms the state count stays small for n = 10 at any k (it
grows like the partitions of ``2n``, which rules out n = 100).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable

import numpy as np

import metarl
from metarl.classic import GittinsApprox, Greedy, _BanditPolicy, run_classic

State = tuple[tuple[int, int], ...]  # sorted (successes, failures) of the arms pulled so far


def _move(state: State, arm: tuple[int, int], win: bool) -> State:
    """The state after pulling an arm whose counts are ``arm`` ((0, 0): an unpulled arm)."""
    s, f = arm
    new = (s + 1, f) if win else (s, f + 1)
    rest = list(state)
    if arm != (0, 0):
        rest.remove(arm)
    return tuple(sorted([*rest, new]))


def _backup(state: State, arm: tuple[int, int], value: Callable[[State], float]) -> float:
    """Expected return of pulling ``arm`` in ``state`` and then following ``value``: the posterior
    mean ``p = (s + 1) / (s + f + 2)`` of a success, plus what the next state is worth."""
    s, f = arm
    p = (s + 1) / (s + f + 2)
    return p * (1.0 + value(_move(state, arm, True))) + (1.0 - p) * value(_move(state, arm, False))


class BayesOptimal(_BanditPolicy):
    """Pulls the arm of highest Bayes-optimal action value for the trial's remaining pulls.

    Posterior mean of arm ``(s, f)`` is ``(s + 1) / (s + f + 2)``; the value of a state is the best
    arm's ``p (1 + V(win)) + (1 - p) V(loss)``, zero when no pulls are left.
    """

    name = "bayes_optimal"

    def __init__(self, arms: int, pulls: int) -> None:
        self.arms, self.pulls_total = int(arms), int(pulls)
        self.value = functools.cache(self._value)
        self.action_values = functools.cache(self._action_values)

    def choices(self, state: State) -> list[tuple[int, int]]:
        """The distinct arms one can pull in ``state``: each pulled arm's counts, and (0, 0) if any is left."""
        return sorted(set(state)) + ([(0, 0)] if len(state) < self.arms else [])

    def q(self, state: State, arm: tuple[int, int]) -> float:
        return _backup(state, arm, self.value)

    def _value(self, state: State) -> float:
        if sum(s + f for s, f in state) >= self.pulls_total:
            return 0.0
        return max(self.action_values(state).values())

    def _action_values(self, state: State) -> dict[tuple[int, int], float]:
        return {arm: self.q(state, arm) for arm in self.choices(state)}

    def scores(self) -> np.ndarray:
        out = np.empty(self.wins.shape)
        for n in range(self.num):
            counts = [(int(w), int(p - w)) for w, p in zip(self.wins[n], self.pulls[n], strict=True)]
            q = self.action_values(tuple(sorted(c for c in counts if c != (0, 0))))
            out[n] = [q[c] for c in counts]
        return out


def policy_value(arms: int, pulls: int, index) -> float:
    """Exact prior-expected trial return of an index policy (``index(counts, t) -> scores``) that
    breaks ties within 1e-9 uniformly, as :func:`metarl.classic.run_classic` does."""

    @functools.cache
    def v(state: State) -> float:
        t = sum(s + f for s, f in state)
        if t >= pulls:
            return 0.0
        counts = [*state] + [(0, 0)] * (arms - len(state))
        scores = index(np.array(counts, dtype=float), t)
        best = np.flatnonzero(scores >= scores.max() - 1e-9)
        return sum(_backup(state, counts[i], v) for i in best) / len(best)

    return v(())


def _index(cls, pulls: int):
    """Scores of a :mod:`metarl.classic` bandit policy for arm counts ``[k, 2]`` at trial step ``t``."""

    def scores(counts: np.ndarray, t: int) -> np.ndarray:
        pol = cls()
        pol.wins, pol.pulls = counts[None, :, 0], counts.sum(1)[None]
        pol.total_steps, pol.t = pulls, t
        return pol.scores()[0]

    return scores


def held_out(policy, arms: int, pulls: int, trials_per_task: int, seed: int = 0, chunk_size: int = 10) -> float:
    """Mean held-out trial return on the relabeled copies RL²'s evaluation uses: ``metarl eval``
    scores the tasks in chunks of ``chunk_size``, chunk ``i`` with seed ``seed + i``
    (:func:`metarl.evaluation.evaluate_tasks`), and ``RL2._evaluate`` runs its trials on
    ``TaskDistribution.trial_copies`` of the chunk with that seed."""
    kwargs = {"num_arms": arms, "horizon": 1}
    env = metarl.make("metarl/Bandit-v0", **kwargs).unwrapped
    dist, tasks = env.distribution, env.held_out_tasks()
    totals = []
    for i, lo in enumerate(range(0, len(tasks), chunk_size)):
        chunk = tasks[lo : lo + chunk_size]
        copies = dist.trial_copies([dist.check(t) for t in chunk], trials_per_task, seed + i)
        ret = run_classic(policy, "metarl/Bandit-v0", copies, episodes_per_trial=pulls, seed=seed + i, env_kwargs=kwargs)
        totals.append(ret.reshape(len(chunk), trials_per_task, pulls).mean(axis=1).sum(axis=1))
    return float(np.concatenate(totals).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arms", type=int, nargs="+", default=[5, 10, 50])
    ap.add_argument("--pulls", type=int, default=10)
    ap.add_argument("--trials-per-task", type=int, default=200, help="held-out trials per task (the table's 200)")
    args = ap.parse_args(argv)
    if args.pulls < 1 or args.pulls > 20 or min(args.arms) < 2 or args.trials_per_task < 1:
        ap.error(f"need 2 <= arms, 1 <= pulls <= 20 (the state space explodes beyond), trials >= 1; got "
                 f"arms {args.arms}, pulls {args.pulls}, trials {args.trials_per_task}")
    print("| k | n | Bayes-optimal (prior, exact) | Gittins approx. (prior, exact) | greedy (prior, exact) "
          "| Bayes-optimal (held-out) | Gittins approx. (held-out) | states | s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in args.arms:
        t0 = time.perf_counter()
        opt = BayesOptimal(k, args.pulls)
        v_opt = opt.value(())
        v_git = policy_value(k, args.pulls, _index(GittinsApprox, args.pulls))
        v_greedy = policy_value(k, args.pulls, _index(Greedy, args.pulls))
        h_opt = held_out(opt, k, args.pulls, args.trials_per_task)
        h_git = held_out(GittinsApprox(), k, args.pulls, args.trials_per_task)
        states = opt.value.cache_info().currsize
        print(f"| {k} | {args.pulls} | {v_opt:.4f} | {v_git:.4f} | {v_greedy:.4f} | {h_opt:.4f} | {h_git:.4f} "
              f"| {states:,} | {time.perf_counter() - t0:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
