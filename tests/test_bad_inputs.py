"""Bad inputs, table-driven: each is a typed error that names the culprit's value, never a traceback.

Tables: the Python API (seeds, counts, indices, task JSON, env kwargs, tasks out of bounds,
require_task), actions of every registered family (complex, object and string arrays), agent
configs (every float field of every registered agent, NaN/±inf), checkpoints, and the command line
(real ``metarl`` subprocesses for a representative subset, one on a pseudo-terminal; in-process
``main([...])`` for the rest, which runs the same code). Behaviours made correct rather than
refused (MuJoCo clipping of huge actions, tasks allowed outside their training range) are tested
at the end.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import metarl
from metarl.agent import AGENTS, load_agent_class
from metarl.checkpoint import load_checkpoint, load_latest_checkpoint, save_checkpoint
from metarl.cli import main
from metarl.config import build_config
from metarl.errors import (
    CheckpointError,
    ConfigError,
    InvalidActionError,
    InvalidTaskError,
    MetaRLError,
    TaskNotSetError,
    UnknownArgumentError,
    UnknownEnvError,
)
from metarl.registry import check_env_id, check_meta_env_id, registered_envs
from metarl.tasks import Task, task_from_json, tasks_from_json

TESTS = Path(__file__).parent
NAV, BANDIT, HC = "metarl/Navigation2D-v0", "metarl/Bandit-v0", "metarl/HalfCheetahVel-v0"


def _single(env_id=NAV, **kw):
    return gym.make(env_id, **kw)


def _vec(env_id=NAV, n=3, **kw):
    env = metarl.make_vec(env_id, num_envs=n, **kw)
    env.reset(seed=0)
    return env


def _nav_tasks(n):
    return _single().unwrapped.sample_tasks(n, seed=0)


# --- the Python API --------------------------------------------------------------------------------
API = [
    # (id, call, error type, text the message must contain)
    ("reset seed -1", lambda: _single().reset(seed=-1), ConfigError, "-1"),
    ("reset seed 2**64", lambda: _single().reset(seed=2**64), ConfigError, str(2**64)),
    ("reset seed float", lambda: _single().reset(seed=1.5), ConfigError, "1.5"),
    ("reset seed bool", lambda: _single().reset(seed=True), ConfigError, "True"),
    ("reset seed str", lambda: _single(BANDIT).reset(seed="3"), ConfigError, "'3'"),
    ("vec reset seed -1", lambda: _vec().reset(seed=-1), ConfigError, "-1"),
    ("vec reset seed overflows +i", lambda: _vec().reset(seed=2**63 - 2), ConfigError, str(2**63 - 2)),
    ("vec reset seed list", lambda: _vec().reset(seed=[0, -4, 2]), ConfigError, "-4"),
    ("mujoco reset seed -7", lambda: _single(HC).reset(seed=-7), ConfigError, "-7"),
    ("mujoco vec reset seed 2**70", lambda: _vec(HC, 2, nthread=0).reset(seed=2**70), ConfigError, str(2**70)),
    ("agent seed 2**70", lambda: load_agent_class("maml")(NAV, None, seed=2**70), ConfigError, str(2**70)),
    ("agent seed float", lambda: load_agent_class("rl2")(BANDIT, None, seed=0.5), ConfigError, "0.5"),
    ("make_vec num_envs -1", lambda: metarl.make_vec(NAV, num_envs=-1), ConfigError, "-1"),
    ("make_vec num_envs 2.5", lambda: metarl.make_vec(NAV, num_envs=2.5), ConfigError, "2.5"),
    ("make_vec num_envs 0", lambda: metarl.make_vec(BANDIT, num_envs=0), ConfigError, "got 0"),
    ("make_vec num_envs True", lambda: metarl.make_vec("metarl/TabularMDP-v0", num_envs=True), ConfigError, "True"),
    ("make_vec mujoco num_envs -3", lambda: metarl.make_vec(HC, num_envs=-3), ConfigError, "-3"),
    ("set_tasks index out of range", lambda: _vec().set_tasks(_nav_tasks(2), indices=[0, 5]), InvalidTaskError, "5"),
    ("set_tasks negative index", lambda: _vec().set_tasks(_nav_tasks(1), indices=[-1]), InvalidTaskError, "-1"),
    ("set_tasks duplicate index", lambda: _vec().set_tasks(_nav_tasks(2), indices=[1, 1]), InvalidTaskError, "[1, 1]"),
    ("set_tasks length mismatch", lambda: _vec().set_tasks(_nav_tasks(2), indices=[0, 1, 2]), InvalidTaskError, "2 tasks"),
    ("set_tasks float index", lambda: _vec().set_tasks(_nav_tasks(2), indices=[0.5, 1]), InvalidTaskError, "0.5"),
    ("set_tasks bool index", lambda: _vec().set_tasks(_nav_tasks(2), indices=[True, False]), InvalidTaskError, "True"),
    ("set_tasks str indices", lambda: _vec().set_tasks(_nav_tasks(2), indices="01"), InvalidTaskError, "'01'"),
    ("set_tasks wrong count", lambda: _vec().set_tasks(_nav_tasks(2)), InvalidTaskError, "2 tasks"),
    ("tasks_from_json invalid", lambda: tasks_from_json("[{"), InvalidTaskError, "'[{'"),
    ("tasks_from_json object", lambda: tasks_from_json('{"a": 1}'), InvalidTaskError, "dict"),
    ("tasks_from_json not text", lambda: tasks_from_json(5), InvalidTaskError, "5"),
    ("task_from_json unknown type", lambda: task_from_json('{"type": "NopeTask"}'), InvalidTaskError, "NopeTask"),
    ("task_from_json invalid", lambda: Task.from_json("{goal"), InvalidTaskError, "{goal"),
    ("task_from_json unknown field",
     lambda: task_from_json('{"type": "Navigation2DTask", "goal": [0, 0], "speed": 3}'), InvalidTaskError, "speed"),
    ("task NaN goal", lambda: task_from_json('{"type": "Navigation2DTask", "goal": [NaN, 0]}'), InvalidTaskError, "nan"),
    ("unknown env kwarg", lambda: gym.make(NAV, foo=1), UnknownArgumentError, "'foo'"),
    ("misspelt mujoco kwarg", lambda: gym.make(HC, velocity_rang=(0, 1)), UnknownArgumentError, "did you mean 'velocity_range'"),
    ("misspelt vec kwarg", lambda: metarl.make_vec(BANDIT, num_envs=2, num_arm=3), UnknownArgumentError, "did you mean 'num_arms'"),
    ("require_task single", lambda: _single(require_task=True).reset(), TaskNotSetError, "env.unwrapped.set_task(task)"),
    ("require_task mujoco single", lambda: _single(HC, require_task=True).reset(), TaskNotSetError, "env.unwrapped.set_task(task)"),
    ("require_task batched", lambda: metarl.make_vec(NAV, num_envs=2, require_task=True).reset(), TaskNotSetError, "set_tasks(tasks)"),
    ("sample_tasks -1", lambda: _single().unwrapped.sample_tasks(-1), ConfigError, "-1"),
    ("sample_tasks float", lambda: _single().unwrapped.sample_tasks(2.0), ConfigError, "2.0"),
    ("sample_tasks seed -3", lambda: _single().unwrapped.sample_tasks(2, seed=-3), ConfigError, "-3"),
    ("bandit probs > 1", lambda: _single(BANDIT).unwrapped.set_task({"type": "BanditTask", "probs": [0.5, 1.5, 0, 0, 0]}),
     InvalidTaskError, "1.5"),
    ("humanoid angle > 2pi", lambda: _single("metarl/HumanoidDir-v0").unwrapped.set_task({"type": "HeadingTask", "angle": 7.0}),
     InvalidTaskError, "7.0"),
    ("direction 0.5", lambda: _single("metarl/HalfCheetahDir-v0").unwrapped.set_task({"type": "DirectionTask", "direction": 0.5}),
     InvalidTaskError, "0.5"),
    ("plain gym env as meta-env", lambda: check_meta_env_id("CartPole-v1"), ConfigError, "'CartPole-v1' is a plain Gymnasium env"),
    ("env id not a string", lambda: check_env_id(5), UnknownEnvError, "5"),
    ("unknown env id", lambda: metarl.make("metarl/Navigation3D-v0"), UnknownEnvError, "did you mean 'metarl/Navigation2D-v0'"),
]


@pytest.mark.parametrize("call, error, needle", [pytest.param(c, e, n, id=i) for i, c, e, n in API])
def test_api(call, error, needle):
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, MetaRLError)
    assert needle in str(info.value), str(info.value)


def test_unknown_kwargs_are_also_type_errors():
    with pytest.raises(TypeError):  # what Python raises for an unexpected keyword argument
        gym.make(NAV, foo=1)


# --- actions: every family rejects complex, object and string arrays ------------------------------
def _bad_action(space: gym.Space, kind: str) -> np.ndarray:
    shape = space.shape
    if kind == "complex":
        return np.full(shape, 0.1 + 1j)
    if kind == "object":
        return np.full(shape, 1, dtype=object)
    return np.full(shape, "a")


_HAVE_MW = importlib.util.find_spec("metaworld") is not None or os.environ.get("METARL_REQUIRE_METAWORLD") == "1"
# Meta-World families need the [metaworld] extra (its own venv, where .ci/run runs these too).
ALL_IDS = [
    pytest.param(i, marks=pytest.mark.skipif(not _HAVE_MW, reason="needs the [metaworld] extra"))
    if i.startswith("metarl/MetaWorld-") else i
    for i in sorted(registered_envs())
]


@pytest.mark.parametrize("kind", ["complex", "object", "str"])
@pytest.mark.parametrize("env_id", ALL_IDS)
def test_single_env_actions(env_id, kind):
    env = gym.make(env_id)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError) as info:
        env.step(_bad_action(env.action_space, kind))
    needle = {"complex": "1j", "object": "object", "str": "'a'"}[kind]
    assert needle in str(info.value), str(info.value)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_batched_env_complex_actions(env_id):
    venv = metarl.make_vec(env_id, num_envs=2, **({"nthread": 0} if env_id in _mujoco_ids() else {}))
    venv.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"1j"):
        venv.step(_bad_action(venv.action_space, "complex"))


def _mujoco_ids():
    from metarl.envs.mujoco import MUJOCO_ENV_IDS

    return MUJOCO_ENV_IDS


# --- agent configs: every float field of every registered agent rejects NaN and ±inf ---------------
def _float_fields():
    out = []
    for name in sorted(AGENTS):
        cls = load_agent_class(name).config_cls
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] is float or float in typing.get_args(hints[f.name]):
                out.append((name, cls, f.name))
    return out


FLOAT_FIELDS = _float_fields()


def test_the_agents_have_float_fields():
    names = {(a, f) for a, _, f in FLOAT_FIELDS}
    assert {("maml", "cg_damping"), ("maml", "baseline_reg"), ("rl2", "learning_rate")} <= names


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "below"])
@pytest.mark.parametrize("agent, cls, field", FLOAT_FIELDS, ids=[f"{a}.{f}" for a, _, f in FLOAT_FIELDS])
def test_config_float_fields(agent, cls, field, value):
    from metarl.config import DEFAULT_RANGE, check_numbers

    if value == "below":  # just below the field's declared range (default [0, inf))
        low = {f.name: f for f in dataclasses.fields(cls)}[field].metadata.get("range", DEFAULT_RANGE)[0]
        if not math.isfinite(low):
            pytest.skip(f"{field} declares no lower bound")
        value = low - 1.0
    with pytest.raises(ConfigError) as info:
        build_config(cls, {field: value}, source="preset p")
    assert f"{field} = {value!r}" in str(info.value), str(info.value)
    with pytest.raises(ConfigError):  # a config built in Python, as the agents check theirs
        check_numbers(cls(**{field: value}))


# --- checkpoints ----------------------------------------------------------------------------------
def _ckpt(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "ckpt-000001.pt", {"w": torch.ones(3), "iteration": 1})


def _flip(path: Path, at: int) -> Path:
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 0x04
    path.write_bytes(bytes(data))
    return path


CHECKPOINTS = [
    ("missing", lambda p: p.with_name("nope.pt"), "nope.pt does not exist"),
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[:200]) and p, "corrupt (truncated"),
    ("byte flipped in the header", lambda p: _flip(p, 30), "ckpt-000001.pt"),
    ("byte flipped in the tensors", lambda p: _flip(p, -300), "ckpt-000001.pt is corrupt"),
    ("random bytes", lambda p: p.write_bytes(os.urandom(300)) and p, "ckpt-000001.pt is unreadable"),
    ("newer version", lambda p: p.write_bytes(p.read_bytes().replace(b"checkpoint 2 ", b"checkpoint 9 ", 1)) and p, "format version 9"),
    ("empty file", lambda p: p.write_bytes(b"") or p, "ckpt-000001.pt is unreadable"),
]


@pytest.mark.parametrize("damage, needle", [pytest.param(d, n, id=i) for i, d, n in CHECKPOINTS])
def test_checkpoints(tmp_path, damage, needle):
    path = damage(_ckpt(tmp_path))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert needle in str(info.value), str(info.value)


def test_no_checkpoint_verifies(tmp_path):
    _flip(_ckpt(tmp_path), -300)
    with pytest.raises(CheckpointError, match=r"no checkpoint in .* verifies.*ckpt-000001\.pt"):
        load_latest_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_latest_checkpoint(tmp_path / "empty")


# --- the command line -----------------------------------------------------------------------------
def _environ() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # The console script itself when installed (it is, with `pip install -e .`), else the module.
    exe = Path(sys.executable).with_name("metarl")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "metarl.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=_environ(), cwd=cwd, timeout=300)


def _file_in_the_way(tmp: Path) -> str:
    (tmp / "afile").write_text("x")
    return str(tmp / "afile" / "run")


SUBPROCESS = [
    # (id, args (a callable of tmp_path may build them), text of the one stderr line)
    ("train negative seed", ["train", "maml", "--seed", "-1"], "--seed must be a non-negative int below 2**63, got -1"),
    ("eval huge seed", ["eval", "runs/x", "--seed", str(2**70)], f"got {2**70}"),
    ("plain gym env", ["train", "maml", "--env", "CartPole-v1"], "'CartPole-v1' is a plain Gymnasium env"),
    ("file in the way of --out", lambda t: ["train", "maml", "--out", _file_in_the_way(t)], "afile is a file, not a directory"),
    ("num-envs too large", ["bench", "throughput", "--num-envs", str(10**10)], f"--num-envs {10**10} for metarl/Navigation2D-v0"),
    ("NaN damping", ["train", "maml", "--cg-damping", "nan"], "MAMLConfig.cg_damping = nan"),
    ("unknown flag", ["train", "maml", "--meta-batch-sise", "3"], "--meta-batch-sise"),
]


@pytest.mark.parametrize("args, needle", [pytest.param(a, n, id=i) for i, a, n in SUBPROCESS])
def test_cli_subprocess(tmp_path, args, needle):
    res = _cli(*(args(tmp_path) if callable(args) else args), cwd=tmp_path)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr + res.stdout
    assert res.stderr.strip().count("\n") == 0 and needle in res.stderr, res.stderr
    assert not (tmp_path / "runs").exists()  # nothing was started


IN_PROCESS = [
    ("bench adaptation seed", ["bench", "adaptation", "x", "--seed", "-2"], "got -2"),
    ("eval --env plain gym env", ["eval", "runs/x", "--env", "Pendulum-v1"], "'Pendulum-v1' is a plain Gymnasium env"),
    ("bench throughput plain env", ["bench", "throughput", "--env", "CartPole-v1"], "'CartPole-v1'"),
    ("negative regulariser", ["train", "maml", "--baseline-reg", "-1"], "MAMLConfig.baseline_reg = -1.0"),
    ("inf learning rate", ["train", "rl2", "--learning-rate", "inf"], "RL2Config.learning_rate = inf"),
    ("NaN entropy coefficient", ["train", "rl2", "--entropy-coef", "nan"], "RL2Config.entropy_coef = nan"),
    ("eval zero tasks", ["eval", "runs/x", "--num-tasks", "0"], "--num-tasks must be an int >= 1, got 0"),
    ("eval zero chunk", ["eval", "runs/x", "--chunk-size", "0"], "--chunk-size must be an int >= 1, got 0"),
    ("eval zero trials", ["eval", "runs/x", "--trials-per-task", "0"], "--trials-per-task must be an int >= 1, got 0"),
    ("bench adaptation negative tasks", ["bench", "adaptation", "x", "--num-tasks", "-3"], "got -3"),
    ("seconds NaN", ["bench", "throughput", "--seconds", "nan"], "--seconds must be a positive finite number, got nan"),
    ("out is a file", lambda t: ["train", "maml", "--out", str((t / "f").write_text("x") and t / "f")], "is a file, not a directory"),
    ("huge mujoco num-envs", ["bench", "throughput", "--env", "metarl/HalfCheetahRandParams-v0", "--num-envs", str(10**9)],
     f"--num-envs {10**9}"),
]


@pytest.mark.parametrize("args, needle", [pytest.param(a, n, id=i) for i, a, n in IN_PROCESS])
def test_cli_in_process(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    assert main(args(tmp_path) if callable(args) else args) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_cli_out_on_a_filesystem_that_refuses_writes(tmp_path, capsys, monkeypatch):
    """What a read-only mount or an ACL does (root ignores mode bits, so the probe is faked here)."""
    import metarl.config

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(metarl.config.tempfile, "TemporaryFile", refuse)
    assert main(["train", "maml", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert f"run directory {tmp_path / 'run'} is not writable (its nearest existing parent {tmp_path}): Permission denied" in err
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_cli_unwritable_out(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["train", "maml", "--out", str(locked / "run")]) == 1
    assert f"run directory {locked / 'run'} is not writable" in capsys.readouterr().err


def test_usage_error_on_a_terminal_is_one_clean_line(tmp_path):
    """On a real terminal tyro colours its error box: one plain line must come out anyway."""
    pty = pytest.importorskip("pty")  # POSIX only
    exe = Path(sys.executable).with_name("metarl")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "metarl.cli"]
    master, slave = pty.openpty()
    env = {**_environ(), "TERM": "xterm-256color", "COLUMNS": "60"}
    proc = subprocess.Popen([*cmd, "train", "maml", "--meta-batch-sise", "3"], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO once the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=300) == 2
    out = b"".join(chunks).decode()
    assert not set(out) & set("│╭╰╮╯─┃━┏┓┗┛"), out
    assert "\x1b" not in out and out.strip().count("\n") == 0, out
    assert "Unrecognized options: --meta-batch-sise, 3 (did you mean --meta-batch-size?)" in out


@pytest.mark.parametrize(
    "args", [["train", "maml", "--help"], ["train", "rl2", "--help"], ["eval", "--help"], ["bench", "throughput", "--help"],
             ["bench", "adaptation", "--help"], ["envs", "--help"]], ids=" ".join,
)
def test_help_has_no_restructuredtext(args, capsys):
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "usage" in out.lower()
    assert "``" not in out and not re.search(r":[a-z]+:`", out), out


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_every_agent_flag_has_help_text(agent):
    from tyro import _docstrings

    cls = load_agent_class(agent).config_cls
    missing = [f.name for f in dataclasses.fields(cls) if not _docstrings.get_field_docstring(cls, f.name, ())]
    assert not missing, f"{cls.__name__} fields without a docstring (no --help text): {missing}"


# --- made correct rather than refused --------------------------------------------------------------
@pytest.mark.parametrize("env_id", _mujoco_ids())
def test_huge_mujoco_actions_are_clipped_to_the_box(env_id):
    """A huge finite action steps exactly like the box's bound and pays its (finite) control cost."""
    results = []
    for scale in (1e300, 1.0):
        env = gym.make(env_id)
        env.reset(seed=0)
        high = env.action_space.high.astype(np.float64)
        sign = np.where(np.arange(high.size) % 2 == 0, 1.0, -1.0)
        results.append(env.step(sign * (1e300 if scale > 1 else high)))
    (obs_a, r_a, *_), (obs_b, r_b, *_) = results
    assert np.isfinite(r_a) and r_a == r_b and np.array_equal(obs_a, obs_b)
    venv = metarl.make_vec(env_id, num_envs=2, nthread=0)
    venv.reset(seed=0)
    _, rewards, *_ = venv.step(np.full(venv.action_space.shape, -1e300))
    assert np.isfinite(rewards).all()


# Decision per family: tasks outside the training distribution are allowed (extrapolation tasks) or
# rejected (not meaningful values); each family's docstring says which.
OUTSIDE = [
    (NAV, {"type": "Navigation2DTask", "goal": [3.0, -2.0]}, "allowed"),
    (BANDIT, {"type": "BanditTask", "probs": [1.2, 0.1, 0.1, 0.1, 0.1]}, "rejected"),
    ("metarl/TabularMDP-v0", None, "allowed"),  # mean rewards far from N(1, 1): built below
    (HC, {"type": "VelocityTask", "velocity": 5.0}, "allowed"),
    ("metarl/AntVel-v0", {"type": "VelocityTask", "velocity": -1.0}, "allowed"),
    ("metarl/HalfCheetahDir-v0", {"type": "DirectionTask", "direction": 2.0}, "rejected"),
    ("metarl/AntDir-v0", {"type": "DirectionTask", "direction": 0.0}, "rejected"),
    ("metarl/AntGoal-v0", {"type": "GoalPositionTask", "goal": [10.0, 0.0]}, "allowed"),
    ("metarl/HumanoidDir-v0", {"type": "HeadingTask", "angle": -0.5}, "rejected"),
    # Dynamics: any positive multipliers (far outside the ranges too) allowed, non-positive rejected
    # (MujocoDynamicsTask's docstring: "every entry must be positive"); built below.
    ("metarl/HopperRandParams-v0", 100.0, "allowed"),
    ("metarl/Walker2DRandParams-v0", -1.0, "rejected"),
]


@pytest.mark.parametrize("env_id, task, decision", OUTSIDE, ids=[o[0] for o in OUTSIDE])
def test_tasks_outside_the_training_range(env_id, task, decision):
    env = gym.make(env_id)
    if task is None:
        t = env.unwrapped.held_out_tasks()[0]
        task = t.replace(mean_rewards=np.full(t.mean_rewards.shape, 100.0))
    if isinstance(task, float):  # a dynamics task whose multipliers are all `task`
        t = env.unwrapped.held_out_tasks()[0]
        task = {**t.to_dict(), **{k: (np.asarray(v) * 0 + task).tolist() for k, v in t.to_dict().items() if k != "type"}}
        assert "must be positive" in (type(t).__doc__ or "")
    else:
        doc = type(env.unwrapped).__doc__ or ""
        assert ("allowed" if decision == "allowed" else "rejected") in doc, doc
    if decision == "rejected":
        with pytest.raises(InvalidTaskError):
            env.unwrapped.set_task(task)
        return
    env.reset(seed=0, options={"task": task})
    checked = env.unwrapped.distribution.check(task)
    assert not env.unwrapped.distribution.contains(checked) or env_id == "metarl/TabularMDP-v0"
    _, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward)


def test_cli_eval_and_resume_fall_back_past_a_corrupt_checkpoint(tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.syspath_prepend(str(TESTS))
    run = tmp_path / "r"
    tiny = ["--meta-batch-size", "2", "--episodes-per-task", "2", "--hidden", "4", "--eval-tasks", "0", "--log-every", "0"]
    assert main(["train", "cli_agents:ToyNav", "--iterations", "4", "--checkpoint-every", "2", *tiny, "--out", str(run)]) == 0
    _flip(run / "checkpoints" / "ckpt-000004.pt", -100)
    (run / "checkpoints" / ".ckpt-000006.pt.x1y2z3.tmp").write_bytes(b"torn")  # a killed write
    capsys.readouterr()
    assert main(["eval", str(run), "--num-tasks", "2"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metarl: warning: skipping checkpoint ckpt-000004.pt" in err and "using ckpt-000002.pt" in err
    assert json.loads((run / "eval.json").read_text())["iteration"] == 2
    assert main(["train", "cli_agents:ToyNav", "--resume", "--iterations", "4", "--out", str(run), "--eval-tasks", "0"]) == 0
    assert "skipping checkpoint ckpt-000004.pt" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-000002.pt", "ckpt-000004.pt"]
    load_checkpoint(run / "checkpoints" / "ckpt-000004.pt")  # rewritten by the resumed run, verifies


def test_cli_failed_fresh_run_does_not_block_the_corrected_command(tmp_path, capsys, monkeypatch):
    from cli_agents import ToyNav

    from metarl.errors import TrainingDivergedError

    monkeypatch.syspath_prepend(str(TESTS))
    run = tmp_path / "r"
    args = ["train", "cli_agents:ToyNav", "--iterations", "2", "--hidden", "4", "--eval-tasks", "0", "--out", str(run)]

    def diverges(self, it):
        raise TrainingDivergedError(f"iteration {it}: loss is nan")

    monkeypatch.setattr(ToyNav, "train_iteration", diverges)
    assert main(args) == 1
    assert "iteration 0: loss is nan" in capsys.readouterr().err
    assert not run.exists()
    monkeypatch.undo()
    monkeypatch.syspath_prepend(str(TESTS))
    assert main(args) == 0
