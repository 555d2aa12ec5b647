"""The logger: namespaced keys, JSONL rows, TensorBoard events, truncation for exact resume."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch

from metarl.errors import ConfigError
from metarl.logger import (
    JSONLOutput,
    Logger,
    StdoutOutput,
    TensorBoardOutput,
    read_metrics,
    truncate_metrics,
)


def test_rows_are_namespaced_and_numeric():
    buf = io.StringIO()
    log = Logger([JSONLOutput(buf)])
    log.record("rollout/return", torch.tensor(-3.5))
    log.record("train/kl", np.float32(0.25))
    log.record("adapt/steps", 2)
    log.record("eval/nan", float("nan"))
    row = log.dump({"iteration": 7, "env_steps": 100, "wall_s": 1.5})
    assert list(row)[:3] == ["iteration", "env_steps", "wall_s"]
    line = json.loads(buf.getvalue())
    assert line == {"iteration": 7, "env_steps": 100, "wall_s": 1.5, "rollout/return": -3.5,
                    "train/kl": 0.25, "adapt/steps": 2, "eval/nan": None}
    assert math.isnan(row["eval/nan"])
    assert log.step == 1
    log.dump({"iteration": 8})
    assert json.loads(buf.getvalue().splitlines()[1]) == {"iteration": 8}  # rows do not leak


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("loss", 1.0, "needs a namespace"),
        ("misc/loss", 1.0, "needs a namespace"),
        ("train/loss", "high", "must be a number"),
        ("train/loss", torch.ones(2), "must be a scalar"),
        ("train/loss", np.ones(3), "must be a scalar"),
        ("train/flag", True, "must be a number"),
    ],
)
def test_bad_records_are_typed_errors(key, value, match):
    with pytest.raises(ConfigError, match=match):
        Logger().record(key, value)


def test_stdout_every_n(capsys):
    log = Logger([StdoutOutput(every=2)])
    for i in range(4):
        log.record("train/loss", i / 3)
        log.dump({"iteration": i})
    out = capsys.readouterr().out.splitlines()
    assert out == ["iteration=0  train/loss=0", "iteration=2  train/loss=0.6667"]


def test_tensorboard_events_and_purge(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = Logger([TensorBoardOutput(tmp_path)])
    for i in range(5):
        log.record("rollout/return", float(i))
        log.dump({"iteration": i, "env_steps": 10 * i})
    log.close()
    # A resumed run restarting at step 3 purges the events written after its checkpoint.
    log = Logger([TensorBoardOutput(tmp_path, purge_step=3)], step=3)
    for i in range(3, 5):
        log.record("rollout/return", 100.0 + i)
        log.dump({"iteration": i, "env_steps": 10 * i})
    log.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    events = acc.Scalars("rollout/return")
    assert [(e.step, e.value) for e in events] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 103.0), (4, 104.0)]
    assert "env_steps" in acc.Tags()["scalars"] and "iteration" not in acc.Tags()["scalars"]


def test_truncate_metrics_and_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"iteration": i, "env_steps": i * 10} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"iteration": 5, "env_st')
    assert read_metrics(path) == rows
    assert truncate_metrics(path, 3) == 2
    assert read_metrics(path) == rows[:3]
    assert path.read_text().endswith("\n")
    path.write_text('{"iteration": 0}\nnot json\n{"iteration": 1}\n')
    with pytest.raises(ConfigError, match="line 2"):
        read_metrics(path)
    assert read_metrics(tmp_path / "absent.jsonl") == []
