"""Classic baselines: known regret behaviour on fixed bandits, PSRL on MDPs, tuning, errors."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import metarl
from metarl.classic import (
    BEB,
    BEB_GRID,
    PSRL,
    UCB1,
    UCB1_GRID,
    UCRL2,
    UCRL2_GRID,
    EpsilonGreedy,
    GittinsApprox,
    Greedy,
    MDPEpsilonGreedy,
    MDPGreedy,
    RandomPolicy,
    ThompsonSampling,
    _brezzi_lai_psi,
    evaluate_baselines,
    extended_backup,
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
    assert set(res) == {"random", "psrl", "ucrl2", "beb", "epsilon_greedy", "greedy"}
    assert all(r.shape == (2, 2) for r in res.values())
    assert extra["ucrl2_c"] in UCRL2_GRID and extra["beb_beta"] in BEB_GRID
    assert set(extra["beb_tuning"]) == {str(b) for b in BEB_GRID}
    # The tuned constant is the best on the training tasks it was tuned on.
    assert extra["beb_tuning"][str(extra["beb_beta"])] == max(extra["beb_tuning"].values())


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


# --- tabular-MDP baselines: hand computations on tiny MDPs -----------------------------------
def _tiny_mdp_policy(policy, num: int = 2, seed: int = 0):
    """``policy`` reset on a 3-state, 2-action, H=2 MDP batch (no steps taken)."""
    env = metarl.make_vec("metarl/TabularMDP-v0", num, num_states=3, num_actions=2, max_episode_steps=2,
                          autoreset_mode=AutoresetMode.DISABLED)
    env.reset(seed=seed, options={"tasks": env.sample_tasks(num, seed=seed)})
    policy.reset(env, 10, np.random.default_rng(seed))
    return policy


def _one_hot(states, n=3) -> np.ndarray:
    return np.eye(n)[np.asarray(states)]


def test_extended_backup_moves_mass_to_the_best_state() -> None:
    p = np.array([[[[0.5, 0.5, 0.0]]]])
    V = np.array([[0.0, 1.0, 2.0]])
    # width 0.4: +0.2 on state 2 (best), -0.2 from state 0 (worst): 0.3*0 + 0.5*1 + 0.2*2.
    assert extended_backup(p, np.array([[[0.4]]]), V)[0, 0, 0] == pytest.approx(0.9)
    # width 1.2: +0.6 capped at the mass the others hold; state 0 gives 0.5, state 1 gives 0.1.
    assert extended_backup(p, np.array([[[1.2]]]), V)[0, 0, 0] == pytest.approx(0.4 * 1.0 + 0.6 * 2.0)
    # width >= 2: the whole simplex, all mass on the best state; width 0: the plain expectation.
    assert extended_backup(p, np.array([[[2.0]]]), V)[0, 0, 0] == pytest.approx(2.0)
    assert extended_backup(p, np.array([[[0.0]]]), V)[0, 0, 0] == pytest.approx(0.5)
    # Unsorted values: same answer as the sorted case after permuting the states.
    perm = [2, 0, 1]
    got = extended_backup(p[..., perm], np.array([[[0.4]]]), V[:, perm])[0, 0, 0]
    assert got == pytest.approx(0.9)


def test_ucrl2_widths_and_optimistic_plan_by_hand() -> None:
    pol = _tiny_mdp_policy(UCRL2(c=0.5, delta=0.1), num=1)
    s0, s1 = _one_hot([0]), _one_hot([1])
    for _ in range(4):  # (s0, a1) -> s1 with reward 2, four times
        pol.update(s0, np.array([1]), np.array([2.0]), s1, np.ones(1, bool))
    w_r, w_p = pol.widths()
    t, S, A = 4, 3, 2
    assert w_r[0, 0, 1] == pytest.approx(0.5 * np.sqrt(3.5 * np.log(2 * S * A * t / 0.1) / 4))
    assert w_p[0, 0, 1] == pytest.approx(0.5 * np.sqrt(14 * S * np.log(2 * A * t / 0.1) / 4))
    assert w_r[0, 2, 0] == pytest.approx(0.5 * np.sqrt(3.5 * np.log(2 * S * A * t / 0.1)))  # unvisited: n⁺ = 1
    Q = pol.plan()
    # Last step (h = H-1 = 1): Q = r̂ + reward width; visited (s0, a1) has r̂ = 2, unvisited r̂ = 0.
    assert Q[1, 0, 0, 1] == pytest.approx(2.0 + w_r[0, 0, 1])
    assert Q[1, 0, 0, 0] == pytest.approx(w_r[0, 0, 0])
    # First step: r̃ + optimistic backup of the last step's values from p̂ = (0, 1, 0) within width w_p.
    V1 = Q[1, 0].max(axis=-1)
    expect = extended_backup(np.array([[[[0.0, 1.0, 0.0]]]]), w_p[:, :1, 1:2], V1[None])[0, 0, 0]
    assert Q[0, 0, 0, 1] == pytest.approx(2.0 + w_r[0, 0, 1] + expect)


def test_beb_bonus_and_greedy_posterior_mean_by_hand() -> None:
    pol = _tiny_mdp_policy(BEB(beta=3.0), num=1)
    s0, s2 = _one_hot([0]), _one_hot([2])
    pol.update(s0, np.array([0]), np.array([0.5]), s2, np.ones(1, bool))
    pol.update(s0, np.array([0]), np.array([1.5]), s2, np.ones(1, bool))
    bonus = pol.bonus()
    assert bonus[0, 0, 0] == pytest.approx(3.0 / (1 + 2)) and bonus[0, 1, 1] == pytest.approx(3.0)
    P, R = pol.posterior_mean()
    # Dirichlet(1) over 3 states after 2 moves to s2: (1, 1, 3) / 5; N(1, 1) prior, unit noise: (1 + 2) / 3.
    np.testing.assert_allclose(P[0, 0, 0], [0.2, 0.2, 0.6])
    np.testing.assert_allclose(P[0, 1, 1], [1 / 3] * 3)
    assert R[0, 0, 0] == pytest.approx(1.0) and R[0, 1, 0] == pytest.approx(1.0)
    Q = pol.plan()
    assert Q[1, 0, 0, 0] == pytest.approx(1.0 + 1.0)  # mean reward + β/(1+2)
    assert Q[1, 0, 1, 1] == pytest.approx(1.0 + 3.0)
    V1 = Q[1, 0].max(axis=-1)
    assert Q[0, 0, 0, 0] == pytest.approx(2.0 + P[0, 0, 0] @ V1)
    # Greedy is BEB with β = 0.
    g = _tiny_mdp_policy(MDPGreedy(), num=1)
    g.counts, g.reward_sum, g.visits = pol.counts, pol.reward_sum, pol.visits
    beb0 = _tiny_mdp_policy(BEB(beta=0.0), num=1)
    beb0.counts, beb0.reward_sum, beb0.visits = pol.counts, pol.reward_sum, pol.visits
    np.testing.assert_allclose(g.plan(), beb0.plan())


@pytest.mark.parametrize("policy", [lambda: UCRL2(0.1), lambda: BEB(1.0), lambda: MDPEpsilonGreedy(0.1), MDPGreedy])
def test_mdp_baselines_are_deterministic_under_a_seed(policy) -> None:
    tasks = metarl.make_vec("metarl/TabularMDP-v0", 1).held_out_tasks()[:3]
    run = dict(episodes_per_trial=3, trials_per_task=2, seed=5)
    a = run_classic(policy(), "metarl/TabularMDP-v0", tasks, **run)
    b = run_classic(policy(), "metarl/TabularMDP-v0", tasks, **run)
    np.testing.assert_array_equal(a, b)
    c = run_classic(policy(), "metarl/TabularMDP-v0", tasks, **{**run, "seed": 6})
    assert not np.array_equal(a, c)


def test_ucrl2_beb_psrl_beat_random_beyond_noise() -> None:
    from metarl.evaluation import mean_ci95

    tasks = metarl.make_vec("metarl/TabularMDP-v0", 1).held_out_tasks()[:20]
    run = dict(episodes_per_trial=10, trials_per_task=4, seed=0)
    rand = run_classic(RandomPolicy(), "metarl/TabularMDP-v0", tasks, **run).sum(1)
    for pol in (UCRL2(0.1), BEB(1.0), PSRL()):
        gain, ci = mean_ci95(run_classic(pol, "metarl/TabularMDP-v0", tasks, **run).sum(1) - rand)
        assert gain - ci > 10.0, (pol.name, gain, ci)  # per-task paired difference, 95% CI clear of +10


def test_bad_mdp_constants_are_typed_errors() -> None:
    with pytest.raises(ConfigError, match="UCRL2 width scale c must be finite and >= 0, got -0.5"):
        UCRL2(-0.5)
    with pytest.raises(ConfigError, match="delta must lie in"):
        UCRL2(1.0, delta=1.0)
    with pytest.raises(ConfigError, match="BEB bonus beta must be finite and >= 0, got nan"):
        BEB(float("nan"))
    with pytest.raises(ConfigError, match="epsilon must lie in"):
        MDPEpsilonGreedy(-0.1)
