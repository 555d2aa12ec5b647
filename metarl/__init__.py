"""metarl: meta-reinforcement learning on Gymnasium.

>>> import metarl
>>> env = metarl.make("metarl/Navigation2D-v0")
>>> tasks = env.unwrapped.sample_tasks(2, seed=0)
>>> venv = metarl.make_vec("metarl/Navigation2D-v0", num_envs=2)
>>> obs, info = venv.reset(seed=0, options={"tasks": tasks})
>>> obs.shape
(2, 2)
"""

from __future__ import annotations

from metarl import errors, threads
from metarl.meta_env import BatchedMetaEnv, SingleMetaEnv, TaskDistribution
from metarl.registry import make, make_vec, registered_envs
from metarl.tasks import Task

__version__ = "0.1.0"

__all__ = [
    "errors", "threads", "Task", "TaskDistribution", "BatchedMetaEnv", "SingleMetaEnv",
    "make", "make_vec", "registered_envs", "__version__",
]

# Importing metarl registers every metarl/... id with Gymnasium (as `import ale_py` does);
# `gym.make("metarl:metarl/Navigation2D-v0")` imports it on demand.
import metarl.envs  # noqa: E402,F401
