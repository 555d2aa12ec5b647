"""MAML and RL² under Meta-World's own ``metalearning_evaluation`` agree with ``agent.evaluate``.

The agents are set to a fixed action direction with (numerically) no noise, so every episode of a
task is the same and whether it succeeds is a property of the task: some reach goals lie on the
hand's path, others do not. Both protocols must then report exactly the same success per task,
which checks the task mapping, the episode bookkeeping and the success definition end to end.
Skips without Meta-World unless ``METARL_REQUIRE_METAWORLD=1`` (see tests/envs/test_metaworld.py).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

HAVE_MW = importlib.util.find_spec("metaworld") is not None
REQUIRE_MW = os.environ.get("METARL_REQUIRE_METAWORLD") == "1"
pytestmark = pytest.mark.skipif(not HAVE_MW and not REQUIRE_MW, reason="metaworld not installed (extra [metaworld])")

ML1 = "metarl/MetaWorld-ML1-v0"
H = 150  # short episodes keep the test small; the tasks are ML1 reach's held-out goals
DIRECTION = [0.0, 1.0, -0.1, 0.0]  # reaches held-out goals 1, 4 and 6 of the first 8, misses the rest


def _tasks(n: int = 8) -> list:
    import gymnasium as gym

    return gym.make(ML1).unwrapped.held_out_tasks()[:n]


def _fixed_maml(inner_lr: float):
    from metarl.agents.maml import MAML

    cfg = {"meta_batch_size": 2, "episodes_per_task": 2, "hidden_sizes": (8,), "init_std": 1e-6,
           "inner_lr": inner_lr, "eval_steps": 1, "iterations": 1}
    maml = MAML(ML1, cfg, seed=0, env_kwargs={"max_episode_steps": H})
    with torch.no_grad():
        maml.params["net.2.weight"].zero_()
        maml.params["net.2.bias"].copy_(torch.tensor(DIRECTION))
    return maml


def test_maml_success_agrees_with_metarl_evaluate() -> None:
    from metarl.metaworld_protocol import MAMLProtocolAgent, metalearning_evaluation

    tasks = _tasks()
    maml = _fixed_maml(inner_lr=1e-12)  # adaptation runs through every line but moves nothing
    ours = maml.evaluate(tasks, seed=0, num_steps=1)
    assert ours.success is not None and ours.success.shape == (8, 2)
    per_task = ours.success[:, 1]
    assert 0 < per_task.mean() < 1  # informative: some tasks succeed, some do not
    mw_rate, _, per_class = metalearning_evaluation(
        MAMLProtocolAgent(maml), tasks, adaptation_steps=1, adaptation_episodes=2, evaluation_episodes=2
    )
    assert mw_rate == pytest.approx(per_task.mean(), abs=1e-12)
    assert set(per_class) == {"reach-v3"}


def test_maml_protocol_adapts_with_mamls_inner_step() -> None:
    """With a real step size, ``adapt()`` changes the per-task parameters, one inner step per call."""
    from metarl.metaworld_protocol import MAMLProtocolAgent, metaworld_eval_envs

    maml = _fixed_maml(inner_lr=0.1)
    with torch.no_grad():
        maml.params["log_std"].fill_(np.log(0.3))
    agent = MAMLProtocolAgent(maml, seed=1)
    envs = metaworld_eval_envs(_tasks(2)[:1], max_episode_steps=H)
    envs.call("sample_tasks")
    obs, _ = envs.reset()
    from metaworld.evaluation import Timestep

    for _ in range(2 * H):
        a, aux = agent.adapt_action(obs)
        nxt, r, te, tr, _ = envs.step(a)
        agent.step(Timestep(obs, a, r, te, tr, aux))
        obs = nxt
    before = {k: v.clone() for k, v in agent._params.items()}
    agent.adapt()
    changed = [k for k in before if not torch.equal(before[k], agent._params[k])]
    assert changed and all(torch.isfinite(v).all() for v in agent._params.values())
    agent.init()
    assert agent._params is None  # back to the meta-learned parameters


def test_rl2_success_agrees_with_metarl_evaluate() -> None:
    from metarl.agents.rl2 import RL2, RL2Config
    from metarl.metaworld_protocol import RL2ProtocolAgent, metalearning_evaluation

    cfg = RL2Config(episodes_per_trial=3, num_trials=2, num_minibatches=1, hidden_size=8, eval_trials_per_task=1, eval_baselines=False)
    rl2 = RL2(ML1, cfg, seed=0, env_kwargs={"max_episode_steps": H})
    with torch.no_grad():
        rl2.net.policy_head.weight.zero_()
        rl2.net.policy_head.bias.copy_(torch.tensor(DIRECTION))
        rl2.net.log_std.fill_(-30.0)
    tasks = _tasks()
    ours = rl2.evaluate(tasks, seed=0)
    assert ours.success is not None and ours.success.shape == (8, 3)
    last = ours.success[:, -1]
    assert 0 < last.mean() < 1
    mw_rate, _, _ = metalearning_evaluation(
        RL2ProtocolAgent(rl2), tasks, adaptation_steps=1, adaptation_episodes=2, evaluation_episodes=1
    )
    assert mw_rate == pytest.approx(last.mean(), abs=1e-12)


def test_protocol_rejects_unbalanced_classes() -> None:
    import gymnasium as gym

    from metarl.errors import ConfigError
    from metarl.metaworld_protocol import metaworld_eval_envs

    held = gym.make("metarl/MetaWorld-ML10-v0").unwrapped.held_out_tasks()
    with pytest.raises(ConfigError, match="same number of tasks"):
        metaworld_eval_envs(held[:7])
