"""Classic baselines: known regret behaviour on fixed bandits, PSRL on MDPs, tuning, errors."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import metarl
from metarl.classic import (
    PSRL,
    UCB1,
    UCB1_GRID,
    EpsilonGreedy,
    GittinsApprox,
    Greedy,
    RandomPolicy,
    ThompsonSampling,
    _brezzi_lai_psi,
    evaluate_baselines,
    run_classic,
    tune_constant,
)
from metarl.envs import BanditTask
from metarl.errors import ConfigError

FIXED = BanditTask(probs=[0.2, 0.5, 0.8, 0.4, 0.3])


def _arm_choices(policy, pulls: int, trials: int = 200, seed: int = 0) -> np.ndarray:
    """``[pulls, trials]`` arms chosen by ``policy`` on the fixed bandit."""
    env = metarl.make_vec("metarl/Bandit-v0", trials, num_arms=5, horizon=pulls, autoreset_mode=AutoresetMode.DISABLED)
    env.reset(seed=seed, options={"tasks": [FIXED] * trials})
    policy.reset(env, pulls, np.random.default_rng(seed))
    obs = np.zeros((trials, 1))
    chosen = []
    for t in range(pulls):
        a = policy.act(obs, t)
        _, r, _, _, _ = env.step(a)
        policy.update(obs, a, r, obs, np.ones(trials, dtype=bool))
        chosen.append(a)
    return np.stack(chosen)


@pytest.mark.parametrize("policy", [UCB1(c=1.0), ThompsonSampling(), GittinsApprox()], ids=lambda p: p.name)
def test_index_policies_pick_the_best_arm_most_of_the_time(policy) -> None:
    chosen = _arm_choices(policy, pulls=500)
    late = (chosen[400:] == 2).mean()
    early = (chosen[:20] == 2).mean()
    assert late > 0.75, f"{policy.name} pulls the best arm only {late:.2f} of the time after 400 pulls"
    assert late > early + 0.3  # it learned: far more than at the start


def test_ucb1_regret_grows_sublinearly() -> None:
    chosen = _arm_choices(UCB1(c=1.0), pulls=800, trials=100)
    gap = 0.8 - FIXED.probs[chosen]  # per-pull expected regret
    regret = gap.mean(axis=1).cumsum()
    # Logarithmic regret: the second 400 pulls add far less regret than the first 400.
    assert regret[-1] - regret[399] < 0.5 * regret[399]
    random_regret = 800 * (0.8 - FIXED.probs.mean())
    assert regret[-1] < 0.3 * random_regret


def test_ucb1_pulls_every_arm_once_first() -> None:
    chosen = _arm_choices(UCB1(c=0.0), pulls=5, trials=30)
    assert all(sorted(col) == list(range(5)) for col in chosen.T)


def test_gittins_is_greedy_on_the_last_pull_and_psi_is_increasing() -> None:
    s = np.logspace(-3, 3, 200)
    psi = _brezzi_lai_psi(s)
    assert np.all(np.isfinite(psi)) and np.all(psi > 0)
    # Increasing within each piece of the fit (it jumps at s = 0.2 and 15, as published).
    for lo, hi in ((1e-3, 0.2), (0.2, 1.0), (1.0, 5.0), (5.0, 15.0), (15.0, 1e3)):
        piece = psi[(s > lo) & (s <= hi)]
        assert np.all(np.diff(piece) > 0)
    g = GittinsApprox()
    env = metarl.make_vec("metarl/Bandit-v0", 1, num_arms=2)
    g.reset(env, total_steps=3, rng=np.random.default_rng(0))
    g.pulls[:] = [[1.0, 10.0]]
    g.wins[:] = [[0.0, 6.0]]
    g.t = 2  # one pull left: the index is the posterior mean
    np.testing.assert_allclose(g.scores(), [[1 / 3, 7 / 12]])
    g.t = 0  # many pulls left: the rarely pulled arm gets an exploration bonus
    assert g.scores()[0, 0] > 1 / 3


def test_baselines_order_on_held_out_bandits() -> None:
    tasks = metarl.make_vec("metarl/Bandit-v0", 1, num_arms=5).held_out_tasks()
    kw = {"num_arms": 5, "horizon": 1}
    res = {
        p.name: run_classic(p, "metarl/Bandit-v0", tasks, episodes_per_trial=100, trials_per_task=10, seed=0, env_kwargs=kw).sum(1).mean()
        for p in (RandomPolicy(), Greedy(), EpsilonGreedy(0.1), UCB1(0.2), ThompsonSampling(), GittinsApprox())
    }
    best_possible = np.mean([t.probs.max() for t in tasks]) * 100
    assert res["random"] == pytest.approx(np.mean([t.probs.mean() for t in tasks]) * 100, abs=2.0)
    for name in ("ucb1", "thompson", "gittins"):
        assert res["random"] + 15 < res[name] <= best_possible


def test_psrl_beats_random_on_tabular_mdps() -> None:
    tasks = metarl.make_vec("metarl/TabularMDP-v0", 1).held_out_tasks()[:20]
    run = dict(episodes_per_trial=10, trials_per_task=3, seed=0)
    rand = run_classic(RandomPolicy(), "metarl/TabularMDP-v0", tasks, **run)
    psrl = run_classic(PSRL(), "metarl/TabularMDP-v0", tasks, **run)
    assert psrl.shape == (20, 10)
    assert psrl.sum(1).mean() > rand.sum(1).mean() + 15
    # PSRL improves within the trial: later episodes beat the first.
    assert psrl[:, 5:].mean() > psrl[:, 0].mean()


def test_tuning_uses_training_tasks_and_is_reproducible() -> None:
    kw = {"num_arms": 5, "horizon": 1}
    best, scores = tune_constant(UCB1, UCB1_GRID, "metarl/Bandit-v0", episodes_per_trial=100, num_tasks=200, env_kwargs=kw)
    assert best in UCB1_GRID and set(scores) == set(UCB1_GRID)
    assert scores[best] == max(scores.values())
    # The textbook constant explores too much at n = 100 (why the RL² paper tunes it).
    assert scores[best] > scores[1.0]
    assert tune_constant(UCB1, UCB1_GRID, "metarl/Bandit-v0", episodes_per_trial=100, num_tasks=200, env_kwargs=kw) == (best, scores)


def test_evaluate_baselines_records_constants() -> None:
    tasks = metarl.make_vec("metarl/Bandit-v0", 1, num_arms=5).held_out_tasks()[:5]
    res, extra = evaluate_baselines("metarl/Bandit-v0", tasks, episodes_per_trial=10, trials_per_task=2, env_kwargs={"num_arms": 5, "horizon": 1})
    assert set(res) == {"random", "greedy", "epsilon_greedy", "ucb1", "thompson", "gittins"}
    assert all(r.shape == (5, 10) for r in res.values())
    assert extra["ucb1_c"] in UCB1_GRID and "ucb1_tuning" in extra
    mdp_tasks = metarl.make_vec("metarl/TabularMDP-v0", 1).held_out_tasks()[:2]
    res, extra = evaluate_baselines("metarl/TabularMDP-v0", mdp_tasks, episodes_per_trial=2)
    assert set(res) == {"random", "psrl"} and extra == {}


def test_same_seed_same_baseline_returns() -> None:
    tasks = metarl.make_vec("metarl/Bandit-v0", 1, num_arms=5).held_out_tasks()[:4]
    run = dict(episodes_per_trial=20, trials_per_task=3, seed=7, env_kwargs={"num_arms": 5, "horizon": 1})
    a = run_classic(ThompsonSampling(), "metarl/Bandit-v0", tasks, **run)
    b = run_classic(ThompsonSampling(), "metarl/Bandit-v0", tasks, **run)
    np.testing.assert_array_equal(a, b)


def test_bad_constants_and_runs_are_typed_errors() -> None:
    with pytest.raises(ConfigError, match="c must be finite and >= 0, got -1"):
        UCB1(-1.0)
    with pytest.raises(ConfigError, match="epsilon must lie in"):
        EpsilonGreedy(1.5)
    with pytest.raises(ConfigError, match="episodes_per_trial"):
        run_classic(RandomPolicy(), "metarl/Bandit-v0", [FIXED], episodes_per_trial=0)
    with pytest.raises(ConfigError, match="discrete action space"):
        run_classic(RandomPolicy(), "metarl/Navigation2D-v0", metarl.make_vec("metarl/Navigation2D-v0", 1).held_out_tasks()[:1], episodes_per_trial=1)
