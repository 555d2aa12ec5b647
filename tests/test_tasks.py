"""Task values: validation, immutability, value semantics, JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metarl.envs import BanditTask, Navigation2DTask, TabularMDPTask
from metarl.errors import InvalidTaskError
from metarl.tasks import Task, task_from_json, tasks_from_json, tasks_to_json


def _mdp_task(seed: int = 0, S: int = 3, A: int = 2) -> TabularMDPTask:
    rng = np.random.default_rng(seed)
    return TabularMDPTask(transitions=rng.dirichlet(np.ones(S), size=(S, A)), mean_rewards=rng.normal(size=(S, A)))


EXAMPLES = [
    Navigation2DTask(goal=[0.1, -0.2]),
    BanditTask(probs=[0.1, 0.9, 0.5]),
    _mdp_task(),
]


@pytest.mark.parametrize("task", EXAMPLES, ids=lambda t: type(t).__name__)
def test_json_round_trip_is_exact(task: Task) -> None:
    text = task.to_json()
    assert json.loads(text)["type"] == type(task).__name__
    back = task_from_json(text)
    assert type(back) is type(task)
    assert back == task
    for f in dataclasses.fields(task):
        assert np.array_equal(getattr(back, f.name), getattr(task, f.name))
    assert tasks_from_json(tasks_to_json([task, task])) == [task, task]


@pytest.mark.parametrize("task", EXAMPLES, ids=lambda t: type(t).__name__)
def test_tasks_are_frozen(task: Task) -> None:
    name = dataclasses.fields(task)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(task, name, None)
    with pytest.raises(ValueError):  # arrays are read-only
        getattr(task, name)[(0,) * getattr(task, name).ndim] = 0.5


def test_input_arrays_are_copied() -> None:
    goal = np.array([0.1, 0.2])
    task = Navigation2DTask(goal=goal)
    goal[0] = 9.0
    assert task.goal[0] == 0.1


def test_equality_and_hash_by_value() -> None:
    a, b = Navigation2DTask(goal=[0.1, 0.2]), Navigation2DTask(goal=(0.1, 0.2))
    assert a == b and hash(a) == hash(b)
    assert a != Navigation2DTask(goal=[0.1, 0.3])
    assert len({a, b}) == 1


@pytest.mark.parametrize(
    ("make", "field", "reason"),
    [
        (lambda: Navigation2DTask(goal=[math.nan, 0.0]), "goal", "finite"),
        (lambda: Navigation2DTask(goal=[0.0, math.inf]), "goal", "finite"),
        (lambda: Navigation2DTask(goal=[0.0, 0.0, 0.0]), "goal", "shape"),
        (lambda: Navigation2DTask(goal="north"), "goal", "numeric"),
        (lambda: BanditTask(probs=[0.5, 1.5]), "probs", "[0.0, 1.0]"),
        (lambda: BanditTask(probs=[-0.1, 0.5]), "probs", "[0.0, 1.0]"),
        (lambda: BanditTask(probs=[0.5]), "probs", "at least 2 arms"),
        (lambda: BanditTask(probs=[[0.5, 0.5]]), "probs", "shape"),
        (lambda: TabularMDPTask(transitions=np.full((2, 1, 2), 0.4), mean_rewards=np.zeros((2, 1))), "transitions", "sum to 1"),
        (lambda: TabularMDPTask(transitions=np.full((2, 1, 2), 0.5), mean_rewards=np.zeros((2, 2))), "mean_rewards", "shape"),
        (lambda: TabularMDPTask(transitions=np.full((2, 1, 3), 1 / 3), mean_rewards=np.zeros((2, 1))), "transitions", "[S, A, S]"),
    ],
)
def test_invalid_values_name_field_and_value(make, field: str, reason: str) -> None:
    with pytest.raises(InvalidTaskError) as info:
        make()
    assert info.value.field == field
    assert reason in str(info.value)
    assert repr(field) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_from_dict_errors_are_typed() -> None:
    with pytest.raises(InvalidTaskError, match="unknown task type"):
        Task.from_dict({"type": "NoSuchTask"})
    with pytest.raises(InvalidTaskError, match="missing"):
        Task.from_dict({"type": "Navigation2DTask"})
    with pytest.raises(InvalidTaskError, match="not a field"):
        Task.from_dict({"type": "Navigation2DTask", "goal": [0, 0], "speed": 1})
    with pytest.raises(InvalidTaskError, match="expected a BanditTask"):
        BanditTask.from_dict({"type": "Navigation2DTask", "goal": [0, 0]})
    with pytest.raises(InvalidTaskError, match="not valid JSON"):
        Task.from_json("{goal: 1")


finite = st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e6, max_value=1e6)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=2, max_size=2))
def test_any_finite_goal_round_trips(goal: list[float]) -> None:
    task = Navigation2DTask(goal=goal)
    assert Task.from_json(task.to_json()) == task


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=2, max_size=12).filter(
        lambda p: any(not (0.0 <= x <= 1.0) for x in p)
    )
)
def test_bandit_probs_outside_unit_interval_rejected(probs: list[float]) -> None:
    with pytest.raises(InvalidTaskError) as info:
        BanditTask(probs=probs)
    assert info.value.field == "probs"


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**32 - 1), st.floats(1e-3, 0.5))
def test_mdp_rows_not_summing_to_one_rejected(S: int, A: int, seed: int, excess: float) -> None:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(S, A))
    P[rng.integers(S), rng.integers(A)] *= 1.0 + excess
    with pytest.raises(InvalidTaskError) as info:
        TabularMDPTask(transitions=P, mean_rewards=np.zeros((S, A)))
    assert info.value.field == "transitions"
