"""RL²: a recurrent policy whose memory across a trial's episodes is the "fast" RL algorithm.

Duan et al. 2016, "RL²: Fast Reinforcement Learning via Slow Reinforcement Learning". A GRU reads
``obs ⊕ previous action ⊕ previous reward ⊕ previous done`` (:mod:`metarl.trials`), keeps its
hidden state across the episodes of a trial and clears it only at a trial boundary; the "slow"
learner maximises the total reward of the trial. The paper trains with TRPO + GAE; here the slow
learner is PPO (Schulman et al. 2017) with GAE, back-propagating through whole trial sequences
(or through chunks of ``bptt_chunk`` steps seeded with the rollout's hidden states, for long
trials), on minibatches of trials.

The file reads top to bottom: config → network → rollout → advantages → PPO update → agent API.
Rollouts, returns, losses, the trial wrapper, classic baselines and checkpoints live in
:mod:`metarl`.

>>> from metarl.agents.rl2 import RL2, RL2Config
>>> agent = RL2("metarl/Bandit-v0", RL2Config(num_trials=16, hidden_size=8, episodes_per_trial=3),
...             env_kwargs={"num_arms": 2, "horizon": 1})
>>> metrics = agent.train_iteration(0)
>>> metrics["env_steps"]                    # 16 trials x 3 one-pull episodes
48
>>> action, state = agent.act(agent.trials.reset(seed=0)[0])      # state=None: a trial starts
>>> action.shape, tuple(state.shape)
((16,), (16, 8))
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from metarl.agent import Agent, EvalResult, resolve_device
from metarl.config import check_numbers
from metarl.errors import ConfigError, TrainingDivergedError
from metarl.losses import normalize_advantages, ppo_clip_loss
from metarl.meta_env import check_seed
from metarl.registry import check_env_id
from metarl.returns import gae
from metarl.samplers import EnvSpec, LocalSampler, RecurrentPolicySpec, Sampler
from metarl.sampling import Rollout
from metarl.tasks import Task
from metarl.trials import TrialVecEnv

__all__ = ["RL2Config", "GRUActorCritic", "RL2", "trial_advantages", "check_config"]


# ====================================================================================== config
@dataclass
class RL2Config:
    """RL² hyperparameters (every field is a ``metarl train rl2`` flag)."""

    episodes_per_trial: int = 10
    """Episodes per trial on one task (the RL² paper's n)."""
    num_trials: int = 1024
    """Parallel trials sampled per iteration (one new task each)."""
    hidden_size: int = 64
    """GRU hidden units (the paper uses 256; presets follow it)."""
    learning_rate: float = 6e-3
    """Adam step size."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this before advantages (keeps value targets O(1) on long trials)."""
    gamma: float = 0.99
    """Discount over the whole trial (episode boundaries inside a trial do not stop it)."""
    gae_lambda: float = 0.95
    """GAE λ (Schulman et al. 2016)."""
    clip_range: float = 0.2
    """PPO ratio clipping ε."""
    update_epochs: int = 4
    """Passes over the iteration's trials."""
    num_minibatches: int = 4
    """Minibatches of whole trials per epoch."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    bptt_chunk: int = 0
    """Truncated BPTT length in steps (0: back-propagate through the whole trial). Long trials
    use chunks seeded with the rollout's hidden states so memory stays bounded."""
    normalize_advantage: bool = True
    """Standardise advantages over the iteration's batch."""
    eval_trials_per_task: int = 20
    """Trials per held-out task in :meth:`RL2.evaluate` (their mean is the task's score)."""
    eval_baselines: bool = True
    """Run the classic baselines (UCB1, Thompson, Gittins, PSRL, ...) beside RL² in evaluation."""
    eval_relabel: bool = True
    """Score each evaluation trial on its own randomly relabeled copy of the held-out task (arms of
    a bandit, states and actions of an MDP: ``TaskDistribution.relabel``; the classic baselines
    get the same copies), drawn from the evaluation seed. A trained policy's arbitrary label
    preference (which arm first) then cannot meet a fixed task set's particular order; without it,
    held-out scores of near-optimal n = 10 bandit policies differed by seed more than their
    training returns did (issue 11). Families without such a symmetry are unaffected."""
    late_iteration: int = 0
    """From this iteration on (0: never) train in a *late phase* of ``late_num_trials`` trials per
    iteration at ``late_learning_rate``: a fast small-batch phase reaches a plateau set by gradient
    noise, and bigger batches with a smaller step climb past it (issue 11). Not in the paper (ours)."""
    late_num_trials: int = 1024
    """Trials per iteration in the late phase."""
    late_learning_rate: float = 1e-3
    """Adam step size in the late phase."""
    late_gamma: float | None = None
    """Discount in the late phase (``None``: ``gamma``). Ours, not the paper's: a short horizon
    learns fast early, a longer one then credits exploration whose payoff comes later in the trial;
    OpenAI Five raised its discount during training the same way (Berner et al. 2019, §4.1)."""
    time_input: bool = False
    """Feed the GRU the fraction of the trial's episodes already finished (``e / n``), counted
    from the previous-done input and carried in the recurrent state. Not in the paper (ours)."""
    sample_block: int = 64
    """Trials per policy forward while sampling, and the unit a distributed sampler shards by:
    every backend and worker count gives the same bits for one value (metarl.samplers)."""


def check_config(config: RL2Config) -> RL2Config:
    """Raise :class:`ConfigError` naming the first invalid field."""
    if not isinstance(config, RL2Config):
        raise ConfigError(f"RL2 needs an RL2Config, got {type(config).__name__}")
    positive = ("episodes_per_trial", "num_trials", "hidden_size", "update_epochs", "num_minibatches", "eval_trials_per_task", "sample_block", "late_num_trials")
    for name in positive:
        v = getattr(config, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"RL2Config.{name} must be a positive int, got {v!r}")
    for name in ("bptt_chunk", "late_iteration"):
        v = getattr(config, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"RL2Config.{name} must be an int >= 0, got {v!r}")
    if config.late_gamma is not None and not (isinstance(config.late_gamma, (int, float)) and 0 <= config.late_gamma <= 1):
        raise ConfigError(f"RL2Config.late_gamma must be None or lie in [0, 1], got {config.late_gamma!r}")
    for name, lo, hi in (("gamma", 0, 1), ("gae_lambda", 0, 1), ("clip_range", 0, 1)):
        v = getattr(config, name)
        if not (isinstance(v, (int, float)) and lo <= v <= hi):
            raise ConfigError(f"RL2Config.{name} must lie in [{lo}, {hi}], got {v!r}")
    for name in ("learning_rate", "max_grad_norm", "reward_scale", "late_learning_rate"):
        v = getattr(config, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"RL2Config.{name} must be a positive number, got {v!r}")
    for name in ("value_coef", "entropy_coef"):
        v = getattr(config, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ConfigError(f"RL2Config.{name} must be a number >= 0, got {v!r}")
    if config.num_minibatches > config.num_trials:
        raise ConfigError(
            f"RL2Config.num_minibatches ({config.num_minibatches}) exceeds num_trials ({config.num_trials})"
        )
    if config.late_iteration and config.num_minibatches > config.late_num_trials:
        raise ConfigError(
            f"RL2Config.num_minibatches ({config.num_minibatches}) exceeds late_num_trials ({config.late_num_trials})"
        )
    return check_numbers(config, source="RL2Config")  # every other float field: finite and >= 0


# ===================================================================================== network
class GRUActorCritic(nn.Module):
    """A GRU over trial inputs with a policy head and a value head (Duan et al. 2016, §3).

    Axes: ``T`` steps, ``N`` trials. Discrete actions get logits; Box actions a Gaussian with a
    state-independent learned ``log_std``. With ``episodes_per_trial > 0`` (``RL2Config.time_input``)
    the state is ``[N, H + 1]``: its last column counts the trial's finished episodes.
    """

    def __init__(self, input_dim: int, action_space: spaces.Space, hidden_size: int, episodes_per_trial: int = 0) -> None:
        super().__init__()
        #: > 0: append ``episodes finished / episodes_per_trial`` to the input (``RL2Config.time_input``);
        #: the count rides in one extra column of the hidden state, so it clears with it at trial starts.
        self.episodes_per_trial = int(episodes_per_trial)
        self.discrete = isinstance(action_space, spaces.Discrete)
        out = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.hidden_size = hidden_size
        self.gru = nn.GRU(input_dim + (1 if self.episodes_per_trial else 0), hidden_size)
        self.policy_head = nn.Linear(hidden_size, out)
        self.value_head = nn.Linear(hidden_size, 1)
        # Small initial policy outputs: near-uniform first actions (as CleanRL's std=0.01 init).
        nn.init.orthogonal_(self.policy_head.weight, gain=0.01)
        nn.init.zeros_(self.policy_head.bias)
        self.log_std = None if self.discrete else nn.Parameter(torch.full((out,), -0.5))

    def initial_state(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        """The hidden state at a trial start: zeros ``[N, H]`` (``[N, H + 1]`` with the episode count)."""
        return torch.zeros(n, self.hidden_size + (1 if self.episodes_per_trial else 0), device=device)

    def forward(self, x: Tensor, h: Tensor, trial_start: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Run ``x [T, N, D]`` from hidden ``h [N, H]``; zero the hidden state of trial ``n``
        before step ``t`` wherever ``trial_start[t, n]`` (``[T, N]`` bool).

        Returns:
            ``(policy_out [T, N, A], values [T, N], h_T [N, H])``.
        """
        T = x.shape[0]
        cuts = [0, T]
        if trial_start is not None:
            inner = torch.nonzero(trial_start[1:].any(dim=1)).flatten() + 1
            cuts = [0, *inner.tolist(), T]
        outs = []
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            if trial_start is not None:
                h = h * (~trial_start[a]).unsqueeze(-1).to(h.dtype)
            xs = x[a:b]
            if self.episodes_per_trial:
                # episodes finished so far: the count carried in h plus the previous-done flags
                count = h[:, -1] + torch.cumsum(xs[..., -1], 0)
                xs = torch.cat([xs, (count / self.episodes_per_trial).unsqueeze(-1)], -1)
                out, h_n = self.gru(xs, h[:, :-1].unsqueeze(0).contiguous())
                h = torch.cat([h_n[0], count[-1].unsqueeze(-1)], -1)
            else:
                out, h_n = self.gru(xs, h.unsqueeze(0))
                h = h_n[0]
            outs.append(out)
        feats = outs[0] if len(outs) == 1 else torch.cat(outs)
        return self.policy_head(feats), self.value_head(feats).squeeze(-1), h

    # --- distributions over the policy head's output ---------------------------------------
    def sample(self, out: Tensor, generator: torch.Generator, deterministic: bool = False) -> Tensor:
        if self.discrete:
            if deterministic:
                return out.argmax(-1)
            probs = torch.softmax(out, -1).reshape(-1, out.shape[-1])
            return torch.multinomial(probs, 1, generator=generator).reshape(out.shape[:-1])
        if deterministic:
            return out
        noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        return out + self.log_std.exp() * noise

    def log_prob(self, out: Tensor, actions: Tensor) -> Tensor:
        if self.discrete:
            return torch.log_softmax(out, -1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        var = torch.exp(2 * self.log_std)
        return (-((actions - out) ** 2) / (2 * var) - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self, out: Tensor) -> Tensor:
        if self.discrete:
            logp = torch.log_softmax(out, -1)
            return -(logp.exp() * logp).sum(-1)
        ent = (0.5 + 0.5 * math.log(2 * math.pi) + self.log_std).sum()
        return ent.expand(out.shape[:-1])


# ================================================================================== advantages
def trial_advantages(
    rewards: Tensor, values: Tensor, last_value: Tensor, trial_end: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """GAE over a ``[T, N]`` rollout of trials (Schulman et al. 2016, eq. 16).

    A trial's end is a *termination* of the meta-episode: no bootstrap, and advantages do not
    flow back across it. Episode ends inside a trial are not boundaries (RL² maximises the
    trial's return). The rollout's last step, if it is not a trial end, is a *truncation*:
    it bootstraps from ``last_value`` (the value of the next observation with the carried
    hidden state).

    Returns:
        ``(advantages, returns)``, both ``[T, N]``.
    """
    next_values = torch.cat([values[1:], last_value.unsqueeze(0)])
    boundary = trial_end.clone()
    boundary[-1] = True  # nothing of this rollout follows its last step
    return gae(rewards, values, next_values, trial_end, boundary, gamma, lam)


# ======================================================================================= agent
class RL2(Agent):
    """RL² agent: GRU actor-critic trained with PPO over whole trials.

    Args:
        env_id: a registered meta-env id (its native batched env is stepped in lock-step).
        config: :class:`RL2Config`.
        seed: seeds the network init, task draws, env steps and action sampling.
        device: where the network and the updates run (envs step on CPU).
        env_kwargs: kwargs of the env (e.g. ``{"num_arms": 5, "horizon": 1}``). ``None`` on the
            default env means :attr:`default_env_kwargs`: the RL² paper's k = 5 bandit with
            one-pull episodes, so a trial of ``episodes_per_trial`` pulls.
    """

    name: ClassVar[str] = "rl2"
    config_cls: ClassVar[type] = RL2Config
    default_env: ClassVar[str] = "metarl/Bandit-v0"
    default_env_kwargs: ClassVar[dict[str, Any]] = {"num_arms": 5, "horizon": 1}
    headline: ClassVar[str] = "rollout/trial_return"

    def __init__(
        self,
        env_id: str = "metarl/Bandit-v0",
        config: RL2Config | None = None,
        *,
        seed: int = 0,
        device: str = "cpu",
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        config = check_config(config if config is not None else RL2Config())
        seed = check_seed(seed)  # an int in [0, 2**63), as everywhere in metarl
        self.torch_device = resolve_device(device)
        super().__init__(check_env_id(env_id), config, seed=int(seed), device=str(device))
        if env_kwargs is None and env_id == self.default_env:
            env_kwargs = dict(self.default_env_kwargs)
        self.env_kwargs = dict(env_kwargs or {})
        self.trials = TrialVecEnv.make(env_id, config.num_trials, config.episodes_per_trial, **self.env_kwargs)
        self.horizon = self.trials.max_trial_steps
        input_dim = self.trials.single_observation_space.shape[0]
        # Owned generators (never the global RNGs): numpy for tasks and env seeds, torch for
        # actions (on the device) and minibatch shuffles (CPU).
        self.np_rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0x12,)))
        self.action_gen = torch.Generator(device=self.torch_device).manual_seed(self.seed + 1)
        self.shuffle_gen = torch.Generator().manual_seed(self.seed + 2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = GRUActorCritic(
                input_dim, self.trials.single_action_space, config.hidden_size, config.episodes_per_trial if config.time_input else 0
            )
        self.net.to(self.torch_device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.learning_rate, eps=1e-5)
        #: Where rollouts come from (metarl.samplers): local by default, ``RaySampler`` to distribute.
        self.sampler: Sampler = LocalSampler()
        # The local sampler steps this agent's own trial env for training rollouts (no second copy).
        self.sampler.adopt(EnvSpec(env_id, self.env_kwargs, config.episodes_per_trial), self.trials)
        self.iteration = 0
        self.env_steps = 0

    # ---------------------------------------------------------------------------- rollout
    def phase(self, iteration: int) -> tuple[int, float, float]:
        """``(trials, learning rate, discount)`` of iteration ``iteration`` (the late phase from ``late_iteration``)."""
        cfg = self.config
        if cfg.late_iteration and iteration >= cfg.late_iteration:
            gamma = cfg.gamma if cfg.late_gamma is None else cfg.late_gamma
            return cfg.late_num_trials, cfg.late_learning_rate, gamma
        return cfg.num_trials, cfg.learning_rate, cfg.gamma

    def _rollout(self, num_trials: int | None = None) -> tuple[Rollout, Tensor, Tensor]:
        """One trial per sub-env on freshly drawn training tasks (``num_trials``, default the config's).

        Returns:
            ``(rollout, chunk_states [C, N, H], last_value [N])``; ``rollout.extras`` has
            ``logp``, ``value`` and ``trial_start`` ``[T, N]``.
        """
        cfg, T = self.config, self.horizon
        N = cfg.num_trials if num_trials is None else num_trials
        tasks = self.trials.env.distribution.sample(self.np_rng, N)
        env_seed = int(self.np_rng.integers(2**31 - 1))
        # Action noise from a per-rollout seed (not a generator carried across rollouts), so a
        # sampler's workers can draw it; the agent's own generator stays for act().
        action_seed = int(torch.randint(2**31 - 1, (1,), generator=self.action_gen, device=self.action_gen.device))
        spec = RecurrentPolicySpec(self.net, action_seed, chunk=cfg.bptt_chunk or T, block=cfg.sample_block)
        env = EnvSpec(self.env_id, self.env_kwargs, cfg.episodes_per_trial)
        rollout = self.sampler.sample(env, spec, tasks, episodes=1, horizon=T, seed=env_seed, device=self.torch_device)
        extras = dict(rollout.extras)
        chunk_states, last_value = extras.pop("chunk_states"), extras.pop("last_value")[0]
        return rollout._replace(extras=extras), chunk_states, last_value

    # ----------------------------------------------------------------------------- update
    def _update(self, ro: Rollout, chunk_states: Tensor, adv: Tensor, returns: Tensor) -> dict[str, float]:
        """PPO epochs over minibatches of whole trials; BPTT per ``bptt_chunk`` (or the trial)."""
        cfg = self.config
        T, N = ro.rewards.shape
        chunk = cfg.bptt_chunk or T
        starts = ro.extras["trial_start"]
        logp_old, values_old = ro.extras["logp"], ro.extras["value"]
        if cfg.normalize_advantage:
            adv = normalize_advantages(adv)
        stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac", "grad_norm")}
        mb_size = math.ceil(N / cfg.num_minibatches)
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(N, generator=self.shuffle_gen).to(self.torch_device)
            for i in range(0, N, mb_size):
                idx = perm[i : i + mb_size]
                self.optimizer.zero_grad(set_to_none=True)
                total = T * idx.numel()
                sums = dict.fromkeys(("policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac"), 0.0)
                for c, a in enumerate(range(0, T, chunk)):
                    b = min(a + chunk, T)
                    # Truncated BPTT: a chunk starts from the hidden state the rollout had there.
                    h0 = chunk_states[c, idx]
                    out, values, _ = self.net(ro.obs[a:b, idx], h0, starts[a:b, idx])
                    logp = self.net.log_prob(out, ro.actions[a:b, idx])
                    frac = (b - a) * idx.numel() / total  # chunk means -> minibatch mean
                    mb_adv = adv[a:b, idx]
                    pg = ppo_clip_loss(logp, logp_old[a:b, idx], mb_adv, cfg.clip_range)
                    vf = 0.5 * ((values - returns[a:b, idx]) ** 2).mean()
                    ent = self.net.entropy(out).mean()
                    loss = frac * (pg + cfg.value_coef * vf - cfg.entropy_coef * ent)
                    if not torch.isfinite(loss):
                        raise TrainingDivergedError(f"RL2 loss became {float(loss)} at iteration {self.iteration}")
                    loss.backward()
                    with torch.no_grad():
                        log_ratio = logp - logp_old[a:b, idx]
                        # Low-variance KL estimate (Schulman's k3, as in SB3/CleanRL PPO).
                        sums["approx_kl"] += frac * float(((log_ratio.exp() - 1) - log_ratio).mean())
                        sums["clip_frac"] += frac * float(((log_ratio.exp() - 1).abs() > cfg.clip_range).float().mean())
                    sums["policy_loss"] += frac * float(pg.detach())
                    sums["value_loss"] += frac * float(vf.detach())
                    sums["entropy"] += frac * float(ent.detach())
                grad_norm = nn.utils.clip_grad_norm_(self.net.parameters(), cfg.max_grad_norm)
                if not torch.isfinite(grad_norm):
                    raise TrainingDivergedError(f"RL2 gradient norm became {float(grad_norm)} at iteration {self.iteration}")
                self.optimizer.step()
                for k, v in sums.items():
                    stats[k].append(v)
                stats["grad_norm"].append(float(grad_norm))
        explained = 1.0 - float(torch.var(returns - values_old) / torch.var(returns).clamp_min(1e-8))
        out = {f"train/{k}": float(np.mean(v)) for k, v in stats.items()}
        out["train/explained_variance"] = explained
        return out

    # -------------------------------------------------------------------------- iteration
    def train_iteration(self, iteration: int) -> dict[str, float]:
        """Sample the phase's trials (``num_trials``, or ``late_num_trials`` late) on new training
        tasks, then one PPO update at the phase's learning rate.

        Runs under the agent's thread policy (:mod:`metarl.threads`, one torch thread by default).
        """
        t0 = time.perf_counter()
        num_trials, lr, gamma = self.phase(iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        ro, chunk_states, last_value = self._rollout(num_trials)
        trial_end = ro.terminated
        adv, returns = trial_advantages(ro.rewards * self.config.reward_scale, ro.extras["value"], last_value, trial_end, gamma, self.config.gae_lambda)
        t1 = time.perf_counter()
        metrics = self._update(ro, chunk_states, adv, returns)
        steps = ro.rewards.numel()
        self.iteration = iteration + 1
        self.env_steps += steps
        per_episode = self._episode_returns(ro)
        metrics.update(
            {
                "env_steps": steps,
                "rollout/trial_return": float(per_episode.sum(1).mean()),
                "rollout/return": float(per_episode.sum(1).mean()),
                "rollout/first_episode_return": float(per_episode[:, 0].mean()),
                "rollout/last_episode_return": float(per_episode[:, -1].mean()),
                "rollout/steps_per_s": steps / max(t1 - t0, 1e-9),
                "train/update_s": time.perf_counter() - t1,
                "train/learning_rate": lr,
            }
        )
        success = self._episode_success(ro)
        if success is not None:  # Meta-World's metric, beside the return
            metrics["rollout/success_rate"] = float(success.mean())
            metrics["rollout/last_episode_success_rate"] = float(success[:, -1].mean())
        return metrics

    def _episode_returns(self, ro: Rollout) -> np.ndarray:
        """``[N, episodes_per_trial]`` returns of each sub-env's first trial (``valid`` steps)."""
        E = self.config.episodes_per_trial
        episode = ro.extras["episode"] if "episode" in ro.extras else None
        rewards = (ro.rewards * ro.valid).cpu().numpy()
        if episode is None:  # from the previous-done flag carried in the observation
            done_prev = ro.obs[..., -1].cpu().numpy() > 0.5
            episode = np.cumsum(done_prev, axis=0)
        else:
            episode = episode.cpu().numpy()
        out = np.zeros((rewards.shape[1], E))
        cols = np.broadcast_to(np.arange(rewards.shape[1]), rewards.shape)
        np.add.at(out, (cols.ravel(), np.minimum(episode, E - 1).ravel()), rewards.ravel())
        return out

    def _episode_success(self, ro: Rollout) -> np.ndarray | None:
        """``[N, episodes_per_trial]`` 1 where episode ``e`` of the first trial had a success step;
        None when the env reports no ``info["success"]``."""
        if ro.success is None or "episode" not in ro.extras:
            return None
        E = self.config.episodes_per_trial
        hit = (ro.success & (ro.valid > 0)).cpu().numpy()
        episode = np.minimum(ro.extras["episode"].cpu().numpy(), E - 1)
        out = np.zeros((hit.shape[1], E))
        cols = np.broadcast_to(np.arange(hit.shape[1]), hit.shape)
        np.maximum.at(out, (cols.ravel(), episode.ravel()), hit.ravel().astype(np.float64))
        return out

    # ------------------------------------------------------------------------------- eval
    def evaluate(self, tasks: Sequence[Task], *, seed: int, num_steps: int | None = None) -> EvalResult:
        """Run ``eval_trials_per_task`` fresh trials per task (no training) and the classic baselines,
        each trial on its own relabeled copy of the task when ``eval_relabel`` (the baselines on the
        same copies).

        ``num_steps`` is unused (RL² adapts within the trial, not by gradient steps).

        Returns:
            :class:`EvalResult` with ``x="episode"``, ``returns [num_tasks, episodes_per_trial]``,
            ``trial_returns [num_tasks]`` and ``baselines`` (trial returns per task).
        """
        if not tasks:
            raise ConfigError("evaluate needs at least one task")
        return self._evaluate(tasks, int(seed))

    def _evaluate(self, tasks: Sequence[Task], seed: int) -> EvalResult:
        from metarl.classic import evaluate_baselines

        cfg = self.config
        M, R, E = len(tasks), cfg.eval_trials_per_task, cfg.episodes_per_trial
        dist = self.trials.env.distribution
        checked = [dist.check(t) for t in tasks]
        # One sub-env per trial, task-major (trial r of task m is sub-env m * R + r, the layout the
        # samplers and run_classic give R episodes per task), each on its own copy of the task.
        runs = dist.trial_copies(checked, R, seed, relabel=cfg.eval_relabel)
        spec = RecurrentPolicySpec(self.net, int(seed), block=cfg.sample_block)
        env = EnvSpec(self.env_id, self.env_kwargs, E)
        ro = self.sampler.sample(env, spec, runs, episodes=1, horizon=self.horizon, seed=int(seed), device=self.torch_device)
        per_episode = self._episode_returns(ro).reshape(M, R, E).mean(axis=1)
        success = self._episode_success(ro)
        result = EvalResult(
            x="episode", returns=per_episode, trial_returns=per_episode.sum(axis=1),
            success=None if success is None else success.reshape(M, R, E).mean(axis=1),
        )
        if cfg.eval_baselines:
            base, extra = evaluate_baselines(
                self.env_id, runs, episodes_per_trial=E, seed=int(seed), env_kwargs=self.env_kwargs
            )
            result.baselines = {name: r.reshape(M, R, E).mean(axis=1).sum(axis=1) for name, r in base.items()}
            result.extra = {**extra, "trials_per_task": R}
        return result

    # -------------------------------------------------------------------------- python API
    def learn(self, iterations: int, *, progress: bool = True) -> list[dict[str, float]]:
        """Run ``iterations`` training iterations (with a progress bar); returns their metrics."""
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ConfigError(f"iterations must be an int >= 0, got {iterations!r}")
        history = []
        bar = None
        if progress:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task_id = bar.add_task("rl2", total=iterations)
        try:
            for _ in range(iterations):
                metrics = self.train_iteration(self.iteration)
                history.append(metrics)
                if bar is not None:
                    bar.update(task_id, advance=1, description=f"rl2 trial return {metrics['rollout/trial_return']:.2f}")
        finally:
            if bar is not None:
                bar.stop()
        return history

    @torch.no_grad()
    def act(self, obs: Any, state: Tensor | None = None, *, deterministic: bool = False) -> tuple[np.ndarray, Tensor]:
        """Actions for trial observations ``obs [N, D]`` (or ``[D]``) and the new hidden state.

        Pass ``state=None`` at a trial start (a fresh memory) and the returned state afterwards;
        to start a new trial for some rows, zero their rows of the state.
        """
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.torch_device)
        single = x.ndim == 1
        x = x.reshape(1, -1) if single else x
        want = self.trials.single_observation_space.shape[0]
        if x.ndim != 2 or x.shape[1] != want:
            raise ConfigError(f"obs must have shape [N, {want}] (a trial observation), got {tuple(x.shape)}")
        h = self.net.initial_state(x.shape[0], self.torch_device) if state is None else state.to(self.torch_device)
        out, _, h = self.net(x.unsqueeze(0), h)
        action = self.net.sample(out[0], self.action_gen, deterministic).cpu().numpy()
        return (action[0] if single else action), h

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "np_rng": self.np_rng.bit_generator.state,
            "action_gen": self.action_gen.get_state(),
            "shuffle_gen": self.shuffle_gen.get_state(),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.np_rng.bit_generator.state = state["np_rng"]
        self.action_gen.set_state(state["action_gen"].cpu() if isinstance(state["action_gen"], Tensor) else state["action_gen"])
        self.shuffle_gen.set_state(state["shuffle_gen"])
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])

    def spaces_signature(self) -> dict[str, str]:
        return {
            "trial_observation_space": str(self.trials.single_observation_space),
            "action_space": str(self.trials.single_action_space),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint (:mod:`metarl.checkpoint` format) with config, env and state."""
        from metarl.checkpoint import save_checkpoint

        save_checkpoint(
            path,
            {
                "agent": self.name,
                "env_id": self.env_id,
                "env_kwargs": self.env_kwargs,
                "seed": self.seed,
                "config": asdict(self.config),
                "state": self.state_dict(),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> RL2:
        """Rebuild an agent saved with :meth:`save` (on ``device``)."""
        from metarl.checkpoint import load_checkpoint
        from metarl.errors import CheckpointError

        data = load_checkpoint(path)
        if data.get("agent") != cls.name:
            raise CheckpointError(f"{path} holds a {data.get('agent')!r} checkpoint, not an RL2 one")
        names = {f.name for f in fields(RL2Config)}
        config = RL2Config(**{k: v for k, v in data["config"].items() if k in names})
        agent = cls(data["env_id"], config, seed=data["seed"], device=device, env_kwargs=data["env_kwargs"])
        agent.load_state_dict(data["state"])
        return agent
