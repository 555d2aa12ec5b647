"""Held-out evaluation: eval.json schema and CIs, held-out tasks only, determinism, the plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_agents import ToyNav, toy_run

from metarl.agent import EvalResult
from metarl.envs.navigation import Navigation2DDistribution
from metarl.errors import ConfigError
from metarl.evaluation import (
    adaptation_gain,
    eval_summary,
    evaluate_run,
    evaluate_tasks,
    held_out_tasks,
    mean_ci95,
    plot_adaptation,
)
from metarl.meta_env import BatchedMetaEnv
from metarl.trainer import Trainer, load_run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def nav_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("eval") / "nav"
    Trainer(toy_run(2), run_dir).train()
    return run_dir


def test_ci95_is_the_student_t_half_width():
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    mean, ci = mean_ci95(values)
    sd = np.std(values, ddof=1)
    assert mean == 4.0
    assert ci == pytest.approx(2.7764451 * sd / np.sqrt(5), rel=1e-6)  # t_{0.975,4}
    assert mean_ci95([3.0]) == (3.0, None)
    with pytest.raises(ConfigError):
        mean_ci95([])


def test_summary_has_exactly_the_design_schema():
    res = EvalResult(
        x="episode",
        returns=np.array([[1.0, 2.0], [3.0, 6.0], [2.0, 4.0]]),
        trial_returns=np.array([3.0, 9.0, 6.0]),
        baselines={"random": np.array([1.0, 1.0, 1.0]), "ucb1": np.array([2.0, 4.0, 3.0])},
        extra={"ucb1_c": 0.2},
    )
    s = eval_summary(res, env_id="metarl/Bandit-v0", agent="rl2", seed=4)
    assert list(s)[:7] == ["env_id", "agent", "split", "num_tasks", "seed", "x", "curve"]
    assert (s["env_id"], s["agent"], s["split"], s["num_tasks"], s["seed"], s["x"]) == ("metarl/Bandit-v0", "rl2", "held_out", 3, 4, "episode")
    assert [set(p) for p in s["curve"]] == [{"x", "mean_return", "ci95"}] * 2
    assert [p["x"] for p in s["curve"]] == [0, 1] and s["curve"][1]["mean_return"] == 4.0
    assert s["curve"][1]["ci95"] == pytest.approx(mean_ci95([2.0, 6.0, 4.0])[1])
    assert s["trial_return"] == {"mean": 6.0, "ci95": pytest.approx(mean_ci95([3, 9, 6])[1])}
    assert set(s["baselines"]) == {"random", "ucb1"} and s["baselines"]["random"] == {"mean": 1.0, "ci95": 0.0}
    assert s["agent_extra"] == {"ucb1_c": 0.2}
    assert adaptation_gain(s) == 2.0
    json.dumps(s, allow_nan=False)  # strict JSON
    no_trial = eval_summary(EvalResult("gradient_steps", np.ones((2, 3))), env_id="e", agent="a", seed=0)
    assert "trial_return" not in no_trial and "baselines" not in no_trial


@pytest.mark.parametrize(
    "res, match",
    [
        (EvalResult("steps", np.ones((2, 2))), "x='steps'"),
        (EvalResult("episode", np.ones((3, 2))), r"shape \(3, 2\); expected \(2, num_points\)"),
        (EvalResult("episode", np.ones((2, 2)), trial_returns=np.ones(3)), "trial_returns of shape"),
        (EvalResult("episode", np.ones((2, 2)), baselines={"ucb1": np.ones(1)}), "baseline 'ucb1'"),
    ],
)
def test_bad_agent_results_are_typed(res, match):
    class Fake:
        def evaluate(self, tasks, *, seed):
            return res

    with pytest.raises(ConfigError, match=match):
        evaluate_tasks(Fake(), [object(), object()], seed=0)


def test_eval_uses_held_out_tasks_only(nav_run, monkeypatch):
    """Sampling the training distribution during eval raises; the agent sees exactly the held-out list."""

    def forbidden(*args, **kwargs):
        raise AssertionError("eval sampled a training task")

    monkeypatch.setattr(Navigation2DDistribution, "sample", forbidden)
    monkeypatch.setattr(BatchedMetaEnv, "sample_tasks", forbidden)
    seen = []
    real = ToyNav.evaluate

    def spy(self, tasks, *, seed, num_steps=None):
        seen.extend(tasks)
        return real(self, tasks, seed=seed, num_steps=num_steps)

    monkeypatch.setattr(ToyNav, "evaluate", spy)
    summary = evaluate_run(nav_run, num_tasks=12, seed=0, chunk_size=5, write=False)
    held_out = held_out_tasks("metarl/Navigation2D-v0", {"max_episode_steps": 10})
    assert seen == held_out[:12] and summary["num_tasks"] == 12 and summary["split"] == "held_out"


def test_same_seed_and_checkpoint_give_identical_eval_json(nav_run):
    evaluate_run(nav_run, num_tasks=6, seed=3)
    first = (nav_run / "eval.json").read_bytes()
    evaluate_run(nav_run, num_tasks=6, seed=3)
    assert (nav_run / "eval.json").read_bytes() == first
    other = evaluate_run(nav_run, num_tasks=6, seed=4, write=False)
    assert other["curve"] != json.loads(first)["curve"]
    assert (nav_run / "adaptation.png").read_bytes()[:8] == PNG
    s = json.loads(first)
    assert s["iteration"] == 2 and s["agent"] == "cli_agents:ToyNav" and len(s["curve"]) == 2


def test_chunks_concatenate(nav_run):
    agent, run, _ = load_run(nav_run)
    tasks = held_out_tasks(run.env, run.env_kwargs)[:5]
    whole = evaluate_tasks(agent, tasks, seed=7, chunk_size=3)
    parts = [agent.evaluate(tasks[:3], seed=7).returns, agent.evaluate(tasks[3:], seed=8).returns]
    np.testing.assert_array_equal(whole.returns, np.concatenate(parts))
    with pytest.raises(ConfigError, match="chunk_size"):
        evaluate_tasks(agent, tasks, seed=0, chunk_size=0)


def test_num_tasks_is_checked(nav_run):
    with pytest.raises(ConfigError, match=r"num_tasks must be in \[1, 40\].*got 41"):
        evaluate_run(nav_run, num_tasks=41, write=False)
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate_run(nav_run / "absent")


def test_trial_agent_eval_and_two_panel_plot(tmp_path):
    run_dir = tmp_path / "bandit"
    Trainer(toy_run(3, agent="cli_agents:ToyBandit"), run_dir).train()
    s = evaluate_run(run_dir, num_tasks=8, seed=0)
    assert s["x"] == "episode" and len(s["curve"]) == 3
    assert set(s["trial_return"]) == {"mean", "ci95"} and set(s["baselines"]) == {"random"}
    # The greedy toy agent beats uniformly random pulls on held-out bandits by far more than the CI.
    assert s["trial_return"]["mean"] - s["trial_return"]["ci95"] > s["baselines"]["random"]["mean"] + s["baselines"]["random"]["ci95"]
    from PIL import Image

    with Image.open(run_dir / "adaptation.png") as img:
        wide = img.size
    del s["trial_return"]
    plot_adaptation(s, tmp_path / "one.png")
    with Image.open(tmp_path / "one.png") as img:
        assert wide[0] > 1.5 * img.size[0]  # the trial panel was drawn


def _rl2_bandit_run(run_dir, *, num_arms: int, trials: int, baselines: bool):
    """A one-iteration RL² run on ``num_arms``-armed bandits (4 pulls per trial) in ``run_dir``."""
    from metarl.config import RunConfig

    cfg = {"episodes_per_trial": 4, "num_trials": 8, "hidden_size": 8, "eval_trials_per_task": trials, "eval_baselines": baselines}
    run = RunConfig(agent="rl2", env="metarl/Bandit-v0", seed=0, iterations=1, device="cpu", config=cfg,
                    env_kwargs={"num_arms": num_arms, "horizon": 1}, trainer={"log_every": 0, "eval_tasks": 0})
    Trainer(run, run_dir).train()
    return run_dir


def test_trials_per_task_overrides_the_runs_setting(tmp_path, nav_run):
    run_dir = _rl2_bandit_run(tmp_path / "rl2", num_arms=2, trials=2, baselines=True)
    default = evaluate_run(run_dir, num_tasks=3, write=False)
    more = evaluate_run(run_dir, num_tasks=3, trials_per_task=50, write=False)
    assert default["trials_per_task"] == default["agent_extra"]["trials_per_task"] == 2
    assert more["trials_per_task"] == more["agent_extra"]["trials_per_task"] == 50
    # 50 trials per task average out the pull noise: per-task means move, and the baselines ran 50 too.
    assert more["per_task_returns"] != default["per_task_returns"]
    assert more["baselines"]["random"] != default["baselines"]["random"]
    # baselines=False (reproduce.py's curve points): the agent's own scores, no classic baselines
    bare = evaluate_run(run_dir, num_tasks=3, trials_per_task=50, baselines=False, write=False)
    assert "baselines" not in bare and bare["per_task_returns"] == more["per_task_returns"]
    # the run's own setting is untouched on disk: a plain eval afterwards gives the default again
    assert evaluate_run(run_dir, num_tasks=3, write=False) == default
    with pytest.raises(ConfigError, match="trials_per_task"):
        evaluate_run(run_dir, trials_per_task=0, write=False)
    with pytest.raises(ConfigError, match=r"trials_per_task=5: agent .* runs no trials per held-out task"):
        evaluate_run(nav_run, trials_per_task=5, write=False)


def test_relabel_overrides_the_runs_setting_and_is_recorded(tmp_path, nav_run):
    run_dir = _rl2_bandit_run(tmp_path / "rl2", num_arms=5, trials=20, baselines=False)
    default = evaluate_run(run_dir, num_tasks=3, write=False)
    plain = evaluate_run(run_dir, num_tasks=3, relabel=False, write=False)
    assert default["relabeled"] is True and plain["relabeled"] is False  # relabeled is RL²'s default
    assert default["per_task_returns"] != plain["per_task_returns"]
    assert evaluate_run(run_dir, num_tasks=3, relabel=True, write=False) == default
    with pytest.raises(ConfigError, match="relabel must be a bool or None, got 'yes'"):
        evaluate_run(run_dir, relabel="yes", write=False)
    with pytest.raises(ConfigError, match=r"relabel=False: agent .* does not relabel held-out tasks"):
        evaluate_run(nav_run, relabel=False, write=False)
