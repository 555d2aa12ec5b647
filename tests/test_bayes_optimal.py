"""benchmarks/bayes_optimal_bandit.py: the exact Bayes-optimal ceiling of the n = 10 bandit rows."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from metarl.classic import GittinsApprox, Greedy, run_classic

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bo():
    spec = importlib.util.spec_from_file_location("bayes_optimal_bandit", ROOT / "benchmarks" / "bayes_optimal_bandit.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bayes_optimal_bandit"] = mod
    spec.loader.exec_module(mod)
    return mod


def _brute_force(arms: int, pulls: int) -> float:
    """Backward induction over the full (arm-labelled) counts, with no symmetry reduction."""

    @functools.cache
    def v(counts: tuple[tuple[int, int], ...]) -> float:
        if sum(s + f for s, f in counts) == pulls:
            return 0.0
        best = 0.0
        for a, (s, f) in enumerate(counts):
            p = (s + 1) / (s + f + 2)
            win = counts[:a] + ((s + 1, f),) + counts[a + 1 :]
            loss = counts[:a] + ((s, f + 1),) + counts[a + 1 :]
            best = max(best, p * (1 + v(win)) + (1 - p) * v(loss))
        return best

    return v(((0, 0),) * arms)


def test_known_values_and_the_symmetry_reduction(bo) -> None:
    assert bo.BayesOptimal(2, 1).value(()) == 0.5
    assert bo.BayesOptimal(2, 2).value(()) == pytest.approx(13 / 12, abs=1e-15)  # 1/2 + 1/2·2/3 + 1/2·1/2
    for arms, pulls in [(2, 5), (3, 4), (4, 3)]:
        assert bo.BayesOptimal(arms, pulls).value(()) == pytest.approx(_brute_force(arms, pulls), abs=1e-12)


def test_no_index_policy_beats_the_optimum_and_greedy_is_optimal_for_two_pulls(bo) -> None:
    for arms, pulls in [(2, 2), (3, 6), (5, 10)]:
        opt = bo.BayesOptimal(arms, pulls).value(())
        for cls in (Greedy, GittinsApprox):
            v = bo.policy_value(arms, pulls, bo._index(cls, pulls))
            assert v <= opt + 1e-12
            if pulls <= 2:
                assert v == pytest.approx(opt, abs=1e-12)
    # At k = 5, n = 10 both fall strictly short, greedy by more (the figures RESULTS.md quotes).
    opt = bo.BayesOptimal(5, 10).value(())
    git = bo.policy_value(5, 10, bo._index(GittinsApprox, 10))
    greedy = bo.policy_value(5, 10, bo._index(Greedy, 10))
    assert greedy < git < opt


def test_the_policy_earns_its_exact_value_on_prior_draws(bo) -> None:
    import metarl

    arms, pulls, n = 3, 4, 10_000
    env = metarl.make("metarl/Bandit-v0", num_arms=arms, horizon=1).unwrapped
    tasks = env.distribution.sample(np.random.default_rng(7), n)
    ret = run_classic(bo.BayesOptimal(arms, pulls), "metarl/Bandit-v0", tasks, episodes_per_trial=pulls, seed=0,
                      env_kwargs={"num_arms": arms, "horizon": 1}).sum(axis=1)
    se = ret.std() / np.sqrt(n)
    assert abs(ret.mean() - bo.BayesOptimal(arms, pulls).value(())) < 4 * se


def test_held_out_figures_are_in_the_tables_terms(bo) -> None:
    # The Gittins baseline metarl eval reports for an RL² run equals the script's held-out Gittins.
    from metarl.agents import RL2, RL2Config
    from metarl.evaluation import evaluate_tasks, held_out_tasks

    kwargs = {"num_arms": 5, "horizon": 1}
    agent = RL2("metarl/Bandit-v0", RL2Config(episodes_per_trial=10, num_trials=4, eval_trials_per_task=3), env_kwargs=kwargs)
    res = evaluate_tasks(agent, held_out_tasks("metarl/Bandit-v0", kwargs), seed=0, chunk_size=10)
    assert res.baselines["gittins"].mean() == pytest.approx(bo.held_out(GittinsApprox(), 5, 10, 3), abs=1e-12)
