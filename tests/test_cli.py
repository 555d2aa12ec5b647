"""The ``metarl`` command line end to end (subprocesses) and its error handling (in-process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from metarl.checkpoint import list_checkpoints, load_checkpoint
from metarl.cli import main
from metarl.logger import read_metrics

TESTS = Path(__file__).parent
TOY = "cli_agents:ToyNav"
TINY = ["--meta-batch-size", "2", "--episodes-per-task", "2", "--hidden", "4", "--eval-tasks", "0", "--log-every", "1"]


def _cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "metarl.cli", *args], capture_output=True, text=True, env=environ, cwd=cwd, timeout=300
    )


def _rows(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in read_metrics(run_dir / "metrics.jsonl")]


def _final_params(run_dir: Path) -> dict:
    return load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1][1])["agent"]


@pytest.fixture
def tests_on_path():
    sys.path.insert(0, str(TESTS))
    yield
    sys.path.remove(str(TESTS))


def test_train_sigkill_resume_eval_end_to_end(tmp_path, capsys, tests_on_path):
    """K straight == k, SIGKILL, --resume, K - k: metrics and parameters identical; then eval.

    The killed run, the resume and one eval are real subprocesses of the console entry point;
    the reference run and the second eval run in-process to keep the test fast.
    """
    K = 5
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    common = [TOY, "--iterations", str(K), "--checkpoint-every", "2", *TINY]
    assert main(["train", *common, "--out", str(straight)]) == 0
    out = capsys.readouterr().out
    assert "trained cli_agents:ToyNav" in out and "iteration=4" in out

    # The agent SIGKILLs its own process at the start of iteration 3: rows 0-2 are on disk, the
    # newest checkpoint is ckpt-000002 (taken before iteration 2).
    res = _cli("train", *common, "--out", str(killed), env={"METARL_TEST_KILL_AT": "3"})
    assert res.returncode == -signal.SIGKILL
    assert [r["iteration"] for r in read_metrics(killed / "metrics.jsonl")] == [0, 1, 2]
    assert [i for i, _ in list_checkpoints(killed / "checkpoints")] == [2]

    res = _cli("train", TOY, "--resume", "--out", str(killed), "--eval-tasks", "0")
    assert res.returncode == 0, res.stderr
    assert _rows(killed) == _rows(straight)
    a, b = _final_params(straight), _final_params(killed)
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"])
    assert torch.equal(a["log_std"], b["log_std"]) and a["task_rng"] == b["task_rng"]
    assert (yaml.safe_load((killed / "config.yaml").read_text()) == yaml.safe_load((straight / "config.yaml").read_text()))

    # Eval: held-out adaptation -> eval.json (identical for both runs) and adaptation.png.
    res = _cli("eval", str(killed), "--num-tasks", "6", "--seed", "1")
    assert res.returncode == 0, res.stderr
    assert "adaptation gain" in res.stdout
    assert main(["eval", str(straight), "--num-tasks", "6", "--seed", "1"]) == 0
    s1, s2 = (straight / "eval.json").read_text(), (killed / "eval.json").read_text()
    assert s1 == s2
    summary = json.loads(s1)
    assert summary["split"] == "held_out" and summary["num_tasks"] == 6 and summary["x"] == "gradient_steps"
    assert (killed / "adaptation.png").read_bytes()[:4] == b"\x89PNG"

    # Re-running an existing run without --resume is refused with one line.
    capsys.readouterr()
    assert main(["train", *common, "--out", str(straight)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists; pass --resume" in err

    # bench adaptation reads the eval.json files (no re-evaluation: same seed and task count).
    assert main(["bench", "adaptation", str(straight), str(killed), "--num-tasks", "6", "--seed", "1"]) == 0
    assert capsys.readouterr().out.count("cli_agents:ToyNav") == 2


def test_default_env_preset_and_quick_eval(tmp_path, capsys, monkeypatch, tests_on_path):
    preset = tmp_path / "toy-nav-tiny.yaml"
    preset.write_text(yaml.safe_dump({
        "agent": TOY, "env": "metarl/Navigation2D-v0", "source": "test", "description": "tiny",
        "config": {"meta_batch_size": 2, "episodes_per_task": 2, "hidden": [4], "lr": 0.5},
        "env_kwargs": {"max_episode_steps": 10},
    }))
    monkeypatch.chdir(tmp_path)
    assert main(["train", TOY, "--config", str(preset), "--lr", "0.25", "--eval-tasks", "3"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "runs" / "ToyNav-Navigation2D-v0-s0"  # default --out, default_iterations = 3
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["config"]["lr"] == 0.25 and cfg["config"]["hidden"] == [4]  # flag > preset > default
    assert cfg["env_kwargs"] == {"max_episode_steps": 10} and cfg["preset"] == "toy-nav-tiny"
    assert cfg["iterations"] == 3 and len(read_metrics(run_dir / "metrics.jsonl")) == 3
    assert "adaptation gain on 3 held-out tasks" in out


def test_help_everywhere(capsys, tests_on_path):
    for args in (["--help"], ["envs", "--help"], ["train", "--help"], ["train", TOY, "--help"], ["eval", "--help"],
                 ["bench", "--help"], ["bench", "throughput", "--help"], ["bench", "adaptation", "--help"]):
        assert main(args) == 0, args
        assert "usage" in capsys.readouterr().out.lower(), args
    assert main(["train", TOY, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--meta-batch-size" in out and "Tasks per iteration" in out and "--resume" in out
    res = _cli("eval", "--help")  # the real entry point too
    assert res.returncode == 0 and "--num-tasks" in res.stdout


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["train", TOY, "--lr", "fast"], 2, "Error parsing --lr"),
        (["eval", "/nonexistent/run"], 1, "run directory /nonexistent/run does not exist"),
    ],
)
def test_user_mistakes_print_one_line_not_a_traceback(args, code, needle):
    res = _cli(*args)
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert needle in res.stderr and res.stderr.strip().count("\n") == 0, res.stderr


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["train", TOY, "--meta-batch-sise", "3"], 2, "Unrecognized options: --meta-batch-sise, 3 (did you mean --meta-batch-size?)"),
        (["train", TOY, "--lr", "fast"], 2, "Error parsing --lr: could not convert string to float: 'fast'"),
        (["train", TOY, "--device", "tpu"], 1, "device 'tpu'"),
        (["train", TOY, "--seed", "-1", "--out", "/nonexistent/x"], 1, "--seed must be a non-negative int below 2**63, got -1"),
        (["train", "mamll"], 1, "unknown agent 'mamll'; did you mean 'maml'"),
        (["train", "cli_agents:Nope"], 1, "has no class 'Nope'"),
        (["train", "cli_agents:toy_run"], 1, "is not a metarl.agent.Agent subclass"),
        (["train", TOY, "--env", "metarl/Navigation3D-v0"], 1, "did you mean 'metarl/Navigation2D-v0'"),
        (["train", TOY, "--config", "maml-trpo-halfcheeta"], 1, "unknown preset 'maml-trpo-halfcheeta'"),
        (["train", TOY, "--resume", "--out", "/nonexistent/run"], 1, "/nonexistent/run/config.yaml does not exist"),
        (["train", "--seed", "3"], 2, "the first argument must be AGENT"),
        (["eval", "/nonexistent/run"], 1, "run directory /nonexistent/run does not exist"),
        (["eval"], 2, "Missing from metarl eval: PATH"),
        (["evaluate", "x"], 2, "did you mean 'eval'"),
        (["bench", "speed"], 2, "unknown benchmark 'speed'"),
        (["bench", "throughput", "--env", "metarl/Bandit-v9"], 1, "unknown env id 'metarl/Bandit-v9'"),
    ],
)
def test_user_mistakes_in_process(args, code, needle, capsys, tests_on_path):
    assert main(args) == code
    captured = capsys.readouterr()
    assert needle in captured.err and captured.err.count("\n") == 1, captured.err


def test_preset_for_another_agent_is_refused(tmp_path, capsys, tests_on_path):
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"agent": "cli_agents:ToyBandit", "env": "metarl/Bandit-v0", "config": {}}))
    assert main(["train", TOY, "--config", str(preset)]) == 1
    assert "is for agent 'cli_agents:ToyBandit'" in capsys.readouterr().err
    preset.write_text(yaml.safe_dump({"agent": TOY, "env": "metarl/Navigation2D-v0", "config": {"lrr": 1}}))
    assert main(["train", TOY, "--config", str(preset)]) == 1
    assert "unknown field 'lrr' of ToyNavConfig; did you mean 'lr'" in capsys.readouterr().err


def test_bad_checkpoint_and_space_mismatch_are_one_line(tmp_path, capsys, tests_on_path):
    if True:
        run = tmp_path / "r"
        assert main(["train", TOY, "--iterations", "2", *TINY, "--out", str(run)]) == 0
        capsys.readouterr()
        assert main(["eval", str(run), "--env", "metarl/Bandit-v0"]) == 1
        err = capsys.readouterr().err
        assert "SpaceMismatch" not in err and "Discrete(5)" in err and "Box(-0.1, 0.1, (2,)" in err
        ckpt = list_checkpoints(run / "checkpoints")[-1][1]
        ckpt.write_bytes(ckpt.read_bytes()[:100])
        assert main(["eval", str(run)]) == 1
        err = capsys.readouterr().err
        assert str(ckpt) in err and "truncated" in err and err.count("\n") == 1
        assert main(["train", TOY, "--resume", "--out", str(run), "--iterations", "3"]) == 1
        assert str(ckpt) in capsys.readouterr().err
        # --resume with a conflicting flag is refused, naming the flag and both values.
        ckpt.unlink()
        assert main(["train", TOY, "--resume", "--out", str(run), "--lr", "0.5"]) == 1
        assert "--lr: run has 0.01, given 0.5" in capsys.readouterr().err


def test_envs_and_throughput(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "metarl/Navigation2D-v0" in out and "goal" in out
    assert main(["envs", "--ids-only"]) == 0
    assert "metarl/Bandit-v0" in capsys.readouterr().out.splitlines()
    assert main(["bench", "throughput", "--env", "metarl/Bandit-v0", "--num-envs", "4", "64", "--seconds", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "native / sync" in out and "64" in out and "x" in out
    assert main(["bench", "throughput", "--num-envs", "0"]) == 1
    assert "--num-envs must be positive" in capsys.readouterr().err


def test_maml_trains_resumes_and_evaluates_from_the_cli(tmp_path, capsys):
    """The first real agent through the whole CLI: tiny MAML on Navigation2D (held-out eval)."""
    tiny = ["--meta-batch-size", "2", "--episodes-per-task", "2", "--horizon", "20", "--hidden-sizes", "8",
            "--cg-iters", "3", "--eval-steps", "1", "--eval-tasks", "0", "--log-every", "0", "--checkpoint-every", "1"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["train", "maml", "--iterations", "2", *tiny, "--out", str(straight)]) == 0
    assert main(["train", "maml", "--iterations", "1", *tiny, "--out", str(resumed)]) == 0
    assert main(["train", "maml", "--resume", "--iterations", "2", "--out", str(resumed), "--eval-tasks", "0"]) == 0

    def rows(d):
        return [{k: v for k, v in r.items() if k != "wall_s" and not k.startswith("time/")} for r in read_metrics(d / "metrics.jsonl")]

    assert rows(resumed) == rows(straight) and len(rows(straight)) == 2
    assert yaml.safe_load((resumed / "config.yaml").read_text()) == yaml.safe_load((straight / "config.yaml").read_text())
    for d in (straight, resumed):
        assert main(["eval", str(d), "--num-tasks", "3", "--seed", "2"]) == 0
    assert (straight / "eval.json").read_text() == (resumed / "eval.json").read_text()
    summary = json.loads((straight / "eval.json").read_text())
    assert summary["agent"] == "maml" and summary["x"] == "gradient_steps" and len(summary["curve"]) == 2
