"""MAML learns to adapt: on Navigation2D held-out tasks one gradient step helps, by a wide margin.

Fixed seed, small meta-batch (10 tasks x 10 episodes, 2x32 policy), 20 meta-iterations: about
15 s on an idle 2-core machine (budget: 90 s under load).
"""

from __future__ import annotations

import numpy as np

from metarl.agents import MAML, MAMLConfig

CONFIG = MAMLConfig(meta_batch_size=10, episodes_per_task=10, hidden_sizes=(32, 32), cg_subsample=2)


def test_one_gradient_step_improves_held_out_navigation_after_meta_training() -> None:
    agent = MAML("metarl/Navigation2D-v0", CONFIG, seed=0)
    tasks = agent.held_out_tasks()  # 40 fixed tasks, never drawn for training
    before = agent.evaluate(tasks, seed=1000, num_steps=1).returns
    agent.learn(20, progress=False)
    after = agent.evaluate(tasks, seed=1000, num_steps=1).returns

    gain = after[:, 1] - after[:, 0]
    se = gain.std(ddof=1) / np.sqrt(len(gain))
    # Adaptation helps on held-out tasks: mean gain of at least 10 (return units of -distance
    # summed over 100 steps) and at least 5 standard errors, so noise cannot produce it.
    assert gain.mean() > 10.0, (gain.mean(), se)
    assert gain.mean() > 5 * se, (gain.mean(), se)
    assert (gain > 0).mean() > 0.75, gain
    # Meta-training made the adapted policy far better than adapting the untrained one.
    assert after[:, 1].mean() > before[:, 1].mean() + 30.0, (after.mean(0), before.mean(0))
