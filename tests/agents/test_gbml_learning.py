"""ProMP, E-MAML and Reptile learn to adapt: on Navigation2D held-out tasks, after a short
meta-training (fixed seed; 10 tasks x 10 episodes, 2x32 policy, 10-15 meta-iterations), the
adapted policy beats the pre-adaptation one by a margin noise cannot produce, and meta-training
made the adapted policy far better than adapting the untrained one."""

from __future__ import annotations

import numpy as np
import pytest

from metarl.agents import EMAML, EMAMLConfig, ProMP, ProMPConfig, Reptile, ReptileConfig

SMALL = dict(meta_batch_size=10, episodes_per_task=10, hidden_sizes=(32, 32))


def _make(name: str):
    """The agent, its meta-iterations and the gradient steps of its held-out evaluation (Reptile:
    its k = 3 steps). At this seed the mean gain is about 8 standard errors or more (measured)."""
    if name == "promp":
        return ProMP("metarl/Navigation2D-v0", ProMPConfig(**SMALL), seed=0), 12, 1
    if name == "emaml":
        return EMAML("metarl/Navigation2D-v0", EMAMLConfig(**SMALL, cg_subsample=2), seed=0), 10, 1
    return Reptile("metarl/Navigation2D-v0", ReptileConfig(**SMALL), seed=0), 15, 3


@pytest.mark.parametrize("name", ["promp", "emaml", "reptile"])
def test_adaptation_improves_held_out_navigation_after_meta_training(name: str) -> None:
    agent, iterations, steps = _make(name)
    tasks = agent.held_out_tasks()  # 40 fixed tasks, never drawn for training
    before = agent.evaluate(tasks, seed=1000, num_steps=steps).returns
    agent.learn(iterations, progress=False)
    after = agent.evaluate(tasks, seed=1000, num_steps=steps).returns

    gain = after[:, -1] - after[:, 0]
    se = gain.std(ddof=1) / np.sqrt(len(gain))
    # Post-adaptation above pre-adaptation on held-out tasks: by at least 2 return units (-distance
    # summed over 100 steps) and 5 standard errors, on most tasks.
    assert gain.mean() > 2.0 and gain.mean() > 5 * se, (gain.mean(), se)
    assert (gain > 0).mean() > 0.75, gain
    # Meta-training made the adapted policy far better than adapting the untrained one.
    assert after[:, -1].mean() > before[:, -1].mean() + 30.0, (after.mean(0), before.mean(0))
