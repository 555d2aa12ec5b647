"""Small plugin agents for the CLI/trainer/eval tests (``metarl train cli_agents:ToyNav``).

They implement :class:`metarl.agent.Agent` for real (owned generators, REINFORCE with Adam,
per-task adaptation on held-out tasks) but are tiny, so a run takes a fraction of a second.
``METARL_TEST_KILL_AT=<iteration>`` makes ``train_iteration`` SIGKILL its own process at that
iteration (after the trainer wrote the previous rows), to test exact resume after a hard kill.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

import metarl
from metarl.agent import Agent, EvalResult
from metarl.sampling import collect
from metarl.tasks import Task


def _maybe_die(iteration: int) -> None:
    if os.environ.get("METARL_TEST_KILL_AT") == str(iteration):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class ToyNavConfig:
    """Config of :class:`ToyNav`."""

    meta_batch_size: int = 4
    """Tasks per iteration."""
    episodes_per_task: int = 2
    """Episodes per task."""
    lr: float = 0.01
    """Adam learning rate of the outer update."""
    inner_lr: float = 0.02
    """SGD step of the per-task adaptation at evaluation."""
    inner_steps: int = 1
    """Adaptation steps at evaluation."""
    hidden: tuple[int, ...] = (8,)
    """Hidden layer sizes."""


class ToyNav(Agent):
    """Linear-ish Gaussian policy on Navigation2D trained with REINFORCE (a test agent)."""

    name = "toynav"
    config_cls = ToyNavConfig
    default_env = "metarl/Navigation2D-v0"
    default_iterations = 3

    def __init__(self, env_id: str, config: ToyNavConfig, *, seed: int = 0, device: str = "cpu", env_kwargs: dict | None = None) -> None:
        super().__init__(env_id, config, seed=seed, device=device)
        n = config.meta_batch_size * config.episodes_per_task
        self.venv = metarl.make_vec(env_id, num_envs=n, **(env_kwargs or {}))
        self.env_kwargs = dict(env_kwargs or {})
        self.horizon = self.venv.max_episode_steps
        obs_dim = self.venv.single_observation_space.shape[0]
        act_dim = self.venv.single_action_space.shape[0]
        torch.manual_seed(seed)  # init only; sampling uses self.gen
        layers: list[nn.Module] = []
        d = obs_dim
        for h in config.hidden:
            layers += [nn.Linear(d, h), nn.Tanh()]
            d = h
        layers.append(nn.Linear(d, act_dim))
        self.net = nn.Sequential(*layers).to(device)
        self.log_std = nn.Parameter(torch.full((act_dim,), -1.0, device=device))
        self.opt = torch.optim.Adam([*self.net.parameters(), self.log_std], lr=config.lr)
        self.task_rng = np.random.default_rng(seed)
        self.gen = torch.Generator(device="cpu").manual_seed(seed)

    def _act(self, params: dict[str, torch.Tensor] | None):
        def act(obs: torch.Tensor, t: int):
            mean = torch.func.functional_call(self.net, params, (obs,)) if params else self.net(obs)
            noise = torch.randn(mean.shape, generator=self.gen).to(mean.device)
            return mean + noise * self.log_std.exp(), {}

        return act

    def _loss(self, ro, params=None) -> torch.Tensor:
        mean = torch.func.functional_call(self.net, params, (ro.obs,)) if params else self.net(ro.obs)
        dist = torch.distributions.Normal(mean, self.log_std.exp())
        logp = dist.log_prob(ro.actions).sum(-1)
        rtg = (ro.rewards * ro.valid).flip(0).cumsum(0).flip(0)
        adv = (rtg - rtg.mean(1, keepdim=True)) / (rtg.std() + 1e-8)
        return -(logp * adv * ro.valid).sum(0).mean()

    def train_iteration(self, iteration: int) -> dict[str, float]:
        _maybe_die(iteration)
        c = self.config
        tasks = self.venv.distribution.sample(self.task_rng, c.meta_batch_size)
        per_env = [t for t in tasks for _ in range(c.episodes_per_task)]
        ro = collect(self.venv, self._act(None), self.horizon, tasks=per_env, seed=int(self.task_rng.integers(2**31)), device=self.device)
        loss = self._loss(ro)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {
            "env_steps": int(ro.valid.sum().item()),
            "rollout/return": float(ro.episode_returns.mean()),
            "train/loss": float(loss.detach()),
        }

    def evaluate(self, tasks: Sequence[Task], *, seed: int, num_steps: int | None = None) -> EvalResult:
        c = self.config
        steps = c.inner_steps if num_steps is None else num_steps
        gen_state = self.gen.get_state()
        self.gen.manual_seed(seed)
        venv = metarl.make_vec(self.env_id, num_envs=c.episodes_per_task, **self.env_kwargs)
        curves = np.zeros((len(tasks), steps + 1))
        for i, task in enumerate(tasks):
            params = {k: v.detach().clone().requires_grad_(True) for k, v in self.net.named_parameters()}
            for k in range(steps + 1):
                ro = collect(venv, self._act(params), self.horizon, tasks=[task] * c.episodes_per_task, seed=seed + i)
                curves[i, k] = float(ro.episode_returns.mean())
                if k < steps:
                    grads = torch.autograd.grad(self._loss(ro, params), list(params.values()))
                    params = {n: (p - c.inner_lr * g).detach().requires_grad_(True) for (n, p), g in zip(params.items(), grads, strict=True)}
        self.gen.set_state(gen_state)
        return EvalResult(x="gradient_steps", returns=curves, extra={"inner_lr": c.inner_lr})

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "log_std": self.log_std.detach(),
            "opt": self.opt.state_dict(),
            "task_rng": self.task_rng.bit_generator.state,
            "gen": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        with torch.no_grad():
            self.log_std.copy_(state["log_std"])
        self.opt.load_state_dict(state["opt"])
        self.task_rng.bit_generator.state = state["task_rng"]
        self.gen.set_state(state["gen"])


@dataclass
class ToyBanditConfig:
    """Config of :class:`ToyBandit`."""

    episodes: int = 3
    """Episodes per trial at evaluation."""
    lr: float = 0.1
    """Step size of the arm-preference update."""


class ToyBandit(Agent):
    """RL²-style test agent: arm preferences, per-episode curve, trial return and baselines."""

    name = "toybandit"
    config_cls = ToyBanditConfig
    default_env = "metarl/Bandit-v0"

    def __init__(self, env_id: str, config: ToyBanditConfig, *, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(env_id, config, seed=seed, device=device)
        self.env = metarl.make(env_id)
        self.k = self.env.action_space.n
        self.prefs = torch.zeros(self.k)
        self.rng = np.random.default_rng(seed)

    def train_iteration(self, iteration: int) -> dict[str, float]:
        task = self.env.unwrapped.distribution.sample(self.rng, 1)[0]
        self.prefs += self.config.lr * torch.as_tensor(task.probs - task.probs.mean(), dtype=torch.float32)
        return {"env_steps": 1, "rollout/return": float(task.probs.max())}

    def evaluate(self, tasks: Sequence[Task], *, seed: int, num_steps: int | None = None) -> EvalResult:
        rng = np.random.default_rng(seed)
        horizon = self.env.unwrapped.max_episode_steps
        n_ep = self.config.episodes
        returns = np.zeros((len(tasks), n_ep))
        rand = np.zeros(len(tasks))
        for i, task in enumerate(tasks):
            counts, wins = np.ones(self.k), np.ones(self.k)
            for e in range(n_ep):
                for _ in range(horizon):  # greedy on posterior means: improves across episodes
                    a = int(np.argmax(wins / counts + 1e-6 * rng.random(self.k)))
                    r = float(rng.random() < task.probs[a])
                    counts[a] += 1
                    wins[a] += r
                    returns[i, e] += r
            rand[i] = task.probs.mean() * horizon * n_ep
        return EvalResult(x="episode", returns=returns, trial_returns=returns.sum(1), baselines={"random": rand})

    def state_dict(self) -> dict[str, Any]:
        return {"prefs": self.prefs.clone(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prefs = state["prefs"].clone()
        self.rng.bit_generator.state = state["rng"]


# --- helpers for the tests ------------------------------------------------------------------------
TOY_CONFIG = {"meta_batch_size": 2, "episodes_per_task": 2, "hidden": [4]}
TOY_ENV_KWARGS = {"max_episode_steps": 10}


def toy_run(iterations: int = 4, *, seed: int = 0, agent: str = "cli_agents:ToyNav", **trainer: Any):
    """A RunConfig of a tiny ToyNav run (10-step episodes, 4 envs)."""
    from metarl.config import RunConfig

    opts = {"checkpoint_every": 2, "keep_checkpoints": 0, "log_every": 0, "eval_tasks": 0, **trainer}
    toy = agent.endswith("ToyNav")
    return RunConfig(
        agent=agent,
        env="metarl/Navigation2D-v0" if toy else "metarl/Bandit-v0",
        seed=seed,
        iterations=iterations,
        device="cpu",
        config=dict(TOY_CONFIG) if toy else {},
        env_kwargs=dict(TOY_ENV_KWARGS) if toy else {},
        trainer=opts,
    )
