"""RL² learns to explore: on k=5, n=10 bandits it beats random on held-out tasks (fixed seed)."""

from __future__ import annotations

import metarl
from metarl.agents.rl2 import RL2, RL2Config


def test_rl2_beats_random_on_held_out_bandits() -> None:
    # The default setting of `metarl train rl2`: k = 5 arms, trials of n = 10 one-pull episodes.
    agent = RL2("metarl/Bandit-v0", RL2Config(eval_trials_per_task=20), seed=0)
    agent.learn(90, progress=False)
    tasks = metarl.make_vec("metarl/Bandit-v0", 1, num_arms=5).held_out_tasks()  # 40 tasks, never trained on
    res = agent.evaluate(tasks, seed=123)
    rl2, random = float(res.trial_returns.mean()), float(res.baselines["random"].mean())
    # 800 trials each: the standard error of either mean is ~0.05, the margin asked is 20x that.
    assert rl2 > random + 1.0, f"RL2 {rl2:.2f} vs random {random:.2f} (UCB1 {res.baselines['ucb1'].mean():.2f})"
    # It adapts within the trial: later pulls pay more than the first (the first is a blind guess).
    first, last = res.returns[:, 0].mean(), res.returns[:, 5:].mean()
    assert last > first + 0.1, f"per-pull returns {res.returns.mean(0).round(3).tolist()}"
