"""Presets and config dataclasses: loading, validation, precedence, and every shipped preset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from metarl.agent import load_agent_class
from metarl.config import (
    RunConfig,
    build_config,
    config_to_dict,
    list_presets,
    load_preset,
    read_run_config,
    write_run_config,
)
from metarl.errors import ConfigError
from metarl.registry import check_env_id


@dataclass
class Cfg:
    lr: float = 0.1
    """learning rate"""
    steps: int = 2
    """steps"""
    hidden: tuple[int, ...] = (32, 32)
    """hidden sizes"""
    outer: Literal["trpo", "ppo"] = "trpo"
    """outer loop"""
    first_order: bool = False
    """first order"""
    note: str | None = None
    """free text"""
    pair: tuple[float, float] = (0.0, 1.0)
    """a range"""
    extra: dict = field(default_factory=dict)
    """kwargs"""


def test_build_config_converts_and_checks():
    cfg = build_config(Cfg, {"lr": 1, "hidden": [8], "outer": "ppo", "note": None, "pair": [0, 3]})
    assert cfg == Cfg(lr=1.0, hidden=(8,), outer="ppo", pair=(0.0, 3.0))
    assert isinstance(cfg.lr, float)
    for values, match in [
        ({"steps": 2.5}, "field 'steps' = 2.5 is not a valid int"),
        ({"steps": True}, "field 'steps' = True"),
        ({"lr": "fast"}, "field 'lr' = 'fast'"),
        ({"outer": "sgd"}, r"field 'outer' = 'sgd' must be one of \['trpo', 'ppo'\]"),
        ({"hidden": 8}, "field 'hidden' = 8"),
        ({"pair": [1.0]}, "field 'pair'"),
        ({"first_order": "yes"}, "field 'first_order'"),
        ({"stepz": 3}, "unknown field 'stepz' of Cfg; did you mean 'steps'"),
    ]:
        with pytest.raises(ConfigError, match=match):
            build_config(Cfg, values, source="preset x")


def test_config_to_dict_round_trips_through_yaml():
    cfg = Cfg(hidden=(4, 4), pair=(0.5, 1.5), extra={"a": [1, 2]})
    plain = config_to_dict(cfg)
    assert plain["hidden"] == [4, 4] and plain["pair"] == [0.5, 1.5]
    assert build_config(Cfg, yaml.safe_load(yaml.safe_dump(plain))) == cfg


def _write(tmp_path: Path, data, name="p.yaml") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def test_preset_files_are_validated(tmp_path):
    good = {"agent": "maml", "env": "metarl/Navigation2D-v0", "source": "paper", "config": {"inner_lr": 0.1}}
    p = load_preset(_write(tmp_path, good))
    assert (p.agent, p.env, p.config, p.env_kwargs, p.name) == ("maml", "metarl/Navigation2D-v0", {"inner_lr": 0.1}, {}, "p")
    for data, match in [
        ({**good, "confg": {}}, r"unknown key\(s\) \['confg'\]"),
        ({k: v for k, v in good.items() if k != "agent"}, "needs a string 'agent'"),
        ({**good, "config": [1, 2]}, "'config' must be a mapping"),
        ("agent: [unclosed", "not valid YAML"),
        ("- just a list", "must be a mapping"),
    ]:
        with pytest.raises(ConfigError, match=match):
            load_preset(_write(tmp_path, data))
    with pytest.raises(ConfigError, match="does not exist"):
        load_preset(str(tmp_path / "absent.yaml"))


def test_unknown_preset_name_suggests():
    names = list_presets()
    assert names, "presets ship with the package"
    with pytest.raises(ConfigError, match=f"did you mean '{names[0]}'"):
        load_preset(names[0][:-1] + "x")


@pytest.mark.parametrize("name", list_presets())
def test_every_shipped_preset_resolves(name):
    """Each preset names a registered agent and env, and its config fits the agent's dataclass."""
    preset = load_preset(name)
    check_env_id(preset.env)
    agent_cls = load_agent_class(preset.agent)
    build_config(agent_cls.config_cls, preset.config, source=f"preset {name}")
    assert preset.source, f"preset {name} must say where its numbers come from"
    assert name.startswith(preset.agent), f"preset {name} is named after its agent"


def test_run_config_file(tmp_path):
    run = RunConfig(agent="maml", env="metarl/Navigation2D-v0", seed=1, iterations=3, device="cpu", config={"hidden_sizes": [8]})
    write_run_config(tmp_path / "config.yaml", run)
    assert read_run_config(tmp_path / "config.yaml") == run
    (tmp_path / "bad.yaml").write_text("agent: maml\n")
    with pytest.raises(ConfigError, match=r"missing \['config', 'device', 'env', 'iterations', 'seed'\]"):
        read_run_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        read_run_config(tmp_path / "none.yaml")
