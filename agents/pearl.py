"""PEARL: off-policy meta-RL by probabilistic context inference and posterior sampling.

Rakelly et al. 2019, "Efficient Off-Policy Meta-Reinforcement Learning via Probabilistic Context
Variables" (reference code: katerakelly/oyster). A permutation-invariant encoder turns a context of
a task's transitions ``(s, a, r)`` into a belief ``q(z | c)`` over a latent task variable; SAC
(Haarnoja et al. 2018) trains an actor ``π(a | s, z)`` and critics ``Q(s, a, z)`` on replayed data
of a fixed set of training tasks. The critic loss also trains the encoder, together with a KL
penalty to the prior ``N(0, I)`` (the information bottleneck, §4.1). At test time the agent
explores by posterior sampling (§4.3): the first episodes act with ``z`` from the prior, each
later one with ``z`` from the posterior of everything seen so far in the task.

Encoders (``encoder=``, :mod:`metarl.encoders`): ``np`` (PEARL's product of Gaussians), ``mean``
(Prototypical Networks) and ``attention`` (Matching Networks).

SAC here is the twin-Q form with target Q networks (Haarnoja et al. 2018b, "SAC: Algorithms and
Applications"); PEARL's code used the first SAC's extra V network, whose fixed point is the
same. PEARL's temperature is fixed (``auto_alpha=False``, as its presets here): its ``reward_scale``
(5 for MuJoCo) weighs reward against entropy; ``auto_alpha`` (the small default run) learns ``α``
against a target entropy instead.

The file reads top to bottom: config → networks → losses → data collection → SAC update → agent
API. Replay storage (:mod:`metarl.replay`), encoders, the sampler seam and checkpoints live in
:mod:`metarl`.

>>> from metarl.agents.pearl import PEARL, PEARLConfig
>>> cfg = PEARLConfig(num_train_tasks=4, num_tasks_sample=2, meta_batch=2, num_initial_steps=10,
...                   num_steps_prior=10, num_extra_rl_steps_posterior=10, num_train_steps_per_itr=2,
...                   batch_size=8, embedding_batch_size=8, hidden_sizes=(8,), encoder_hidden_sizes=(8,))
>>> agent = PEARL("metarl/Navigation2D-v0", cfg, env_kwargs={"max_episode_steps": 10})
>>> metrics = agent.train_iteration(0)
>>> metrics["env_steps"] <= 4 * 10 + 2 * 20      # initial data on 4 tasks, then 2 tasks x 2 episodes
True
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

import metarl
from metarl.agent import Agent, EvalResult, resolve_device
from metarl.config import check_numbers, number_range
from metarl.encoders import (
    ENCODERS,
    ContextEncoder,
    kl_to_standard_normal,
    make_encoder,
    mlp,
    sample_latent,
)
from metarl.errors import ConfigError, MetaRLWarning, TrainingDivergedError
from metarl.meta_env import check_seed
from metarl.registry import check_env_id
from metarl.replay import TaskReplay, Transitions
from metarl.samplers import EnvSpec, LatentPolicySpec, LocalSampler, Sampler
from metarl.sampling import Rollout
from metarl.tasks import Task

__all__ = ["PEARLConfig", "TanhGaussianActor", "TwinQ", "PEARL", "sac_target", "check_config", "derived"]


# ====================================================================================== config
@dataclass
class PEARLConfig:
    """PEARL hyperparameters (every field is a ``metarl train pearl`` flag).

    The defaults are the small setting of the default run (Navigation2D with ``H = 20``, about a
    minute on a laptop); the paper's values (``configs/default.py`` of PEARL's code, noted per
    field) are in the ``pearl-halfcheetah-*`` presets."""

    iterations: int = 30
    """Iterations ``metarl train`` runs when ``--iterations`` is not given (PEARL: 500 on MuJoCo)."""
    encoder: Literal["np", "mean", "attention"] = "mean"
    """Context encoder: np (product of Gaussians, PEARL), mean (Prototypical Nets), attention (Matching Nets)."""
    num_train_tasks: int = 20
    """Fixed training tasks drawn from the env's distribution with the run seed (one replay buffer each)."""
    train_tasks: Literal["sample", "held_out"] = "sample"
    """Where the training tasks come from: sample (num_train_tasks draws from the env's distribution) or held_out (the first num_train_tasks held-out tasks: PEARL trains and tests on both HalfCheetahDir directions)."""
    latent_dim: int = 5
    """Size of the latent task variable z."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layers of the actor and of each critic (PEARL: 3 x 300)."""
    encoder_hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layers of the context encoder (PEARL: 3 x 200)."""
    meta_batch: int = 8
    """Training tasks per gradient step (PEARL: 16); the KL is summed over them, the SAC losses averaged."""
    num_initial_steps: int = 100
    """Transitions per training task collected with z ~ prior before the first update (PEARL: 2000)."""
    num_tasks_sample: int = 5
    """Training tasks that get new data each iteration (drawn without replacement)."""
    num_steps_prior: int = 40
    """Transitions per sampled task with z ~ prior, to the RL and the encoder buffer (PEARL: 400)."""
    num_steps_posterior: int = 0
    """Transitions per sampled task with z ~ posterior (to the RL and the encoder buffer)."""
    num_extra_rl_steps_posterior: int = 40
    """Transitions per sampled task with z ~ posterior, to the RL buffer only (PEARL: 400)."""
    num_train_steps_per_itr: int = 100
    """SAC gradient steps per iteration (PEARL: 2000)."""
    batch_size: int = 64
    """RL transitions per task per gradient step (PEARL: 256)."""
    embedding_batch_size: int = 32
    """Context transitions per task per gradient step and for posterior collection (PEARL: 64)."""
    replay_capacity: int = 5000
    """RL transitions kept per training task (PEARL keeps 10^6; storage is preallocated here)."""
    discount: float = field(default=0.9, metadata=number_range(0.0, 1.0))
    """RL discount γ (PEARL: 0.99; 0.9 on its 20-step point-robot tasks)."""
    soft_target_tau: float = field(default=0.005, metadata=number_range(0.0, 1.0))
    """Polyak rate of the target critics."""
    policy_lr: float = 3e-3
    """Adam step size of the actor (PEARL: 3e-4)."""
    qf_lr: float = 3e-3
    """Adam step size of the critics (PEARL: 3e-4)."""
    context_lr: float = 3e-3
    """Adam step size of the encoder (PEARL: 3e-4)."""
    reward_scale: float = 5.0
    """Rewards are multiplied by this in the Bellman target (with a fixed alpha, the reward/entropy trade-off)."""
    alpha: float = 1.0
    """Entropy temperature: fixed unless auto_alpha (PEARL: fixed at 1, with reward_scale 5); the initial value with auto_alpha."""
    auto_alpha: bool = True
    """Learn alpha against target_entropy (Haarnoja et al. 2018b) instead of keeping it fixed (PEARL: off)."""
    target_entropy: float | None = field(default=None, metadata=number_range())
    """Target entropy of auto_alpha; None: -action_dim."""
    kl_lambda: float = 0.01
    """Weight of the KL(q(z|c) || N(0, I)) term, summed over the meta-batch as in PEARL (PEARL: 0.1)."""
    policy_mean_reg: float = 1e-3
    """Weight of the actor's mean^2 penalty (PEARL/rlkit)."""
    policy_std_reg: float = 1e-3
    """Weight of the actor's log_std^2 penalty (PEARL/rlkit)."""
    use_next_obs_in_context: bool = True
    """Context transitions include s' (PEARL: off, except where dynamics differ)."""
    horizon: int = 0
    """Steps per episode (0: the env's time limit)."""
    num_exp_traj_eval: int = 1
    """Evaluation: episodes with z ~ prior before posterior sampling starts (PEARL's num_exp_traj_eval)."""
    eval_episodes: int = 3
    """Evaluation: episodes per trial on a held-out task (PEARL: 600 steps of H = 200)."""
    eval_trials_per_task: int = 2
    """Evaluation: independent trials per held-out task (their mean is the task's score)."""
    eval_deterministic: bool = True
    """Evaluation acts with the actor's mean (PEARL's eval_deterministic)."""
    sample_block: int = 64
    """Sub-envs per actor forward while sampling, and the unit a distributed sampler shards by."""


def check_config(config: PEARLConfig) -> PEARLConfig:
    """Raise :class:`ConfigError` naming the first invalid field."""
    if not isinstance(config, PEARLConfig):
        raise ConfigError(f"PEARL needs a PEARLConfig, got {type(config).__name__}")
    if config.train_tasks not in ("sample", "held_out"):
        raise ConfigError(f"PEARLConfig.train_tasks must be 'sample' or 'held_out', got {config.train_tasks!r}")
    if config.encoder not in ENCODERS:
        raise ConfigError(f"PEARLConfig.encoder must be one of {list(ENCODERS)}, got {config.encoder!r}")
    # num_initial_steps >= 1: every task's buffers must hold data before the first update samples it.
    positive = ("iterations", "num_train_tasks", "num_initial_steps", "latent_dim", "meta_batch", "num_tasks_sample", "num_steps_prior", "batch_size",
                "embedding_batch_size", "replay_capacity", "eval_episodes", "eval_trials_per_task", "sample_block")
    non_negative = ("num_steps_posterior", "num_extra_rl_steps_posterior", "num_train_steps_per_itr", "horizon", "num_exp_traj_eval")
    for name in positive + non_negative:
        v = getattr(config, name)
        low = 1 if name in positive else 0
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ConfigError(f"PEARLConfig.{name} must be an int >= {low}, got {v!r}")
    for name in ("hidden_sizes", "encoder_hidden_sizes"):
        v = getattr(config, name)
        if not isinstance(v, (tuple, list)) or not v or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in v):
            raise ConfigError(f"PEARLConfig.{name} must be a non-empty tuple of positive ints, got {v!r}")
    if config.num_tasks_sample > config.num_train_tasks:
        raise ConfigError(f"PEARLConfig.num_tasks_sample = {config.num_tasks_sample} exceeds num_train_tasks = {config.num_train_tasks}")
    if config.num_exp_traj_eval > config.eval_episodes:
        raise ConfigError(f"PEARLConfig.num_exp_traj_eval = {config.num_exp_traj_eval} exceeds eval_episodes = {config.eval_episodes}")
    for name in ("policy_lr", "qf_lr", "context_lr", "reward_scale", "alpha"):
        v = getattr(config, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"PEARLConfig.{name} must be a finite number > 0, got {v!r}")
    return check_numbers(config, source="PEARLConfig")


@dataclass(frozen=True)
class Derived:
    """Values computed from the config and the env (never written back into the config)."""

    horizon: int
    initial_episodes: int
    prior_episodes: int
    posterior_episodes: int
    extra_episodes: int
    context_dim: int


def derived(config: PEARLConfig, horizon: int, obs_dim: int, act_dim: int) -> Derived:
    """Episodes per phase (PEARL counts transitions: ``ceil(steps / H)`` episodes of ``H`` steps)."""
    H = config.horizon or horizon
    eps = lambda steps: -(-steps // H)  # noqa: E731
    return Derived(
        horizon=H,
        initial_episodes=eps(config.num_initial_steps),
        prior_episodes=eps(config.num_steps_prior),
        posterior_episodes=eps(config.num_steps_posterior),
        extra_episodes=eps(config.num_extra_rl_steps_posterior),
        context_dim=obs_dim * (2 if config.use_next_obs_in_context else 1) + act_dim + 1,
    )


# ==================================================================================== networks
class TanhGaussianActor(nn.Module):
    """``π(a | s, z)``: a Gaussian over pre-squash ``u``, ``a = low + (tanh(u) + 1)/2 · (high − low)``.

    Args:
        input_dim: ``obs_dim + latent_dim``.
        action_space: a bounded ``Box``.
        hidden_sizes: hidden layers.
    """

    LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # rlkit's TanhGaussianPolicy bounds

    def __init__(self, input_dim: int, action_space: spaces.Box, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        act_dim = int(np.prod(action_space.shape))
        self.body = nn.Sequential(mlp([input_dim, *hidden_sizes]), nn.ReLU())
        self.mean = nn.Linear(hidden_sizes[-1], act_dim)
        self.log_std = nn.Linear(hidden_sizes[-1], act_dim)
        low = torch.as_tensor(action_space.low, dtype=torch.float32).reshape(-1)
        high = torch.as_tensor(action_space.high, dtype=torch.float32).reshape(-1)
        self.register_buffer("center", (high + low) / 2)
        self.register_buffer("half_range", (high - low) / 2)

    def dist(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)`` of the pre-squash Gaussian for inputs ``x [n, obs_dim + L]``."""
        h = self.body(x)
        return self.mean(h), self.log_std(h).clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    def squash(self, u: Tensor) -> Tensor:
        """Pre-squash ``u`` -> an action inside the box."""
        return self.center + self.half_range * torch.tanh(u)

    def rsample(self, x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Reparameterised ``(action, log π, mean, log_std)``.

        ``log π`` is the density of the action in the box normalised to ``[-1, 1]`` (the tanh
        Jacobian included, the box's scale not): PEARL runs its envs in rlkit's
        ``NormalizedBoxEnv``, so its temperature and target entropy ``-|A|`` are on that scale.
        """
        mean, log_std = self.dist(x)
        eps = torch.randn(mean.shape, generator=generator).to(mean.device)
        u = mean + log_std.exp() * eps
        normal = -0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        # log|d tanh(u) / d u| = log(1 - tanh(u)^2) in the stable form 2 (log 2 - u - softplus(-2u))
        # (as in Spinning Up's SAC).
        log_det = 2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))
        return self.squash(u), (normal - log_det).sum(-1), mean, log_std


class TwinQ(nn.Module):
    """Two critics ``Q_j(s, a, z)`` (clipped double Q, Fujimoto et al. 2018): ``x -> [2, n]``."""

    def __init__(self, input_dim: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.q1 = mlp([input_dim, *hidden_sizes, 1])
        self.q2 = mlp([input_dim, *hidden_sizes, 1])

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)])


# ====================================================================================== losses
def sac_target(rewards: Tensor, terminals: Tensor, next_q: Tensor, next_log_pi: Tensor, *, alpha: float | Tensor, discount: float, reward_scale: float) -> Tensor:
    """Soft Bellman target ``r·scale + γ (1 − d) (min_j Q̄_j(s', a') − α log π(a' | s'))``.

    Args:
        rewards, terminals, next_log_pi: ``[n]``; ``next_q``: ``[2, n]`` target critics at ``(s', a')``.

    >>> sac_target(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([[2.0], [3.0]]), torch.tensor([0.5]),
    ...            alpha=0.1, discount=0.9, reward_scale=2.0)
    tensor([3.7550])
    """
    soft_v = next_q.min(0).values - alpha * next_log_pi
    return rewards * reward_scale + discount * (1.0 - terminals) * soft_v


# ===================================================================================== agent
class PEARL(Agent):
    """PEARL agent: SAC with a context encoder over a fixed set of training tasks.

    Args:
        env_id: a registered meta-env id with a continuous (Box) action space.
        config: :class:`PEARLConfig`.
        seed: seeds the training tasks, networks, env steps, action noise and replay sampling.
        device: where networks, replay buffers and updates live (envs step on CPU).
        env_kwargs: kwargs of the env (e.g. ``{"max_episode_steps": 20}``).
    """

    name: ClassVar[str] = "pearl"
    config_cls: ClassVar[type] = PEARLConfig
    default_env: ClassVar[str] = "metarl/Navigation2D-v0"
    default_env_kwargs: ClassVar[dict[str, Any]] = {"max_episode_steps": 20}
    headline: ClassVar[str] = "rollout/posterior_return"

    def __init__(
        self,
        env_id: str = "metarl/Navigation2D-v0",
        config: PEARLConfig | None = None,
        *,
        seed: int = 0,
        device: str = "cpu",
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        config = check_config(config if config is not None else PEARLConfig())
        seed = check_seed(seed)
        self.torch_device = resolve_device(device)
        super().__init__(check_env_id(env_id), config, seed=int(seed), device=str(device))
        if env_kwargs is None and env_id == self.default_env:
            env_kwargs = dict(self.default_env_kwargs)
        self.env_kwargs = dict(env_kwargs or {})
        self.env_spec = EnvSpec(env_id, self.env_kwargs)
        venv = metarl.make_vec(env_id, 1, **self.env_kwargs)
        self.distribution = venv.unwrapped.distribution
        obs_space, act_space = venv.single_observation_space, venv.single_action_space
        if not isinstance(act_space, spaces.Box) or not np.all(np.isfinite(act_space.low)) or not np.all(np.isfinite(act_space.high)):
            raise ConfigError(f"PEARL needs a bounded Box action space; {env_id} has {act_space}")
        self.observation_space, self.action_space = obs_space, act_space
        self.obs_dim, self.act_dim = int(np.prod(obs_space.shape)), int(np.prod(act_space.shape))
        self.d = derived(config, int(venv.unwrapped.max_episode_steps), self.obs_dim, self.act_dim)

        # Owned generators (never the global RNGs): numpy for tasks and env seeds; CPU torch
        # generators for z, action noise and replay sampling, so CPU and GPU runs draw alike.
        self.np_rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0x9E,)))
        if config.train_tasks == "held_out":
            held_out = list(venv.unwrapped.held_out_tasks())
            if config.num_train_tasks > len(held_out):
                raise ConfigError(f"PEARLConfig.num_train_tasks = {config.num_train_tasks} exceeds the {len(held_out)} held-out tasks of {env_id} (train_tasks='held_out')")
            self.train_tasks: list[Task] = held_out[: config.num_train_tasks]
            # Loud on purpose: evaluation then scores tasks the agent trained on (PEARL's own
            # HalfCheetahDir protocol, two directions for both), not generalisation to new tasks.
            warnings.warn(
                f"PEARL train_tasks='held_out': training on the first {config.num_train_tasks} held-out tasks of {env_id}; "
                "evaluation on them measures fitting, not generalisation (eval.json: agent_extra.held_out_tasks_trained_on)",
                MetaRLWarning,
                stacklevel=2,
            )
        else:
            self.train_tasks = self.distribution.sample(self.np_rng, config.num_train_tasks)
        held_out_set = set(venv.unwrapped.held_out_tasks())
        #: How many of the env's held-out tasks are training tasks (reported by :meth:`evaluate`).
        self.held_out_trained_on = sum(t in held_out_set for t in self.train_tasks)
        venv.close()
        self.z_gen = torch.Generator().manual_seed(self.seed + 1)
        self.update_gen = torch.Generator().manual_seed(self.seed + 2)
        L, D = config.latent_dim, self.obs_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.encoder: ContextEncoder = make_encoder(config.encoder, self.d.context_dim, L, config.encoder_hidden_sizes)
            self.actor = TanhGaussianActor(D + L, act_space, config.hidden_sizes)
            self.critic = TwinQ(D + self.act_dim + L, config.hidden_sizes)
            self.critic_target = TwinQ(D + self.act_dim + L, config.hidden_sizes)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        for net in (self.encoder, self.actor, self.critic, self.critic_target):
            net.to(self.torch_device)
        self.log_alpha = torch.tensor(math.log(config.alpha), device=self.torch_device, requires_grad=config.auto_alpha)
        self.target_entropy = float(config.target_entropy if config.target_entropy is not None else -self.act_dim)
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "actor": torch.optim.Adam(self.actor.parameters(), lr=config.policy_lr),
            "critic": torch.optim.Adam(self.critic.parameters(), lr=config.qf_lr),
            "encoder": torch.optim.Adam(self.encoder.parameters(), lr=config.context_lr),
        }
        if config.auto_alpha:
            self.optimizers["alpha"] = torch.optim.Adam([self.log_alpha], lr=config.policy_lr)
        # The two buffers of PEARL §4.2: RL data of everything collected, and the encoder's recent
        # on-task data (cleared each time a task gets new data, so contexts follow the current policy).
        n, dev = config.num_train_tasks, self.torch_device
        enc_capacity = max(self.d.initial_episodes, self.d.prior_episodes + self.d.posterior_episodes) * self.d.horizon
        self.rl_buffer = TaskReplay(n, config.replay_capacity, D, self.act_dim, dev)
        self.enc_buffer = TaskReplay(n, max(enc_capacity, 1), D, self.act_dim, dev)
        #: Where rollouts come from (metarl.samplers): local by default, ``RaySampler`` to distribute.
        self.sampler: Sampler = LocalSampler()
        self.iteration = 0
        self.env_steps = 0

    def held_out_tasks(self) -> list[Task]:
        """The env family's fixed held-out tasks (what ``metarl eval`` evaluates on)."""
        venv = metarl.make_vec(self.env_id, 1, **self.env_kwargs)
        try:
            return list(venv.unwrapped.held_out_tasks())
        finally:
            venv.close()

    # ------------------------------------------------------------------------ context
    def _context(self, batch: Transitions) -> Tensor:
        """Encoder input ``[..., context_dim]``: ``s ⊕ a ⊕ r`` (``⊕ s'`` with use_next_obs_in_context)."""
        parts = [batch.obs, batch.actions, batch.rewards.unsqueeze(-1)]
        if self.config.use_next_obs_in_context:
            parts.append(batch.next_obs)
        return torch.cat(parts, -1)

    def _posterior_z(self, task_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(z, mean, var)`` ``[M, L]`` from a context of ``embedding_batch_size`` transitions per task."""
        ctx = self._context(self.enc_buffer.sample(task_ids, self.config.embedding_batch_size, self.update_gen))
        mean, var = self.encoder(ctx)
        z = sample_latent(mean, var, self.z_gen)
        return z, mean, var

    # --------------------------------------------------------------------- collection
    def _collect(self, tasks: Sequence[Task], z: Tensor, episodes: int, *, seed: int, action_seed: int, deterministic: bool = False) -> Rollout:
        """``len(tasks) × episodes`` episodes (task-major), sub-env ``i`` acting with ``z[i]``."""
        spec = LatentPolicySpec(self.actor, z.detach(), int(action_seed), deterministic, self.config.sample_block)
        return self.sampler.sample(self.env_spec, spec, list(tasks), episodes=episodes, horizon=self.d.horizon, seed=int(seed), device=self.torch_device)

    @staticmethod
    def _transitions(ro: Rollout) -> tuple[Transitions, Tensor]:
        """A rollout's transitions ``[T, N, ...]`` and its ``valid [T, N]`` mask (bool).

        With Gymnasium's next-step autoreset the observation after an episode's last step is the
        next row of ``obs`` (or ``next_obs`` after the last step), so ``s'`` is exact for every
        valid step.
        """
        next_obs = torch.cat([ro.obs[1:], ro.next_obs.unsqueeze(0)])
        return Transitions(ro.obs, ro.actions, ro.rewards, next_obs, ro.terminated.float()), ro.valid > 0

    def _store(self, ro: Rollout, task_ids: Tensor, buffers: Sequence[TaskReplay]) -> int:
        """Add the valid steps of ``ro`` (sub-env ``i`` of training task ``task_ids[i]``) to ``buffers``."""
        tr, valid = self._transitions(ro)
        ids = task_ids.to(valid.device).unsqueeze(0).expand_as(valid)
        # Time-major flattening keeps each task's transitions in arrival order within a sub-env.
        flat = [x[valid] for x in tr]
        for buf in buffers:
            buf.add(ids[valid], *flat)
        return int(valid.sum())

    def _gather(self, task_idx: np.ndarray, episodes: int, z: Tensor, buffers: Sequence[TaskReplay]) -> tuple[int, Rollout]:
        tasks = [self.train_tasks[i] for i in task_idx]
        seed = int(self.np_rng.integers(2**31 - 1))
        action_seed = int(self.np_rng.integers(2**31 - 1))
        ro = self._collect(tasks, z, episodes, seed=seed, action_seed=action_seed)
        ids = torch.as_tensor(np.repeat(task_idx, episodes), dtype=torch.long)
        return self._store(ro, ids, buffers), ro

    def _prior(self, n: int) -> Tensor:
        mean, var = self.encoder.prior(n, self.torch_device)
        return sample_latent(mean, var, self.z_gen)

    def _collect_iteration(self) -> tuple[int, dict[str, float]]:
        """PEARL Algorithm 1's data collection: initial data once, then prior and posterior data
        on ``num_tasks_sample`` tasks (the encoder buffer of each is emptied first)."""
        cfg, d = self.config, self.d
        steps, stats = 0, {}
        with torch.no_grad():
            if self.rl_buffer.transitions() == 0:
                idx = np.arange(cfg.num_train_tasks)
                n, _ = self._gather(idx, d.initial_episodes, self._prior(len(idx) * d.initial_episodes), (self.rl_buffer, self.enc_buffer))
                steps += n
            idx = np.sort(self.np_rng.choice(cfg.num_train_tasks, cfg.num_tasks_sample, replace=False))
            self.enc_buffer.clear(idx)
            n, ro = self._gather(idx, d.prior_episodes, self._prior(len(idx) * d.prior_episodes), (self.rl_buffer, self.enc_buffer))
            steps += n
            stats["rollout/prior_return"] = float(ro.episode_returns.mean())
            for episodes, buffers in ((d.posterior_episodes, (self.rl_buffer, self.enc_buffer)), (d.extra_episodes, (self.rl_buffer,))):
                if not episodes:
                    continue
                # One context draw (and z) per episode, as PEARL's update_post_train = 1 re-infers the
                # posterior after every trajectory. The episodes of a phase run in parallel, so every
                # context comes from the encoder buffer as it stood before the phase (with
                # num_steps_posterior = 0, as in the presets, that is the same buffer either way), and
                # every episode acts with a posterior z (Algorithm 1); oyster's collect_data starts
                # each phase from the prior, so its first trajectory there acts with z ~ prior.
                z, _, _ = self._posterior_z(torch.as_tensor(np.repeat(idx, episodes)))
                n, ro = self._gather(idx, episodes, z, buffers)
                steps += n
                stats["rollout/posterior_return"] = float(ro.episode_returns.mean())
        return steps, stats

    # ---------------------------------------------------------------------- SAC update
    def _update(self) -> dict[str, float]:
        """One gradient step on ``meta_batch`` training tasks (PEARL Algorithm 1, lines 10-17)."""
        cfg = self.config
        M, B = cfg.meta_batch, cfg.batch_size
        # Tasks with replacement, as PEARL's np.random.choice(train_tasks, meta_batch).
        task_ids = torch.randint(cfg.num_train_tasks, (M,), generator=self.update_gen)
        batch = self.rl_buffer.sample(task_ids, B, self.update_gen)
        ctx = self._context(self.enc_buffer.sample(task_ids, cfg.embedding_batch_size, self.update_gen))
        mean, var = self.encoder(ctx)
        z = sample_latent(mean, var, self.z_gen)  # [M, L], gradients reach the encoder
        z_rows = z.unsqueeze(1).expand(M, B, -1).reshape(M * B, -1)
        obs, actions = batch.obs.reshape(M * B, -1), batch.actions.reshape(M * B, -1)
        next_obs = batch.next_obs.reshape(M * B, -1)
        rewards, terminals = batch.rewards.reshape(-1), batch.terminals.reshape(-1)
        alpha = self.log_alpha.exp().detach()

        # Critic + encoder: soft Bellman error (the encoder learns through Q, PEARL §4.2) + β·KL.
        with torch.no_grad():
            zd = z_rows.detach()
            next_a, next_logp, _, _ = self.actor.rsample(torch.cat([next_obs, zd], -1), self.update_gen)
            next_q = self.critic_target(torch.cat([next_obs, next_a, zd], -1))
            target = sac_target(rewards, terminals, next_q, next_logp, alpha=alpha, discount=cfg.discount, reward_scale=cfg.reward_scale)
        q = self.critic(torch.cat([obs, actions, z_rows], -1))
        critic_loss = ((q - target) ** 2).mean(1).sum()  # Q1 MSE + Q2 MSE
        kl = kl_to_standard_normal(mean, var).sum()  # summed over the meta-batch, as PEARL
        loss = critic_loss + cfg.kl_lambda * kl
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"PEARL critic loss became {float(loss)} at iteration {self.iteration}")
        self.optimizers["critic"].zero_grad(set_to_none=True)
        self.optimizers["encoder"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["critic"].step()
        self.optimizers["encoder"].step()

        # Actor: minimise α log π − min_j Q_j at z detached (the encoder is not trained by the actor).
        zd = z_rows.detach()
        new_a, logp, a_mean, a_log_std = self.actor.rsample(torch.cat([obs, zd], -1), self.update_gen)
        q_new = self.critic(torch.cat([obs, new_a, zd], -1)).min(0).values
        reg = cfg.policy_mean_reg * a_mean.pow(2).mean() + cfg.policy_std_reg * a_log_std.pow(2).mean()
        actor_loss = (alpha * logp - q_new).mean() + reg
        self.optimizers["actor"].zero_grad(set_to_none=True)
        actor_loss.backward()
        self.optimizers["actor"].step()  # critic grads from this pass are cleared before their next use

        out = {"critic_loss": float(critic_loss.detach()), "actor_loss": float(actor_loss.detach()), "kl": float(kl.detach()) / M,
               "q": float(q.detach().mean()), "log_pi": float(logp.detach().mean()), "alpha": float(alpha)}
        if cfg.auto_alpha:
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.optimizers["alpha"].zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.optimizers["alpha"].step()
        with torch.no_grad():  # Polyak averaging of the target critics
            for p, tp in zip(self.critic.parameters(), self.critic_target.parameters(), strict=True):
                tp.lerp_(p, cfg.soft_target_tau)
        return out

    # ---------------------------------------------------------------------- iteration
    def train_iteration(self, iteration: int) -> dict[str, float]:
        """Collect data (PEARL Algorithm 1), then ``num_train_steps_per_itr`` SAC steps.

        Runs under the agent's thread policy (:mod:`metarl.threads`, one torch thread by default).
        """
        t0 = time.perf_counter()
        steps, metrics = self._collect_iteration()
        t1 = time.perf_counter()
        sums: dict[str, float] = {}
        for _ in range(self.config.num_train_steps_per_itr):
            for k, v in self._update().items():
                sums[k] = sums.get(k, 0.0) + v
        n = max(self.config.num_train_steps_per_itr, 1)
        metrics.update({f"train/{k}": v / n for k, v in sums.items()})
        self.iteration = iteration + 1
        self.env_steps += steps
        metrics.update(
            {
                "env_steps": steps,
                "rollout/steps_per_s": steps / max(t1 - t0, 1e-9),
                "train/update_s": time.perf_counter() - t1,
                "train/replay_transitions": float(self.rl_buffer.transitions()),
            }
        )
        metrics.setdefault("rollout/posterior_return", metrics["rollout/prior_return"])
        metrics["rollout/return"] = metrics["rollout/posterior_return"]
        return metrics

    # ---------------------------------------------------------------------------- eval
    def evaluate(self, tasks: Sequence[Task], *, seed: int, num_steps: int | None = None) -> EvalResult:
        """Posterior sampling on each task (PEARL §4.3), no training.

        Each of ``eval_trials_per_task`` trials per task runs ``eval_episodes`` episodes: the first
        ``num_exp_traj_eval`` with ``z`` from the prior, each later one with ``z`` sampled from the
        posterior of *all* transitions of the trial so far (context collected online). ``num_steps``
        is unused.

        Returns:
            :class:`EvalResult` with ``x="episode"``, ``returns [num_tasks, eval_episodes]``
            and ``trial_returns [num_tasks]``.
        """
        if not tasks:
            raise ConfigError("evaluate needs at least one task")
        seed = check_seed(seed)
        cfg = self.config
        M, R, E = len(tasks), cfg.eval_trials_per_task, cfg.eval_episodes
        checked = [self.distribution.check(t) for t in tasks]
        N = M * R
        z_gen = torch.Generator().manual_seed(int(seed))
        contexts: list[Tensor] = []
        masks: list[Tensor] = []
        returns = np.zeros((N, E))
        success = None
        with torch.no_grad():
            for e in range(E):
                if e < cfg.num_exp_traj_eval:
                    mean, var = self.encoder.prior(N, self.torch_device)
                else:
                    mean, var = self.encoder(torch.cat(contexts, 1), torch.cat(masks, 1))
                z = sample_latent(mean, var, z_gen)
                # Episode e of every trial: env seeds seed + e·N + i (never reused across episodes).
                ro = self._collect(checked, z, R, seed=int(seed) + e * N, action_seed=int(seed) + e, deterministic=cfg.eval_deterministic)
                tr, valid = self._transitions(ro)
                contexts.append(self._context(Transitions(*(x.transpose(0, 1) for x in tr))))
                masks.append(valid.transpose(0, 1).float())
                returns[:, e] = ro.episode_returns.cpu().numpy()
                if ro.episode_success is not None:
                    success = np.zeros((N, E)) if success is None else success
                    success[:, e] = ro.episode_success.cpu().numpy()
        per_episode = returns.reshape(M, R, E).mean(1)
        return EvalResult(
            x="episode", returns=per_episode, trial_returns=per_episode.sum(1),
            success=None if success is None else success.reshape(M, R, E).mean(1),
            extra={"trials_per_task": R, "prior_episodes": cfg.num_exp_traj_eval, "encoder": cfg.encoder,
                   # The env's held-out tasks that are also training tasks: 0 unless train_tasks='held_out'
                   # (or a family of few distinct tasks), where eval.json's score is not a held-out one.
                   "train_tasks": cfg.train_tasks, "held_out_tasks_trained_on": self.held_out_trained_on},
        )

    # ------------------------------------------------------------------------ python API
    def learn(self, iterations: int, *, progress: bool = False) -> list[dict[str, float]]:
        """Run ``iterations`` training iterations; returns their metrics."""
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ConfigError(f"iterations must be an int >= 0, got {iterations!r}")
        return [self.train_iteration(self.iteration) for _ in range(iterations)]

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers, generators, counters and both replay buffers (exact resume)."""
        return {
            "encoder": self.encoder.state_dict(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "np_rng": self.np_rng.bit_generator.state,
            "z_gen": self.z_gen.get_state(),
            "update_gen": self.update_gen.get_state(),
            "rl_buffer": self.rl_buffer.state_dict(),
            "enc_buffer": self.enc_buffer.state_dict(),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("encoder", "actor", "critic", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.np_rng.bit_generator.state = state["np_rng"]
        self.z_gen.set_state(state["z_gen"])
        self.update_gen.set_state(state["update_gen"])
        self.rl_buffer.load_state_dict(state["rl_buffer"])
        self.enc_buffer.load_state_dict(state["enc_buffer"])
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])

    def spaces_signature(self) -> dict[str, str]:
        # Own keys: the trainer records the single env's spaces under the plain names, and a
        # single env built by gym.make can differ in bounds (gym.make takes max_episode_steps itself).
        return {"batched_observation_space": str(self.observation_space), "batched_action_space": str(self.action_space)}

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint (:mod:`metarl.checkpoint` format) with config, env and state."""
        from metarl.checkpoint import save_checkpoint

        save_checkpoint(path, {"agent": self.name, "env_id": self.env_id, "env_kwargs": self.env_kwargs, "seed": self.seed,
                               "config": asdict(self.config), "state": self.state_dict()})

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> PEARL:
        """Rebuild an agent saved with :meth:`save` (on ``device``)."""
        from metarl.checkpoint import load_checkpoint
        from metarl.config import build_config
        from metarl.errors import CheckpointError

        data = load_checkpoint(path)
        if data.get("agent") != cls.name:
            raise CheckpointError(f"{path} holds a {data.get('agent')!r} checkpoint, not a PEARL one")
        names = {f.name for f in fields(PEARLConfig)}
        config = build_config(PEARLConfig, {k: v for k, v in data["config"].items() if k in names}, source=str(path))
        agent = cls(data["env_id"], config, seed=data["seed"], device=device, env_kwargs=data["env_kwargs"])
        agent.load_state_dict(data["state"])
        return agent
