"""metarl.envs: task families, registered with Gymnasium on import.

>>> import gymnasium as gym
>>> import metarl.envs
>>> "metarl/Navigation2D-v0" in gym.registry
True
"""

from __future__ import annotations

from metarl.registry import register_meta_env

from .bandit import BanditEnv, BanditTask, BanditVecEnv
from .navigation import Navigation2DEnv, Navigation2DTask, Navigation2DVecEnv
from .tabular_mdp import TabularMDPEnv, TabularMDPTask, TabularMDPVecEnv

__all__ = [
    "BanditEnv", "BanditTask", "BanditVecEnv",
    "Navigation2DEnv", "Navigation2DTask", "Navigation2DVecEnv",
    "TabularMDPEnv", "TabularMDPTask", "TabularMDPVecEnv",
]

register_meta_env(
    "metarl/Navigation2D-v0",
    entry_point="metarl.envs.navigation:Navigation2DEnv",
    vector_entry_point="metarl.envs.navigation:Navigation2DVecEnv",
    varies="goal",
    description="point at origin, goal ~ U[-0.5,0.5]^2, action clipped to ±0.1, reward -||p-g||, H=100",
    kwargs={"goal_range": (-0.5, 0.5), "max_episode_steps": 100},
    source="Finn et al. 2017 (MAML) §5.2",
)
register_meta_env(
    "metarl/Bandit-v0",
    entry_point="metarl.envs.bandit:BanditEnv",
    vector_entry_point="metarl.envs.bandit:BanditVecEnv",
    varies="arm probabilities",
    description="num_arms Bernoulli arms, p ~ U[0,1]; one episode = horizon pulls",
    kwargs={"num_arms": 5, "horizon": 100},
    source="Duan et al. 2016 (RL2) §3.1",
)
register_meta_env(
    "metarl/TabularMDP-v0",
    entry_point="metarl.envs.tabular_mdp:TabularMDPEnv",
    vector_entry_point="metarl.envs.tabular_mdp:TabularMDPVecEnv",
    varies="transitions P and mean rewards mu",
    description="10 states, 5 actions, H=10; P ~ Dirichlet(1), mu ~ N(1,1), r ~ N(mu,1), start 0, one-hot obs",
    kwargs={"num_states": 10, "num_actions": 5, "max_episode_steps": 10},
    source="Duan et al. 2016 (RL2) §3.2",
)
from . import metaworld as _metaworld  # noqa: E402,F401  (task type only: Meta-World is imported on make)
from . import mujoco as _mujoco  # noqa: E402,F401  (registers the MuJoCo ids)

# Meta-World (optional extra, own venv): registered always, `make` says how to install it if absent.
for _name, _cls, _kwargs, _what in (
    ("ML1", "MetaWorldML1", {"task_name": "reach-v3"}, "one class (task_name, any of 50): goal and object position"),
    ("ML10", "MetaWorldML10", {}, "10 train classes x goals; held out: 5 test classes x 40 goals"),
    ("ML45", "MetaWorldML45", {}, "45 train classes x goals; held out: 5 test classes x 40 goals"),
):
    register_meta_env(
        f"metarl/MetaWorld-{_name}-v0",
        entry_point=f"metarl.envs.metaworld:{_cls}Env",
        vector_entry_point=f"metarl.envs.metaworld:{_cls}VecEnv",
        varies=_what,
        description="Meta-World 3.1.1 v3 envs, reward v2, goal hidden, H=500, info['success']; held-out = test split",
        kwargs={**_kwargs, "max_episode_steps": 500},
        source="Yu et al. 2019 (Meta-World) §4; Farama-Foundation/Metaworld 3.1.1",
    )
