"""Meta-World ML1 / ML10 / ML45 as metarl task families (optional extra: ``pip install -e ".[metaworld]"``).

Meta-World (Yu et al. 2019, "Meta-World: A Benchmark and Evaluation for Multi-Task and Meta
Reinforcement Learning"; Farama-Foundation/Metaworld 3.1.1, ``v3`` environments, reward function
version ``v2``) has 50 Sawyer manipulation environment classes. Within a class, a task is one
``rand_vec``: the object's initial position and the goal, drawn by the class from its
``_random_reset_space`` (Meta-World's ``_make_tasks``). A metarl task is that value as data:
:class:`MetaWorldTask` ``(env_name, rand_vec)``, JSON-serialisable, never a pickled Meta-World
object. Observations hide the goal (``partially_observable=True``, Meta-World's ML setting); the
action is ``[-1, 1]^4``; the horizon is 500 steps; ``info["success"]`` reports Meta-World's
success flag each step (an episode succeeds if it occurs at any step).

Benchmarks (``metaworld/env_dict.py``):

- ``metarl/MetaWorld-ML1-v0`` (``task_name=`` one of the 50, default ``reach-v3``): training
  tasks are fresh goals of that class; the held-out tasks are 40 fixed goals of it, shipped in
  ``held_out/MetaWorld-ML1-<name>.json``, which training never draws (rejected by the sampler).
- ``metarl/MetaWorld-ML10-v0``: train on 10 classes, held out = the 5 published test classes
  (drawer-open, door-close, shelf-place, sweep-into, lever-pull) x their 40 ML1 held-out goals.
- ``metarl/MetaWorld-ML45-v0``: train on 45 classes, held out = bin-picking, box-close,
  hand-insert, door-lock, door-unlock x 40 goals.

``sample_tasks`` draws the **train** split, ``held_out_tasks`` is the **test** split (interleaved
across classes, so ``metarl eval --num-tasks 5`` covers every test class). Three bugs of
Meta-World 3.1.1 do not apply here by construction: its ML1 train split silently equals the test
split (its PR #573; ours are disjoint, tested), its tasks could be re-randomised on reset (PR #143;
ours freeze ``rand_vec`` and a reset never draws), and its registered ids fail for ``ML1-train``
and ``ML10-test`` (ours are plain ``gym.make``/``make_vec`` ids).

Batching: ``make_vec`` gives :class:`MetaWorldVecEnv`, a batched wrapper stepping ``N`` Meta-World
envs in one Python loop (each sub-env an instance of its task's class, reused across tasks of
that class). No native ``mujoco.rollout`` form: Meta-World's actions drive a mocap body and its
observations and rewards are class-specific Python (``evaluate_state``) read from the simulator
after every step, so the C batch would still return to Python per env and step. Meta-World
supports mujoco < 3.17 only, hence its own venv (see README).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from metarl.errors import ConfigError, InvalidTaskError, TaskNotSetError
from metarl.meta_env import BatchedMetaEnv, SingleMetaEnv, TaskDistribution, held_out_rng
from metarl.tasks import Task, array_field

__all__ = [
    "ALL_TASK_NAMES", "ML10_TRAIN", "ML10_TEST", "ML45_TRAIN", "ML45_TEST", "MetaWorldTask",
    "MetaWorldDistribution", "MetaWorldVecEnv", "MetaWorldEnv", "MetaWorldML1VecEnv",
    "MetaWorldML1Env", "MetaWorldML10VecEnv", "MetaWorldML10Env", "MetaWorldML45VecEnv",
    "MetaWorldML45Env", "import_metaworld",
]

#: The 50 Meta-World v3 classes (``metaworld.env_dict.ALL_V3_ENVIRONMENTS``; a test checks equality).
ALL_TASK_NAMES: tuple[str, ...] = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3",
    "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3",
    "door-lock-v3", "door-open-v3", "door-unlock-v3", "hand-insert-v3", "drawer-close-v3",
    "drawer-open-v3", "faucet-open-v3", "faucet-close-v3", "hammer-v3", "handle-press-side-v3",
    "handle-press-v3", "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3",
    "peg-insert-side-v3", "pick-place-wall-v3", "pick-out-of-hole-v3", "reach-v3", "push-back-v3",
    "push-v3", "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3", "plate-slide-back-v3",
    "plate-slide-back-side-v3", "peg-unplug-side-v3", "soccer-v3", "stick-push-v3", "stick-pull-v3",
    "push-wall-v3", "reach-wall-v3", "shelf-place-v3", "sweep-into-v3", "sweep-v3",
    "window-open-v3", "window-close-v3",
)
#: ML10 classes (Yu et al. 2019, Table 1 / ``ML10_V3`` in ``metaworld/env_dict.py``).
ML10_TRAIN: tuple[str, ...] = (
    "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-close-v3",
    "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "sweep-v3", "basketball-v3",
)
ML10_TEST: tuple[str, ...] = ("drawer-open-v3", "door-close-v3", "shelf-place-v3", "sweep-into-v3", "lever-pull-v3")
#: ML45 test classes (Yu et al. 2019, Table 1 / ``ML45_V3``); train = the other 45.
ML45_TEST: tuple[str, ...] = ("bin-picking-v3", "box-close-v3", "hand-insert-v3", "door-lock-v3", "door-unlock-v3")
ML45_TRAIN: tuple[str, ...] = tuple(n for n in ALL_TASK_NAMES if n not in ML45_TEST)

#: Meta-World's episode length (``SawyerXYZEnv.max_path_length``).
HORIZON = 500
#: Held-out goals per test class (Meta-World's docs evaluate on 40 test goals per class).
GOALS_PER_CLASS = 40
OBS_DIM, ACT_DIM = 39, 4


def import_metaworld() -> Any:
    """``import metaworld``, or a :class:`ConfigError` saying how to install it."""
    try:
        import metaworld
    except ImportError as e:
        raise ConfigError(
            f"Meta-World is not installed ({e}); install the extra in its own venv: "
            'pip install -e ".[metaworld]" (it needs mujoco < 3.17; see README "Meta-World")'
        ) from None
    return metaworld


def _env_class(name: str) -> type:
    return import_metaworld().env_dict.ALL_V3_ENVIRONMENTS[name]


# ==== tasks =======================================================================================
@dataclass(frozen=True, eq=False)
class MetaWorldTask(Task):
    """One Meta-World task: the environment class and its ``rand_vec`` (object start and goal).

    >>> t = MetaWorldTask(env_name="reach-v3", rand_vec=[0.0, 0.6, 0.02, 0.1, 0.8, 0.2])
    >>> MetaWorldTask.from_json(t.to_json()) == t
    True
    >>> MetaWorldTask(env_name="reach-v2", rand_vec=[0.0])
    Traceback (most recent call last):
    ...
    metarl.errors.InvalidTaskError: invalid task field 'env_name' = 'reach-v2': not a Meta-World v3 class; did you mean 'reach-v3'?
    """

    env_name: str  # validated in _check (array_field/scalar_field are numeric only)
    rand_vec: np.ndarray = array_field((-1,), doc="object initial position(s) and goal, as the class draws it")

    def _check(self) -> None:
        if self.env_name not in ALL_TASK_NAMES:
            import difflib

            close = difflib.get_close_matches(str(self.env_name), ALL_TASK_NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidTaskError("env_name", self.env_name, f"not a Meta-World v3 class{hint}")
        if self.rand_vec.size == 0:
            raise InvalidTaskError("rand_vec", self.rand_vec.tolist(), "must not be empty")


def to_metaworld_task(task: MetaWorldTask) -> Any:
    """The ``metaworld.types.Task`` that Meta-World's ``set_task`` takes (built here, never stored)."""
    mw = import_metaworld()
    # The payload format of metaworld._make_tasks: rand_vec, env_cls, the ML observability override.
    data = {"rand_vec": np.array(task.rand_vec, dtype=np.float64), "env_cls": _env_class(task.env_name), "partially_observable": True}
    return mw.types.Task(env_name=task.env_name, data=pickle.dumps(data))


# ==== distribution ================================================================================
@cache
def _sampler_env(name: str) -> Any:
    """One instance per class used only to draw ``rand_vec``s with the class's own rules."""
    env = _env_class(name)()
    env._set_task_called = True
    env.seeded_rand_vec = True
    return env


def draw_rand_vec(name: str, seed: int) -> np.ndarray:
    """The ``rand_vec`` class ``name`` draws at a reset after ``env.seed(seed)``.

    The same path as Meta-World's ``_make_tasks`` (unfrozen ``rand_vec``, one reset, read
    ``_last_rand_vec``), so each class's own rejection rules (e.g. goal away from the object)
    apply, but from the env's seeded generator rather than global ``np.random``.
    """
    env = _sampler_env(name)
    env._freeze_rand_vec = False
    env.seed(int(seed))
    env.reset()
    vec = np.array(env._last_rand_vec, dtype=np.float64)
    env._freeze_rand_vec = True
    return vec


class MetaWorldDistribution(TaskDistribution[MetaWorldTask]):
    """Train split: ``train_classes`` (balanced) x fresh goals; held out: ``test_classes`` x 40 shipped goals.

    For ML1 the train and test classes coincide, and :meth:`sample` rejects the held-out goals,
    so the train split never contains a held-out task.
    """

    task_type = MetaWorldTask
    num_held_out = GOALS_PER_CLASS

    def __init__(self, train_classes: Sequence[str], test_classes: Sequence[str]) -> None:
        for name in (*train_classes, *test_classes):
            if name not in ALL_TASK_NAMES:
                MetaWorldTask(env_name=name, rand_vec=[0.0])  # raises with "did you mean"
        self.train_classes = tuple(train_classes)
        self.test_classes = tuple(test_classes)

    def sample(self, rng: np.random.Generator, n: int) -> list[MetaWorldTask]:
        # Balanced classes: each appears floor(n/K) or ceil(n/K) times, in a random order.
        K = len(self.train_classes)
        order = np.concatenate([rng.permutation(K) for _ in range(-(-n // K))])[:n] if n else []
        held = self._held_out_set()
        tasks = []
        for k in order:
            name = self.train_classes[int(k)]
            while True:
                vec = draw_rand_vec(name, int(rng.integers(2**31 - 1)))
                if (name, vec.tobytes()) not in held:
                    break
            tasks.append(MetaWorldTask(env_name=name, rand_vec=vec))
        return tasks

    def check(self, task: Any) -> MetaWorldTask:
        """``task`` as a :class:`MetaWorldTask` of one of this benchmark's classes, or a typed error."""
        task = super().check(task)
        if task.env_name not in (*self.train_classes, *self.test_classes):
            raise InvalidTaskError("env_name", task.env_name, f"not a class of this benchmark {sorted({*self.train_classes, *self.test_classes})}")
        want = _sampler_env(task.env_name)._random_reset_space.low.shape
        if task.rand_vec.shape != want:
            raise InvalidTaskError("rand_vec", task.rand_vec.tolist(), f"{task.env_name} needs shape {want}")
        return task

    def contains(self, task: MetaWorldTask) -> bool:
        if task.env_name not in self.train_classes or (task.env_name, task.rand_vec.tobytes()) in self._held_out_set():
            return False
        space = _sampler_env(task.env_name)._random_reset_space
        return task.rand_vec.shape == space.low.shape and bool(((task.rand_vec >= space.low) & (task.rand_vec <= space.high)).all())

    def _held_out_set(self) -> set[tuple[str, bytes]]:
        if not hasattr(self, "_held"):
            shared = set(self.train_classes) & set(self.test_classes)
            self._held = {(t.env_name, t.rand_vec.tobytes()) for n in shared for t in ml1_held_out(n)}
        return self._held

    def held_out_key(self) -> str | None:
        return None  # assembled from the per-class files in held_out()

    def held_out(self) -> list[MetaWorldTask]:
        """40 goals per test class, interleaved: task ``j`` is goal ``j // C`` of class ``j % C``."""
        per_class = [ml1_held_out(n) for n in self.test_classes]
        return [per_class[c][g] for g in range(GOALS_PER_CLASS) for c in range(len(per_class))]

    def generate_held_out(self) -> list[MetaWorldTask]:
        return [t for n in self.test_classes for t in generate_ml1_held_out(n)]


def generate_ml1_held_out(name: str) -> list[MetaWorldTask]:
    """The recipe of ``held_out/MetaWorld-ML1-<name>.json``: 40 draws seeded from ``held_out_rng``.

    The shipped files, not this recipe, define the held-out tasks (the recipe's floats could
    differ in the last bit across machines and libraries).
    """
    rng = held_out_rng(TaskDistribution.held_out_seed + ALL_TASK_NAMES.index(name))
    return [MetaWorldTask(env_name=name, rand_vec=draw_rand_vec(name, int(rng.integers(2**31 - 1)))) for _ in range(GOALS_PER_CLASS)]


@cache
def _ml1_held_out_cached(name: str) -> tuple[MetaWorldTask, ...]:
    import json
    from importlib import resources

    path = resources.files("metarl.envs").joinpath("held_out", f"MetaWorld-ML1-{name}.json")
    data = json.loads(path.read_text())
    return tuple(MetaWorldTask.from_dict(d) for d in data["tasks"])


def ml1_held_out(name: str) -> list[MetaWorldTask]:
    """The shipped 40 held-out goals of class ``name`` (no Meta-World import needed)."""
    MetaWorldTask(env_name=name, rand_vec=[0.0])  # validates the name
    return list(_ml1_held_out_cached(name))


# ==== batched env =================================================================================
class MetaWorldVecEnv(BatchedMetaEnv[MetaWorldTask]):
    """``N`` Meta-World envs stepped in one loop; sub-env ``i`` runs an instance of its task's class.

    ``step`` returns ``info["success"]`` (``bool[N]``, Meta-World's per-step flag; ``False`` on
    autoreset steps). A reset never draws: the task's ``rand_vec`` is frozen into the instance.
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        train_classes: Sequence[str] = ("reach-v3",),
        test_classes: Sequence[str] = ("reach-v3",),
        max_episode_steps: int = HORIZON,
        reward_function_version: str = "v2",
        **kwargs: Any,
    ) -> None:
        if reward_function_version not in ("v1", "v2"):
            raise ConfigError(f"reward_function_version must be 'v1' or 'v2', got {reward_function_version!r}")
        import_metaworld()
        self.reward_function_version = reward_function_version
        self._envs: list[Any] = [None] * int(num_envs) if isinstance(num_envs, int) and num_envs > 0 else []
        self._names: list[str] = [""] * len(self._envs)
        self._pool: dict[str, list[Any]] = {}
        self._obs = np.zeros((len(self._envs), OBS_DIM))
        self._success = np.zeros(len(self._envs), dtype=bool)
        super().__init__(
            num_envs,
            MetaWorldDistribution(train_classes, test_classes),
            max_episode_steps=max_episode_steps,
            # Meta-World clips each class's observation to its own box; classes differ, so the
            # family's space is unbounded (float64, as Meta-World returns).
            single_observation_space=spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float64),
            single_action_space=spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32),
            **kwargs,
        )

    def _instance(self, name: str) -> Any:
        free = self._pool.setdefault(name, [])
        if free:
            return free.pop()
        env = _env_class(name)(reward_function_version=self.reward_function_version)
        env.max_path_length = self.max_episode_steps
        return env

    def _apply_tasks(self, idx: np.ndarray, tasks: Sequence[MetaWorldTask]) -> None:
        for i, task in zip(idx.tolist(), tasks, strict=True):
            env = self._envs[i]
            if env is None or self._names[i] != task.env_name:
                if env is not None:
                    self._pool.setdefault(self._names[i], []).append(env)
                env = self._envs[i] = self._instance(task.env_name)
                self._names[i] = task.env_name
            env.set_task(to_metaworld_task(task))

    def _reset_state(self, mask: np.ndarray) -> None:
        for i in np.flatnonzero(mask):
            obs, _ = self._envs[i].reset()
            self._obs[i] = obs

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reward = np.zeros(self.num_envs)
        self._success[:] = False
        skip = self._needs_reset if self.autoreset_mode is AutoresetMode.NEXT_STEP else np.zeros(self.num_envs, bool)
        for i in range(self.num_envs):
            if skip[i]:
                continue  # autoreset step: the base class resets it and zeroes the reward
            env = self._envs[i]
            if env.curr_path_length >= env.max_path_length:
                raise TaskNotSetError(f"sub-env {i} finished its {env.max_path_length}-step episode: call reset() first")
            obs, r, _, _, info = env.step(actions[i])
            self._obs[i], reward[i], self._success[i] = obs, r, bool(info["success"])
        return reward, np.zeros(self.num_envs, dtype=bool)  # Meta-World never terminates (ML setting)

    def _observe(self) -> np.ndarray:
        return self._obs.copy()

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(actions)
        info["success"] = self._success.copy()
        info["_success"] = np.ones(self.num_envs, dtype=bool)
        return obs, reward, terminated, truncated, info

    def close(self, **kwargs: Any) -> None:
        for env in [*self._envs, *(e for free in self._pool.values() for e in free)]:
            if env is not None:
                env.close()
        self._envs, self._pool = [], {}


class MetaWorldEnv(SingleMetaEnv[MetaWorldTask]):
    """A single Meta-World env (the batched env with ``N = 1``); ``info["success"]`` each step."""

    batched_cls: ClassVar[type[BatchedMetaEnv]] = MetaWorldVecEnv

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._core.step(np.asarray(action)[None])
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), {"success": bool(info["success"][0])}

    def close(self) -> None:
        self._core.close()


# ==== the three benchmarks ========================================================================
def _ml1_classes(task_name: str) -> dict[str, tuple[str, ...]]:
    if task_name not in ALL_TASK_NAMES:
        MetaWorldTask(env_name=task_name, rand_vec=[0.0])  # typed error with "did you mean"
    return {"train_classes": (task_name,), "test_classes": (task_name,)}


class MetaWorldML1VecEnv(MetaWorldVecEnv):
    """ML1: one class (``task_name``), train goals vs 40 held-out goals."""

    def __init__(self, num_envs: int = 1, *, task_name: str = "reach-v3", **kwargs: Any) -> None:
        super().__init__(num_envs, **_ml1_classes(task_name), **kwargs)


class MetaWorldML10VecEnv(MetaWorldVecEnv):
    """ML10: 10 train classes, 5 held-out test classes."""

    def __init__(self, num_envs: int = 1, **kwargs: Any) -> None:
        super().__init__(num_envs, train_classes=ML10_TRAIN, test_classes=ML10_TEST, **kwargs)


class MetaWorldML45VecEnv(MetaWorldVecEnv):
    """ML45: 45 train classes, 5 held-out test classes."""

    def __init__(self, num_envs: int = 1, **kwargs: Any) -> None:
        super().__init__(num_envs, train_classes=ML45_TRAIN, test_classes=ML45_TEST, **kwargs)


class MetaWorldML1Env(MetaWorldEnv):
    __doc__ = MetaWorldML1VecEnv.__doc__
    batched_cls = MetaWorldML1VecEnv


class MetaWorldML10Env(MetaWorldEnv):
    __doc__ = MetaWorldML10VecEnv.__doc__
    batched_cls = MetaWorldML10VecEnv


class MetaWorldML45Env(MetaWorldEnv):
    __doc__ = MetaWorldML45VecEnv.__doc__
    batched_cls = MetaWorldML45VecEnv


# ==== shipped held-out files ======================================================================
def write_held_out(force: bool = False) -> list[str]:
    """Write ``held_out/MetaWorld-ML1-<name>.json`` for the 50 classes from their recipe.

    Run in the Meta-World venv:
    ``python -c "from metarl.envs.metaworld import write_held_out; write_held_out()"``.

    A shipped file changes only with a new env version: a file whose tasks differ from the
    recipe is left alone unless ``force``.
    """
    from pathlib import Path

    here = Path(__file__).parent / "held_out"
    written = []
    for name in ALL_TASK_NAMES:
        key = f"MetaWorld-ML1-{name}"
        path = here / f"{key}.json"
        tasks = generate_ml1_held_out(name)
        if path.exists() and not force:
            old = [MetaWorldTask.from_dict(d) for d in json.loads(path.read_text())["tasks"]]
            if old != tasks:
                raise SystemExit(f"{path} differs from the recipe; held-out tasks change only with a new env version")
        payload = {
            "key": key,
            "version": 0,
            "recipe": f"metarl.envs.metaworld.generate_ml1_held_out({name!r}) with metaworld 3.1.1",
            "tasks": [t.to_dict() for t in tasks],
        }
        path.write_text(json.dumps(payload) + "\n")
        written.append(str(path))
    return written
