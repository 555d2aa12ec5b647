"""The one CPU thread policy: metarl.threads, the Agent base, `metarl train/eval --threads`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import yaml

from metarl.agent import Agent, EvalResult
from metarl.cli import main
from metarl.errors import ConfigError
from metarl.logger import read_metrics
from metarl.tasks import Task
from metarl.threads import AUTO_THREADS, check_threads, resolve_threads, torch_threads

PROBE = f"{__name__}:ThreadProbe"


@pytest.fixture
def outside_threads():
    """Give the process a thread count the policy never picks, so a leak or no-op shows."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


@dataclass
class ProbeConfig:
    """Config of :class:`ThreadProbe`."""

    width: int = 2
    """Size of the one parameter."""


class ThreadProbe(Agent):
    """An agent that reports torch's thread count from inside each of its entry points."""

    name = "probe"
    config_cls = ProbeConfig
    default_env = "metarl/Navigation2D-v0"

    def __init__(self, env_id: str, config: ProbeConfig, *, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(env_id, config, seed=seed, device=device)
        self.w = torch.zeros(config.width)

    def train_iteration(self, iteration: int) -> dict[str, float]:
        return {"env_steps": 1, "rollout/return": 0.0, "time/threads": torch.get_num_threads()}

    def evaluate(self, tasks: Sequence[Task], *, seed: int, num_steps: int | None = None) -> EvalResult:
        return EvalResult("gradient_steps", np.zeros((len(tasks), 2)), extra={"threads": torch.get_num_threads()})

    def adapt(self) -> int:
        return torch.get_num_threads()

    def act(self) -> int:
        raise RuntimeError("inside act")

    def state_dict(self) -> dict:
        return {"w": self.w}

    def load_state_dict(self, state: dict) -> None:
        self.w = state["w"]


# --- metarl.threads --------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "want"), [("auto", "auto"), ("AUTO", "auto"), (1, 1), ("3", 3), (np.int64(2).item(), 2)])
def test_check_threads_accepts_auto_and_positive_ints(value, want) -> None:
    assert check_threads(value) == want


@pytest.mark.parametrize("value", [0, -1, "0", "-2", "abc", "", 1.5, "1.5", True, None, [1]])
def test_bad_thread_settings_are_config_errors_naming_the_value(value) -> None:
    with pytest.raises(ConfigError, match="threads must be 'auto' or a positive int") as err:
        check_threads(value)
    assert repr(value) in str(err.value) and isinstance(err.value, ValueError)


def test_auto_is_one_thread_and_the_context_restores_the_previous_count(outside_threads) -> None:
    assert resolve_threads("auto") == AUTO_THREADS == 1
    with torch_threads("auto") as n:
        assert n == torch.get_num_threads() == 1
    assert torch.get_num_threads() == outside_threads
    with pytest.raises(RuntimeError, match="boom"), torch_threads(2):
        assert torch.get_num_threads() == 2
        raise RuntimeError("boom")
    assert torch.get_num_threads() == outside_threads
    with pytest.raises(ConfigError), torch_threads(0):
        pass
    assert torch.get_num_threads() == outside_threads


# --- the Agent base applies it -----------------------------------------------------------------------
def test_agent_entry_points_run_under_the_policy_and_restore(outside_threads) -> None:
    agent = ThreadProbe("metarl/Navigation2D-v0", ProbeConfig())
    assert agent.threads == "auto"
    assert agent.train_iteration(0)["time/threads"] == 1
    assert agent.evaluate([], seed=0).extra["threads"] == 1
    assert agent.adapt() == 1
    assert torch.get_num_threads() == outside_threads
    agent.threads = "2"
    assert agent.threads == 2 and agent.train_iteration(0)["time/threads"] == 2
    with pytest.raises(RuntimeError, match="inside act"):
        agent.act()
    assert torch.get_num_threads() == outside_threads  # restored after an exception too
    with pytest.raises(ConfigError, match="-1"):
        agent.threads = -1


@pytest.mark.parametrize("agent_name", ["maml", "rl2", "pearl", "promp", "emaml", "reptile"])
def test_initial_weights_do_not_depend_on_the_callers_thread_count(agent_name) -> None:
    # A process pinned to one core starts torch with one thread, an unpinned one with the core
    # count: the same seed must build the same network either way (orthogonal init's QR differed).
    from metarl.agent import load_agent_class

    cls = load_agent_class(agent_name)
    kwargs = {"num_arms": 50, "horizon": 1} if agent_name == "rl2" else {}
    env = "metarl/Bandit-v0" if agent_name == "rl2" else cls.default_env
    before = torch.get_num_threads()
    states = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            agent = cls(env, cls.config_cls(), seed=0, **({"env_kwargs": kwargs} if kwargs else {}))
            assert torch.get_num_threads() == n  # restored after construction
            states.append(agent.state_dict())
    finally:
        torch.set_num_threads(before)
    flat = [{k: v for k, v in _tensors(s)} for s in states]
    assert flat[0].keys() == flat[1].keys() and flat[0]
    for k in flat[0]:
        assert torch.equal(flat[0][k], flat[1][k]), k


def _tensors(obj, prefix=""):
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}/{i}")


def test_maml_and_rl2_get_the_policy_from_the_base(outside_threads) -> None:
    from metarl.agents import MAML, RL2, MAMLConfig, RL2Config

    seen: list[int] = []

    def spy(step):
        def wrapped(*args, **kwargs):
            seen.append(torch.get_num_threads())
            return step(*args, **kwargs)

        return wrapped

    maml = MAML("metarl/Navigation2D-v0", MAMLConfig(meta_batch_size=2, episodes_per_task=2, horizon=5), seed=0)
    maml.sampler.sample = spy(maml.sampler.sample)  # sampling runs under the policy
    rl2 = RL2("metarl/Bandit-v0", RL2Config(num_trials=4, episodes_per_trial=2, num_minibatches=1), env_kwargs={"num_arms": 2, "horizon": 1})
    rl2.sampler.sample = spy(rl2.sampler.sample)
    maml.train_iteration()
    rl2.train_iteration(0)
    assert seen and set(seen) == {1}
    rl2.threads = 2
    seen.clear()
    rl2.train_iteration(1)
    assert set(seen) == {2}
    assert torch.get_num_threads() == outside_threads


# --- `metarl train` and `metarl eval` ----------------------------------------------------------------
def test_train_and_eval_apply_and_record_the_setting(tmp_path, outside_threads, capsys) -> None:
    auto, two = tmp_path / "auto", tmp_path / "two"
    base = ["train", PROBE, "--iterations", "2", "--eval-tasks", "0", "--log-every", "0"]
    assert main([*base, "--out", str(auto)]) == 0
    assert main([*base, "--out", str(two), "--threads", "2"]) == 0
    assert [r["time/threads"] for r in read_metrics(auto / "metrics.jsonl")] == [1, 1]
    assert [r["time/threads"] for r in read_metrics(two / "metrics.jsonl")] == [2, 2]
    assert yaml.safe_load((auto / "config.yaml").read_text())["trainer"]["threads"] == "auto"
    assert yaml.safe_load((two / "config.yaml").read_text())["trainer"]["threads"] == 2
    assert torch.get_num_threads() == outside_threads

    def eval_threads(*flags: str) -> int:
        assert main(["eval", str(two), "--num-tasks", "2", *flags]) == 0
        return json.loads((two / "eval.json").read_text())["agent_extra"]["threads"]

    assert eval_threads() == 2  # the run's recorded setting
    assert eval_threads("--threads", "1") == 1  # the override
    assert eval_threads("--threads", "auto") == 1
    assert torch.get_num_threads() == outside_threads
    capsys.readouterr()
    for bad in ("0", "abc", "-3"):
        assert main([*base, "--out", str(tmp_path / f"bad{bad}"), "--threads", bad]) != 0
        assert main(["eval", str(two), "--threads", bad]) != 0
        err = capsys.readouterr().err
        assert err.count("threads must be 'auto' or a positive int") == 2 and repr(bad) in err
        assert "Traceback" not in err


# ---- coarse task parallelism: parallel_map ----------------------------------------------------------
def test_parallel_map_keeps_the_order_and_uses_threads() -> None:
    import threading

    from metarl.threads import parallel_map

    names = parallel_map(lambda x: (x, threading.current_thread().name), list(range(6)), workers=2)
    assert [x for x, _ in names] == list(range(6))
    assert {n for _, n in names} <= {f"metarl_{i}" for i in range(2)}  # the pool's threads, not the caller's
    assert parallel_map(lambda x: threading.current_thread().name, [1, 2], workers=1) == [threading.current_thread().name] * 2


def test_parallel_map_reraises_the_first_failing_item_after_all_finished() -> None:
    from metarl.threads import parallel_map

    done = []

    def fn(x: int) -> int:
        if x in (1, 3):
            raise ValueError(f"item {x}")
        done.append(x)
        return x

    with pytest.raises(ValueError, match="item 1"):
        parallel_map(fn, [0, 1, 2, 3], workers=2)
    assert sorted(done) == [0, 2]


def test_parallel_map_workers_run_with_the_callers_intra_op_threads(outside_threads) -> None:
    from metarl.threads import parallel_map

    with torch_threads(2):
        assert parallel_map(lambda _: torch.get_num_threads(), [0, 1], workers=2) == [2, 2]
    with torch_threads(1):
        assert parallel_map(lambda _: torch.get_num_threads(), [0, 1], workers=2) == [1, 1]


def test_parallel_map_works_in_a_forked_child() -> None:
    # A forked child inherits the parent's pool object without its threads: it must not wait on them.
    import multiprocessing as mp

    from metarl.threads import parallel_map

    assert parallel_map(lambda x: x + 1, [1, 2], workers=2) == [2, 3]  # the parent's pool exists
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        result = pool.apply_async(parallel_map, (abs, [-1, -2]), {"workers": 2})
        assert result.get(timeout=30) == [1, 2]
