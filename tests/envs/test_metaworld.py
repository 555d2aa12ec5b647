"""Meta-World ML1/ML10/ML45 families: the split, the task protocol, batching, success, no re-randomising.

Tests that need Meta-World skip where it is not installed (the main venv), unless
``METARL_REQUIRE_METAWORLD=1`` (set by ``.ci/run``'s Meta-World venv), where a missing Meta-World
fails them instead, so a skip cannot hide a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from importlib import resources

import gymnasium as gym
import numpy as np
import pytest
import torch

import metarl
from metarl.envs.metaworld import (
    ALL_TASK_NAMES,
    GOALS_PER_CLASS,
    ML10_TEST,
    ML10_TRAIN,
    ML45_TEST,
    ML45_TRAIN,
    MetaWorldTask,
    ml1_held_out,
)
from metarl.errors import ConfigError, InvalidTaskError
from metarl.sampling import collect

HAVE_MW = importlib.util.find_spec("metaworld") is not None
REQUIRE_MW = os.environ.get("METARL_REQUIRE_METAWORLD") == "1"
needs_mw = pytest.mark.skipif(not HAVE_MW and not REQUIRE_MW, reason="metaworld not installed (extra [metaworld])")

ML1 = "metarl/MetaWorld-ML1-v0"
ML10 = "metarl/MetaWorld-ML10-v0"
ML45 = "metarl/MetaWorld-ML45-v0"


def test_require_flag_means_metaworld_is_importable() -> None:
    """In the CI's Meta-World venv a missing/broken Meta-World is a failure, not a skip."""
    if not REQUIRE_MW:
        pytest.skip("METARL_REQUIRE_METAWORLD is not set")
    import metaworld  # noqa: F401
    import mujoco

    assert tuple(int(p) for p in mujoco.__version__.split(".")[:2]) < (3, 17)


# --- no Meta-World needed: tasks, split constants, shipped files --------------------------------
def test_published_test_classes() -> None:
    assert set(ML10_TEST) == {"drawer-open-v3", "door-close-v3", "shelf-place-v3", "sweep-into-v3", "lever-pull-v3"}
    assert set(ML45_TEST) == {"bin-picking-v3", "box-close-v3", "hand-insert-v3", "door-lock-v3", "door-unlock-v3"}
    assert len(ML10_TRAIN) == 10 and not set(ML10_TRAIN) & set(ML10_TEST)
    assert len(ML45_TRAIN) == 45 and not set(ML45_TRAIN) & set(ML45_TEST)
    assert len(set(ALL_TASK_NAMES)) == 50 and set(ML45_TRAIN) | set(ML45_TEST) == set(ALL_TASK_NAMES)


def test_task_json_roundtrip_and_validation() -> None:
    t = MetaWorldTask(env_name="push-v3", rand_vec=[0.0, 0.6, 0.02, 0.1, 0.8, 0.01])
    again = metarl.tasks.task_from_json(t.to_json())
    assert again == t and isinstance(again, MetaWorldTask)
    assert json.loads(t.to_json())["env_name"] == "push-v3"
    with pytest.raises(InvalidTaskError, match="env_name"):
        MetaWorldTask(env_name="push-v2", rand_vec=[0.0])
    with pytest.raises(InvalidTaskError, match="rand_vec"):
        MetaWorldTask(env_name="push-v3", rand_vec=[np.nan, 0.0])
    with pytest.raises(InvalidTaskError, match="rand_vec"):
        MetaWorldTask(env_name="push-v3", rand_vec=[])


@pytest.mark.parametrize("name", ALL_TASK_NAMES)
def test_shipped_ml1_held_out_file(name: str) -> None:
    path = resources.files("metarl.envs").joinpath("held_out", f"MetaWorld-ML1-{name}.json")
    data = json.loads(path.read_text())
    assert data["key"] == f"MetaWorld-ML1-{name}" and data["version"] == 0
    tasks = ml1_held_out(name)
    assert len(tasks) == GOALS_PER_CLASS and all(t.env_name == name for t in tasks)
    assert len({t.rand_vec.tobytes() for t in tasks}) == GOALS_PER_CLASS  # 40 distinct goals


@pytest.mark.skipif(HAVE_MW or REQUIRE_MW, reason="checks the message shown where Meta-World is absent")
def test_make_without_metaworld_says_how_to_install() -> None:
    with pytest.raises(ConfigError, match=r"\[metaworld\]"):
        gym.make(ML1)


# --- with Meta-World ----------------------------------------------------------------------------
@needs_mw
def test_constants_match_metaworld() -> None:
    from metaworld import env_dict

    assert set(ALL_TASK_NAMES) == set(env_dict.ALL_V3_ENVIRONMENTS)
    assert tuple(env_dict.ML10_V3["train"]) == ML10_TRAIN and tuple(env_dict.ML10_V3["test"]) == ML10_TEST
    assert set(env_dict.ML45_V3["train"]) == set(ML45_TRAIN) and set(env_dict.ML45_V3["test"]) == set(ML45_TEST)


@needs_mw
@pytest.mark.parametrize("name", ["reach-v3", "pick-place-v3", "shelf-place-v3"])
def test_shipped_held_out_matches_its_recipe(name: str) -> None:
    from metarl.envs.metaworld import generate_ml1_held_out

    fresh = generate_ml1_held_out(name)
    shipped = ml1_held_out(name)
    np.testing.assert_allclose([t.rand_vec for t in fresh], [t.rand_vec for t in shipped], rtol=0, atol=1e-12)


@needs_mw
def test_ml1_train_and_test_goals_are_disjoint() -> None:
    env = gym.make(ML1, task_name="push-v3")
    held = env.unwrapped.held_out_tasks()
    assert len(held) == 40 and {t.env_name for t in held} == {"push-v3"}
    train = env.unwrapped.sample_tasks(60, seed=0)
    held_vecs = {t.rand_vec.tobytes() for t in held}
    assert not held_vecs & {t.rand_vec.tobytes() for t in train}
    dist = env.unwrapped.distribution
    assert all(dist.contains(t) for t in train)
    assert not any(dist.contains(t) for t in held)
    # Meta-World's own goal draws at seeds 0..: none coincide with a held-out goal either.
    assert len({t.rand_vec.tobytes() for t in train}) == 60


@needs_mw
def test_ml1_sampler_rejects_a_held_out_goal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if the class draws a held-out goal, the train split skips it (correct by construction)."""
    import metarl.envs.metaworld as mwmod

    held = ml1_held_out("reach-v3")
    real = mwmod.draw_rand_vec
    calls = iter([held[3].rand_vec.copy(), held[7].rand_vec.copy()])
    monkeypatch.setattr(mwmod, "draw_rand_vec", lambda name, seed: _next_or_real(calls, real, name, seed))
    env = gym.make(ML1, task_name="reach-v3")
    tasks = env.unwrapped.sample_tasks(2, seed=0)
    assert not {t.rand_vec.tobytes() for t in tasks} & {t.rand_vec.tobytes() for t in held}


def _next_or_real(calls, real, name, seed):
    try:
        return next(calls)
    except StopIteration:
        return real(name, seed)


@needs_mw
@pytest.mark.parametrize(("env_id", "train", "test"), [(ML10, ML10_TRAIN, ML10_TEST), (ML45, ML45_TRAIN, ML45_TEST)])
def test_ml10_ml45_split(env_id: str, train: tuple, test: tuple) -> None:
    env = gym.make(env_id)
    held = env.unwrapped.held_out_tasks()
    assert len(held) == 5 * GOALS_PER_CLASS
    assert {t.env_name for t in held} == set(test)
    assert [t.env_name for t in held[:5]] == list(test)  # interleaved: the first 5 cover every class
    for name in test:  # the same 40 goals as ML1's held-out file of that class
        assert [t for t in held if t.env_name == name] == ml1_held_out(name)
    tasks = env.unwrapped.sample_tasks(len(train), seed=0)
    assert sorted(t.env_name for t in tasks) == sorted(train)  # balanced: each class once


@needs_mw
def test_sample_tasks_is_seeded_and_uses_no_global_rng() -> None:
    env = gym.make(ML10)
    state = np.random.get_state()  # noqa: NPY002  (checks the legacy global RNG is untouched)
    a = env.unwrapped.sample_tasks(4, seed=3)
    b = env.unwrapped.sample_tasks(4, seed=3)
    assert a == b
    assert np.array_equal(np.random.get_state()[1], state[1])  # noqa: NPY002
    c = env.unwrapped.sample_tasks(4, seed=4)
    assert a != c


@needs_mw
def test_reset_never_rerandomises_the_task() -> None:
    """Meta-World PR #143: a task must keep its goal and object position across resets."""
    env = gym.make(ML1, task_name="pick-place-v3")
    task = env.unwrapped.sample_tasks(1, seed=5)[0]
    obs0, _ = env.reset(seed=0, options={"task": task})
    core = env.unwrapped._core._envs[0]
    goal0 = np.array(core._target_pos)
    rng = np.random.default_rng(0)
    for k in range(4):
        for _ in range(5):
            env.step(rng.uniform(-1, 1, 4))
        np.random.seed(k)  # noqa: NPY002  (the global RNG state must not matter either)
        obs, _ = env.reset(seed=100 + k)
        np.testing.assert_array_equal(obs, obs0)
        np.testing.assert_array_equal(core._target_pos, goal0)
        np.testing.assert_array_equal(core._last_rand_vec, task.rand_vec)
    assert env.unwrapped.get_task() == task


@needs_mw
def test_check_env_and_task_protocol() -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make(ML10)
    task = env.unwrapped.held_out_tasks()[2]
    env.unwrapped.set_task(task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded observation box warns; the checks must pass
        check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(options={"task": task.to_dict()})
    assert obs.shape == (39,) and env.unwrapped.get_task() == task
    assert np.all(obs[-3:] == 0)  # goal hidden (Meta-World's ML setting)
    _, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
    assert isinstance(info["success"], bool) and np.isfinite(reward) and not terminated and not truncated


@needs_mw
def test_batched_equals_single_envs() -> None:
    """make_vec steps each sub-env exactly like a single env with the same task and actions."""
    venv = metarl.make_vec(ML10, 3)
    tasks = venv.unwrapped.sample_tasks(3, seed=1) + []
    tasks[2] = venv.unwrapped.held_out_tasks()[0]  # mixed classes, one from the test split
    singles = [gym.make(ML10) for _ in range(3)]
    obs, _ = venv.reset(seed=0, options={"tasks": tasks})
    for i, env in enumerate(singles):
        o, _ = env.reset(seed=i, options={"task": tasks[i]})
        np.testing.assert_array_equal(o, obs[i])
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.uniform(-1, 1, (3, 4)).astype(np.float32)
        obs, rew, term, trunc, info = venv.step(a)
        for i, env in enumerate(singles):
            o, r, te, tr, inf = env.step(a[i])
            np.testing.assert_array_equal(o, obs[i])
            assert r == rew[i] and te == term[i] and tr == trunc[i] and inf["success"] == info["success"][i]


def _reach_controller(venv) -> callable:
    """A P-controller to the goal (privileged: reads the sub-env's goal), to produce successes."""

    def act(obs: torch.Tensor, t: int):
        goals = np.stack([e._target_pos for e in venv.unwrapped._envs])
        a = np.clip(10.0 * (goals - obs[:, :3].numpy()), -1, 1)
        return torch.as_tensor(np.concatenate([a, np.zeros((len(a), 1))], 1), dtype=torch.float32), {}

    return act


@needs_mw
def test_success_reaches_the_rollout_and_autoreset_clears_it() -> None:
    venv = metarl.make_vec(ML1, 2, max_episode_steps=60)
    tasks = venv.unwrapped.held_out_tasks()[:2]
    ro = collect(venv, _reach_controller(venv), horizon=60, tasks=tasks, seed=0)
    assert ro.success is not None and ro.success.shape == (60, 2)
    assert ro.episode_success.tolist() == [1.0, 1.0]
    idle = collect(venv, lambda o, t: (torch.zeros(2, 4), {}), horizon=60, tasks=tasks, seed=0)
    assert idle.episode_success.tolist() == [0.0, 0.0]
    # NEXT_STEP autoreset: the step after truncation resets, reports no success and reward 0.
    venv.reset(seed=0, options={"tasks": tasks})
    for _ in range(60):
        venv.step(np.zeros((2, 4), np.float32))
    _, rew, _, _, info = venv.step(np.zeros((2, 4), np.float32))
    assert rew.tolist() == [0.0, 0.0] and info["success"].tolist() == [False, False]


@needs_mw
def test_set_task_rejects_tasks_outside_the_benchmark() -> None:
    env = gym.make(ML10)
    with pytest.raises(InvalidTaskError, match="not a class of this benchmark"):
        env.unwrapped.set_task(MetaWorldTask(env_name="bin-picking-v3", rand_vec=ml1_held_out("bin-picking-v3")[0].rand_vec))
    with pytest.raises(InvalidTaskError, match="needs shape"):
        env.reset(options={"task": MetaWorldTask(env_name="reach-v3", rand_vec=[0.0, 0.6])})


@needs_mw
def test_unknown_task_name_is_a_typed_error() -> None:
    with pytest.raises(InvalidTaskError, match="did you mean 'reach-v3'"):
        gym.make(ML1, task_name="reach-v2")


# --- success plumbing for any env reporting info["success"] (no Meta-World needed) ----------------
from metarl.envs.navigation import Navigation2DEnv, Navigation2DVecEnv  # noqa: E402

SUCCESS_ID = "metarl/TestNavSuccess-v0"


class _NavSuccessVecEnv(Navigation2DVecEnv):
    """Navigation2D that reports success within 0.15 of the goal (a stand-in for Meta-World)."""

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        info["success"] = np.linalg.norm(self._pos - self._goals, axis=1) < 0.15
        return obs, reward, terminated, truncated, info


class _NavSuccessEnv(Navigation2DEnv):
    batched_cls = _NavSuccessVecEnv


@pytest.fixture(scope="module")
def success_env_id() -> str:
    if SUCCESS_ID not in gym.registry:  # gymnasium only: not listed by `metarl envs`
        gym.register(SUCCESS_ID, entry_point=_NavSuccessEnv, vector_entry_point=_NavSuccessVecEnv,
                     kwargs={"max_episode_steps": 20}, disable_env_checker=True)
    return SUCCESS_ID


def test_rollout_success_counts_only_the_first_episode(success_env_id: str) -> None:
    venv = metarl.make_vec(success_env_id, 3)
    tasks = [metarl.envs.Navigation2DTask(goal=g) for g in ([0.05, 0.0], [0.45, 0.45], [0.3, 0.0])]

    def toward_x(obs, t):  # moves +x at 0.1/step; task 1's goal is never within 0.15
        return torch.tensor([[0.1, 0.0]] * 3), {}

    ro = collect(venv, toward_x, horizon=20, tasks=tasks, seed=0)
    assert ro.success is not None and ro.success.dtype == torch.bool and ro.success.shape == (20, 3)
    assert ro.episode_success.tolist() == [1.0, 0.0, 1.0]
    # A success after the first episode ended (valid == 0) does not count.
    masked = ro._replace(valid=torch.zeros_like(ro.valid).index_fill_(0, torch.tensor([0]), 1.0))
    assert masked.episode_success.tolist() == [1.0, 0.0, 0.0]  # task 0 succeeds at step 0, task 2 later
    plain = collect(metarl.make_vec("metarl/Navigation2D-v0", 3), toward_x, horizon=5, seed=0)
    assert plain.success is None and plain.episode_success is None


def test_eval_json_and_plot_carry_success_beside_the_return(tmp_path) -> None:
    from metarl.agent import EvalResult
    from metarl.evaluation import eval_summary, plot_adaptation

    res = EvalResult(x="gradient_steps", returns=np.array([[-3.0, -1.0], [-4.0, -2.0], [-5.0, -1.5]]),
                     success=np.array([[0.0, 1.0], [0.0, 0.5], [0.5, 1.0]]))
    summary = eval_summary(res, env_id=ML1, agent="maml", seed=0)
    assert [p["success_rate"] for p in summary["curve"]] == pytest.approx([1 / 6, 2.5 / 3])
    assert summary["success_rate"]["mean"] == pytest.approx(2.5 / 3) and summary["success_rate"]["ci95"] > 0
    assert summary["per_task_success"] == res.success.tolist()
    json.dumps(summary)
    assert plot_adaptation(summary, tmp_path / "adaptation.png").stat().st_size > 0
    no_success = eval_summary(EvalResult(x="gradient_steps", returns=res.returns), env_id=ML1, agent="maml", seed=0)
    assert "success_rate" not in no_success and "success_rate" not in no_success["curve"][0]
    with pytest.raises(ConfigError, match="success of shape"):
        eval_summary(EvalResult(x="gradient_steps", returns=res.returns, success=res.success[:, :1]), env_id=ML1, agent="maml", seed=0)


def test_maml_reports_success_rate(success_env_id: str) -> None:
    from metarl.agents.maml import MAML

    maml = MAML(success_env_id, {"meta_batch_size": 4, "episodes_per_task": 4, "hidden_sizes": (8,), "eval_steps": 1}, seed=0)
    m = maml.train_iteration()
    assert 0.0 <= m["rollout/success_rate"] <= 1.0 and 0.0 <= m["rollout/pre_success_rate"] <= 1.0
    res = maml.evaluate(maml.held_out_tasks()[:3], seed=0)
    assert res.success.shape == (3, 2) and ((res.success >= 0) & (res.success <= 1)).all()
    plain = MAML("metarl/Navigation2D-v0", {"meta_batch_size": 2, "episodes_per_task": 2, "hidden_sizes": (8,)}, seed=0)
    assert "rollout/success_rate" not in plain.train_iteration()


def test_rl2_reports_success_rate(success_env_id: str) -> None:
    from metarl.agents.rl2 import RL2, RL2Config

    cfg = RL2Config(episodes_per_trial=2, num_trials=4, num_minibatches=2, hidden_size=8, eval_trials_per_task=2, eval_baselines=False)
    rl2 = RL2(success_env_id, cfg, seed=0)
    m = rl2.train_iteration(0)
    assert 0.0 <= m["rollout/success_rate"] <= 1.0
    res = rl2.evaluate(rl2.trials.env.held_out_tasks()[:3], seed=0)
    assert res.success.shape == (3, 2) and set(np.unique(res.success)) <= {0.0, 0.5, 1.0}


# --- ML10 presets (published settings) ------------------------------------------------------------
@needs_mw
@pytest.mark.parametrize("name", ["maml-trpo-metaworld-ml10", "rl2-metaworld-ml10"])
def test_ml10_presets_run_one_small_iteration(name: str) -> None:
    from metarl.agent import load_agent_class
    from metarl.config import build_config, load_preset

    preset = load_preset(name)
    assert preset.env == ML10 and "garage" in preset.source and "Yu et al. 2019" in preset.source
    cls = load_agent_class(preset.agent)
    small = {"maml": {"meta_batch_size": 2, "episodes_per_task": 2, "horizon": 5, "cg_iters": 2},
             "rl2": {"num_trials": 2, "episodes_per_trial": 2, "eval_trials_per_task": 1}}[preset.agent]
    cfg = build_config(cls.config_cls, {**preset.config, **small}, source=name)
    agent = cls(preset.env, cfg, seed=0, env_kwargs={**preset.env_kwargs, "max_episode_steps": 5})
    m = agent.train_iteration(0)
    assert all(np.isfinite(v) for v in m.values() if isinstance(v, float))
    assert 0.0 <= m["rollout/success_rate"] <= 1.0


@needs_mw
def test_cli_train_and_eval_report_success(tmp_path) -> None:
    """`metarl train --env metarl/MetaWorld-ML1-v0` and `metarl eval` work unchanged; eval.json has success."""
    import yaml

    from metarl.cli import main

    preset = tmp_path / "maml-tiny-mw.yaml"
    preset.write_text(yaml.safe_dump({
        "agent": "maml", "env": ML1, "source": "test", "description": "tiny",
        "config": {"meta_batch_size": 2, "episodes_per_task": 2, "hidden_sizes": [8], "cg_iters": 2, "eval_steps": 1},
        "env_kwargs": {"task_name": "push-v3", "max_episode_steps": 10},
    }))
    out = tmp_path / "run"
    assert main(["train", "maml", "--env", ML1, "--config", str(preset), "--iterations", "1", "--out", str(out)]) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "rollout/success_rate" in metrics[-1]
    assert main(["eval", str(out), "--num-tasks", "3"]) == 0
    summary = json.loads((out / "eval.json").read_text())
    assert summary["env_id"] == ML1 and summary["num_tasks"] == 3
    assert 0.0 <= summary["success_rate"]["mean"] <= 1.0 and "success_rate" in summary["curve"][1]
    assert (out / "adaptation.png").stat().st_size > 0
