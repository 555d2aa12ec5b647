"""The trainer in-process: run directories, checkpoints, exact resume, typed errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from cli_agents import ToyBandit, ToyNav, toy_run

from metarl.checkpoint import list_checkpoints, load_checkpoint
from metarl.config import read_run_config
from metarl.errors import ConfigError, SpaceMismatchError, TrainingDivergedError
from metarl.logger import read_metrics
from metarl.trainer import Trainer, check_device, default_run_dir, load_run


def _rows(run_dir):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in read_metrics(run_dir / "metrics.jsonl")]


def _agent_tensors(run_dir):
    path = list_checkpoints(run_dir / "checkpoints")[-1][1]
    state = load_checkpoint(path)
    return path.name, state["agent"]["net"], state["agent"]["opt"]["state"], state["agent"]["task_rng"]


def test_fresh_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    result = Trainer(toy_run(5), run_dir).train()
    assert result.iterations == 5 and result.resumed_from is None
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["agent"] == "cli_agents:ToyNav" and cfg["env"] == "metarl/Navigation2D-v0"
    assert cfg["config"]["hidden"] == [4] and cfg["config"]["lr"] == 0.01  # defaults resolved too
    assert cfg["env_kwargs"] == {"max_episode_steps": 10} and cfg["trainer"]["checkpoint_every"] == 2
    assert read_run_config(run_dir / "config.yaml").seed == 0
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == list(range(5))
    assert [r["env_steps"] for r in rows] == [40 * (i + 1) for i in range(5)]  # cumulative, 4 envs x 10 steps
    assert all(b["wall_s"] >= a["wall_s"] > 0 for a, b in zip(rows, rows[1:], strict=False))
    assert {"rollout/return", "train/loss"} <= set(rows[0])
    assert [i for i, _ in list_checkpoints(run_dir / "checkpoints")] == [2, 4, 5]
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert result.env_steps == 200 and result.last_metrics["iteration"] == 4


def test_same_seed_same_curve_other_seed_differs(tmp_path):
    Trainer(toy_run(3), tmp_path / "a").train()
    Trainer(toy_run(3), tmp_path / "b").train()
    Trainer(toy_run(3, seed=1), tmp_path / "c").train()
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    assert _rows(tmp_path / "a") != _rows(tmp_path / "c")


def test_interrupted_run_resumes_exactly(tmp_path, monkeypatch):
    """K straight == k, interruption after unsaved rows, resume, K - k (rows and parameters)."""
    Trainer(toy_run(5), tmp_path / "straight").train()

    real = ToyNav.train_iteration

    def dies_at_3(self, it):
        if it == 3:
            raise KeyboardInterrupt
        return real(self, it)

    monkeypatch.setattr(ToyNav, "train_iteration", dies_at_3)
    with pytest.raises(KeyboardInterrupt):
        Trainer(toy_run(5), tmp_path / "killed").train()
    monkeypatch.undo()
    # Rows 0-2 were written, the last checkpoint is before iteration 2: row 2 must be redone.
    assert [r["iteration"] for r in read_metrics(tmp_path / "killed" / "metrics.jsonl")] == [0, 1, 2]
    result = Trainer(toy_run(5), tmp_path / "killed", resume=True).train()
    assert result.resumed_from == 2
    assert _rows(tmp_path / "killed") == _rows(tmp_path / "straight")
    name_a, net_a, opt_a, rng_a = _agent_tensors(tmp_path / "straight")
    name_b, net_b, opt_b, rng_b = _agent_tensors(tmp_path / "killed")
    assert name_a == name_b == "ckpt-000005.pt" and rng_a == rng_b
    assert all(torch.equal(net_a[k], net_b[k]) for k in net_a)
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)


def test_resume_extends_a_finished_run(tmp_path):
    Trainer(toy_run(4), tmp_path / "straight").train()
    Trainer(toy_run(2), tmp_path / "extended").train()
    Trainer(toy_run(4), tmp_path / "extended", resume=True).train()
    assert _rows(tmp_path / "extended") == _rows(tmp_path / "straight")


def test_failed_fresh_run_leaves_no_blocking_directory(tmp_path, monkeypatch):
    """A fresh run that fails before its first checkpoint removes the run directory it created."""
    run_dir = tmp_path / "r"
    monkeypatch.setattr(ToyNav, "train_iteration", lambda self, it: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        Trainer(toy_run(2), run_dir).train()
    assert not run_dir.exists()
    # A user's own empty folder is kept, empty again.
    run_dir.mkdir()
    with pytest.raises(KeyboardInterrupt):
        Trainer(toy_run(2), run_dir).train()
    assert run_dir.is_dir() and not any(run_dir.iterdir())
    run_dir.rmdir()
    # SIGKILL leaves no chance to clean up (emulated): the fresh command says exactly what to do,
    # and --resume restarts from zero.
    monkeypatch.setattr(Trainer, "_remove_run_dir", lambda self: None)
    with pytest.raises(KeyboardInterrupt):
        Trainer(toy_run(2), run_dir).train()
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=rf"holds no checkpoint .*delete it \(rm -r {run_dir}\)"):
        Trainer(toy_run(2), run_dir).train()
    Trainer(toy_run(2), run_dir, resume=True).train()
    Trainer(toy_run(2), tmp_path / "s").train()
    assert _rows(run_dir) == _rows(tmp_path / "s")


def test_resume_falls_back_past_a_corrupt_checkpoint(tmp_path):
    from metarl.errors import CheckpointWarning

    Trainer(toy_run(4), tmp_path / "straight").train()
    run = toy_run(4)
    run.trainer["checkpoint_every"] = 2
    Trainer(run, tmp_path / "r").train()
    ckpts = list_checkpoints(tmp_path / "r" / "checkpoints")
    assert [i for i, _ in ckpts] == [2, 4]
    newest = ckpts[-1][1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x10
    newest.write_bytes(bytes(data))
    (tmp_path / "r" / "checkpoints" / ".ckpt-000004.pt.abc123.tmp").write_bytes(b"partial")
    with pytest.warns(CheckpointWarning, match=r"skipping checkpoint ckpt-000004\.pt: .*corrupt"):
        result = Trainer(toy_run(4), tmp_path / "r", resume=True).train()
    assert result.resumed_from == 2
    assert _rows(tmp_path / "r") == _rows(tmp_path / "straight")
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir()) == ["ckpt-000002.pt", "ckpt-000004.pt"]
    with pytest.warns(CheckpointWarning, match="skipping"):  # eval's loader falls back the same way
        newest.write_bytes(b"junk")
        _, _, state = load_run(tmp_path / "r")
    assert state["iteration"] == 2


def test_existing_directory_is_refused_and_missing_one_cannot_resume(tmp_path):
    Trainer(toy_run(1), tmp_path / "run").train()
    with pytest.raises(ConfigError, match=r"already exists; pass --resume"):
        Trainer(toy_run(1), tmp_path / "run").train()
    with pytest.raises(ConfigError, match="not a run directory"):
        Trainer(toy_run(1), tmp_path / "absent", resume=True).train()


def test_keep_checkpoints_prunes(tmp_path):
    Trainer(toy_run(6, checkpoint_every=1, keep_checkpoints=2), tmp_path / "run").train()
    assert [i for i, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [5, 6]


@pytest.mark.parametrize(
    "change, match",
    [
        ({"checkpoint_every": 0}, "checkpoint_every must be a positive int, got 0"),
        ({"keep_checkpoints": -1}, "keep_checkpoints must be a non-negative int, got -1"),
    ],
)
def test_bad_trainer_options(tmp_path, change, match):
    with pytest.raises(ConfigError, match=match):
        Trainer(toy_run(1, **change), tmp_path / "run")


def test_bad_run_fields(tmp_path):
    run = toy_run(1)
    run.device = "tpu"
    with pytest.raises(ConfigError, match="'tpu'"):
        Trainer(run, tmp_path / "a")
    run = toy_run(1)
    run.config["lrr"] = 1.0
    with pytest.raises(ConfigError, match="unknown field 'lrr' of ToyNavConfig; did you mean 'lr'"):
        Trainer(run, tmp_path / "b").train()
    run = toy_run(1)
    run.env_kwargs = {"max_episode_step": 3}
    with pytest.raises(ConfigError, match="max_episode_step"):
        Trainer(run, tmp_path / "c").train()


def test_env_kwargs_need_an_agent_that_takes_them(tmp_path):
    run = toy_run(1, agent="cli_agents:ToyBandit")
    run.env_kwargs = {"num_arms": 3}
    with pytest.raises(ConfigError, match="ToyBandit does not accept env_kwargs"):
        Trainer(run, tmp_path / "run").train()


def test_agent_contract_violations_are_typed(tmp_path, monkeypatch):
    monkeypatch.setattr(ToyBandit, "train_iteration", lambda self, it: {"rollout/return": 1.0})
    with pytest.raises(ConfigError, match="must return 'env_steps'"):
        Trainer(toy_run(1, agent="cli_agents:ToyBandit"), tmp_path / "a").train()
    monkeypatch.setattr(ToyBandit, "train_iteration", lambda self, it: {"env_steps": 1, "rollout/return": math.nan})
    with pytest.raises(TrainingDivergedError, match="iteration 0: rollout/return is nan"):
        Trainer(toy_run(1, agent="cli_agents:ToyBandit"), tmp_path / "b").train()
    monkeypatch.setattr(ToyBandit, "train_iteration", lambda self, it: {"env_steps": 1, "loss": 1.0})
    with pytest.raises(ConfigError, match="'loss' needs a namespace"):
        Trainer(toy_run(1, agent="cli_agents:ToyBandit"), tmp_path / "c").train()


def test_load_run_rebuilds_the_agent_and_checks_spaces(tmp_path):
    run_dir = tmp_path / "run"
    Trainer(toy_run(2), run_dir).train()
    agent, run, state = load_run(run_dir)
    assert isinstance(agent, ToyNav) and state["iteration"] == 2
    saved = load_checkpoint(run_dir / "checkpoints" / "ckpt-000002.pt")["agent"]["net"]
    assert all(torch.equal(agent.net.state_dict()[k], v) for k, v in saved.items())
    with pytest.raises(SpaceMismatchError) as info:
        load_run(run_dir, env_id="metarl/Bandit-v0")
    msg = str(info.value)
    assert "Discrete(5)" in msg and "Box(-0.1, 0.1, (2,)" in msg and "ckpt-000002.pt" in msg


def test_default_run_dir_and_device():
    assert str(default_run_dir("pkg.mod:MyAgent", "metarl/Bandit-v0", 2)) == "runs/MyAgent-Bandit-v0-s2"
    assert check_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="'gpu'"):
        check_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            check_device("cuda")


def test_metrics_file_is_strict_json(tmp_path):
    Trainer(toy_run(2), tmp_path / "run").train()
    for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines():
        json.loads(line)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_resumes_exactly_and_matches_cpu(tmp_path, monkeypatch):
    def on_cuda(iterations):
        run = toy_run(iterations)
        run.device = "cuda"
        return run

    Trainer(on_cuda(4), tmp_path / "straight").train()
    Trainer(on_cuda(2), tmp_path / "resumed").train()
    Trainer(on_cuda(4), tmp_path / "resumed", resume=True).train()
    assert _rows(tmp_path / "resumed") == _rows(tmp_path / "straight")
    Trainer(toy_run(1), tmp_path / "cpu").train()
    cpu, gpu = _rows(tmp_path / "cpu")[0], _rows(tmp_path / "straight")[0]
    assert gpu["rollout/return"] == pytest.approx(cpu["rollout/return"], rel=1e-4)
    agent, _, _ = load_run(tmp_path / "straight")
    assert next(agent.net.parameters()).device.type == "cuda"
