"""PEARL: SAC target and actor likelihood by hand, posterior sampling in evaluation, determinism,
exact resume (replay buffers included), the CLI, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from metarl.agent import AGENTS, EvalResult, load_agent_class
from metarl.agents.pearl import PEARL, PEARLConfig, TanhGaussianActor, sac_target
from metarl.checkpoint import load_checkpoint, save_checkpoint
from metarl.errors import ConfigError

NAV = "metarl/Navigation2D-v0"
SHORT = {"max_episode_steps": 10}
TINY = PEARLConfig(num_train_tasks=4, num_tasks_sample=2, meta_batch=3, num_initial_steps=10, num_steps_prior=10,
                   num_steps_posterior=10, num_extra_rl_steps_posterior=10, num_train_steps_per_itr=3, batch_size=8,
                   embedding_batch_size=6, hidden_sizes=(8,), encoder_hidden_sizes=(8,), replay_capacity=25,
                   eval_episodes=3, eval_trials_per_task=2)


def _agent(seed: int = 0, **changes) -> PEARL:
    return PEARL(NAV, dataclasses.replace(TINY, **changes), seed=seed, env_kwargs=SHORT)


def _params(agent: PEARL) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.clone() for n in ("encoder", "actor", "critic", "critic_target") for k, v in getattr(agent, n).state_dict().items()}


# ---- the losses, by hand -----------------------------------------------------------------------
def test_sac_target_matches_a_hand_computation():
    rewards, terminals = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 0.0, 1.0])
    next_q = torch.tensor([[2.0, -1.0, 7.0], [3.0, -4.0, 9.0]])
    next_logp = torch.tensor([0.5, -1.0, 3.0])
    got = sac_target(rewards, terminals, next_q, next_logp, alpha=0.1, discount=0.9, reward_scale=2.0)
    # r·2 + 0.9·(min Q − 0.1·logπ); the terminal transition keeps only its reward.
    expected = torch.tensor([2.0 + 0.9 * (2.0 - 0.05), -4.0 + 0.9 * (-4.0 + 0.1), 1.0])
    torch.testing.assert_close(got, expected)


def test_the_update_regresses_the_critics_on_the_soft_target_of_the_target_critics():
    """One ``_update``'s critic loss against the target written out here: r·scale + γ(1 − d)
    (min_j Q̄_j(s', a', z) − α log π(a' | s', z)), a' ~ π(· | s', z) the NEXT action, Q̄ the target
    critics (made to differ from the critics so that using the wrong ones shows)."""
    import copy

    agent = _agent(auto_alpha=False, alpha=0.3, reward_scale=2.0, discount=0.8)
    agent._collect_iteration()
    with torch.no_grad():
        for p in agent.critic_target.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
        agent.rl_buffer.terminals[:, ::2] = 1.0  # terminal transitions in every task, so (1 − d) matters
    actor, critic, target, encoder = (copy.deepcopy(getattr(agent, n)) for n in ("actor", "critic", "critic_target", "encoder"))
    g_update, g_z = torch.Generator(), torch.Generator()
    g_update.set_state(agent.update_gen.get_state())
    g_z.set_state(agent.z_gen.get_state())
    cfg, M, B = agent.config, agent.config.meta_batch, agent.config.batch_size
    with torch.no_grad():  # the same draws as the update, in its order
        task_ids = torch.randint(cfg.num_train_tasks, (M,), generator=g_update)
        b = agent.rl_buffer.sample(task_ids, B, g_update)
        mean, var = encoder(agent._context(agent.enc_buffer.sample(task_ids, cfg.embedding_batch_size, g_update)))
        z = (mean + var.sqrt() * torch.randn(mean.shape, generator=g_z)).repeat_interleave(B, 0)
        s, a, r = b.obs.reshape(M * B, -1), b.actions.reshape(M * B, -1), b.rewards.reshape(-1)
        s2, d = b.next_obs.reshape(M * B, -1), b.terminals.reshape(-1)
        a2, logp2, _, _ = actor.rsample(torch.cat([s2, z], -1), g_update)
        x2 = torch.cat([s2, a2, z], -1)
        q_bar = torch.minimum(target.q1(x2).squeeze(-1), target.q2(x2).squeeze(-1))
        y = 2.0 * r + 0.8 * (1.0 - d) * (q_bar - 0.3 * logp2)
        x = torch.cat([s, a, z], -1)
        expected = ((critic.q1(x).squeeze(-1) - y) ** 2).mean() + ((critic.q2(x).squeeze(-1) - y) ** 2).mean()
    assert 0 < float(d.sum()) < M * B
    out = agent._update()
    assert out["critic_loss"] == pytest.approx(float(expected), rel=1e-5)
    # ... and the target critics moved by tau towards the updated critics (Polyak averaging).
    for new_target, old_target, new_critic in zip(agent.critic_target.parameters(), target.parameters(), agent.critic.parameters(), strict=True):
        torch.testing.assert_close(new_target, old_target + cfg.soft_target_tau * (new_critic - old_target))


@pytest.mark.parametrize("target_entropy, grows", [(50.0, True), (-50.0, False)])
def test_auto_temperature_rises_below_the_target_entropy_and_falls_above(target_entropy, grows):
    """Haarnoja et al. 2018b eq. 18: J(α) = E[−α log π − α H̄], so α grows while the policy's
    entropy (≈ −log π, a few nats here) is below the target H̄ and shrinks while above it."""
    agent = _agent(auto_alpha=True, alpha=0.5, target_entropy=target_entropy)
    agent._collect_iteration()
    before = float(agent.log_alpha.detach())
    out = agent._update()
    assert -50.0 < -out["log_pi"] < 50.0  # the entropy estimate lies between the two targets
    assert (float(agent.log_alpha.detach()) > before) == grows


def test_actor_log_prob_is_the_tanh_gaussian_density_in_the_normalised_box():
    from gymnasium import spaces

    torch.manual_seed(0)
    actor = TanhGaussianActor(3, spaces.Box(-0.1, 0.1, (2,)), (8,))
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    action, logp, mean, log_std = actor.rsample(x, torch.Generator().manual_seed(2))
    assert float(action.detach().abs().max()) <= 0.1
    ref = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()]
    ).log_prob((action / 0.1).clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    torch.testing.assert_close(logp, ref, rtol=1e-4, atol=1e-4)


def test_critic_loss_trains_the_encoder_and_the_actor_loss_does_not():
    agent = _agent()
    agent._collect_iteration()
    before = {k: v.clone() for k, v in agent.encoder.state_dict().items()}
    opt = agent.optimizers["encoder"]
    at_step: list[torch.Tensor] = []
    step = opt.step

    def recording_step(*args, **kwargs):
        at_step.extend(p.grad.clone() for p in agent.encoder.parameters())
        return step(*args, **kwargs)

    opt.step = recording_step
    agent._update()
    # The encoder moved, with a non-zero gradient from the critic loss + KL ...
    assert any(not torch.equal(before[k], v) for k, v in agent.encoder.state_dict().items())
    assert any(float(g.abs().sum()) > 0 for g in at_step)
    # ... and the actor's backward pass, which runs after it, added nothing to that gradient.
    for g, p in zip(at_step, agent.encoder.parameters(), strict=True):
        assert torch.equal(g, p.grad)


# ---- training and evaluation --------------------------------------------------------------------
def test_an_iteration_fills_both_buffers_as_the_paper():
    agent = _agent(replay_capacity=100)
    metrics = agent.train_iteration(0)
    # Initial data on all 4 tasks, then prior + posterior + extra episodes on 2 tasks (H = 10).
    assert 0 < metrics["env_steps"] <= 4 * 10 + 2 * 3 * 10
    assert int((agent.rl_buffer.size > 0).sum()) == 4
    assert agent.rl_buffer.transitions() == metrics["env_steps"]
    # The encoder buffer of a sampled task holds its prior + posterior episodes only (not the extra ones).
    assert int(agent.enc_buffer.size.max()) <= 2 * 10
    assert {"train/critic_loss", "train/kl", "rollout/prior_return", "rollout/posterior_return"} <= set(metrics)
    # Every episode ended by the 10-step time limit (truncation), none reached a goal: no stored
    # transition may be terminal, or the Bellman target would stop bootstrapping at the time limit.
    assert float(agent.rl_buffer.terminals.sum()) == 0.0


def test_a_true_termination_is_stored_as_terminal_and_a_truncation_is_not():
    from metarl.sampling import Rollout

    T, N = 3, 2
    ro = Rollout(obs=torch.arange(T * N * 2.0).reshape(T, N, 2), actions=torch.zeros(T, N, 2), rewards=torch.ones(T, N),
                 terminated=torch.tensor([[False, False], [True, False], [False, False]]),
                 truncated=torch.tensor([[False, False], [False, False], [False, True]]),
                 valid=torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0]]), next_obs=torch.full((N, 2), -1.0), extras={})
    tr, valid = PEARL._transitions(ro)
    assert tr.terminals[valid].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]  # time-major: (0,0) (0,1) (1,0) (1,1) (2,1)
    torch.testing.assert_close(tr.next_obs[0], ro.obs[1])  # s' of step t is the obs of step t + 1 ...
    torch.testing.assert_close(tr.next_obs[2], ro.next_obs)  # ... and the final obs after the last step


def test_evaluation_acts_with_the_prior_first_then_the_posterior_of_the_trial_so_far(monkeypatch):
    agent = _agent(num_exp_traj_eval=1)
    seen: list[tuple[int, ...]] = []
    forward = type(agent.encoder).forward

    def spy(self, context, mask=None):
        seen.append((tuple(context.shape), int(mask.sum())))
        return forward(self, context, mask)

    monkeypatch.setattr(type(agent.encoder), "forward", spy)
    tasks = agent.held_out_tasks()[:3]
    res = agent.evaluate(tasks, seed=4)
    assert isinstance(res, EvalResult) and res.x == "episode"
    assert res.returns.shape == (3, 3) and res.trial_returns.shape == (3,)
    np.testing.assert_allclose(res.trial_returns, res.returns.sum(1))
    # episode 0: prior (no encoder call); episodes 1 and 2: posterior of 1 then 2 episodes' context
    N = 3 * TINY.eval_trials_per_task
    D = agent.d.context_dim  # s ⊕ a ⊕ r ⊕ s' = 2 + 2 + 1 + 2
    assert D == 7 and [shape for shape, _ in seen] == [(N, 10, D), (N, 20, D)]
    assert seen[0][1] <= seen[1][1]
    seen.clear()
    all_prior = _agent(num_exp_traj_eval=3)
    monkeypatch.setattr(type(all_prior.encoder), "forward", spy)
    all_prior.evaluate(tasks, seed=4)
    assert seen == []
    # same seed, same result
    np.testing.assert_array_equal(agent.evaluate(tasks, seed=4).returns, res.returns)


def test_same_seed_same_curve_and_another_seed_differs():
    a, b, c = _agent(seed=1), _agent(seed=1), _agent(seed=2)
    ma = [a.train_iteration(i) for i in range(2)]
    mb = [b.train_iteration(i) for i in range(2)]
    mc = [c.train_iteration(i) for i in range(2)]
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s") and k != "rollout/steps_per_s"} for r in rows]  # noqa: E731
    assert strip(ma) == strip(mb)
    assert strip(ma) != strip(mc)
    pa, pb = _params(a), _params(b)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_resume_from_a_checkpoint_is_exact(tmp_path):
    straight = _agent(seed=3)
    rows = [straight.train_iteration(i) for i in range(3)]
    first = _agent(seed=3)
    for i in range(2):
        first.train_iteration(i)
    save_checkpoint(tmp_path / "c.pt", {"agent": first.state_dict()})
    resumed = _agent(seed=3)
    resumed.load_state_dict(load_checkpoint(tmp_path / "c.pt")["agent"])
    assert resumed.rl_buffer.transitions() == first.rl_buffer.transitions() > 0
    last = resumed.train_iteration(2)
    drop = lambda r: {k: v for k, v in r.items() if not k.endswith("_s") and k != "rollout/steps_per_s"}  # noqa: E731
    assert drop(last) == drop(rows[2])
    p1, p2 = _params(straight), _params(resumed)
    assert all(torch.equal(p1[k], p2[k]) for k in p1)
    for name in ("rl_buffer", "enc_buffer"):
        s1, s2 = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(s1[k], s2[k]) for k in ("obs", "actions", "rewards", "size", "ptr"))


def test_save_and_load_round_trip(tmp_path):
    agent = _agent(encoder="attention")
    agent.train_iteration(0)
    agent.save(tmp_path / "p.pt")
    again = PEARL.load(tmp_path / "p.pt")
    assert again.config == agent.config and again.iteration == 1
    assert all(torch.equal(v, _params(agent)[k]) for k, v in _params(again).items())


@pytest.mark.parametrize("encoder", ["mean", "attention"])
def test_other_encoders_train(encoder):
    agent = _agent(encoder=encoder)
    m = agent.train_iteration(0)
    assert np.isfinite(m["train/critic_loss"]) and m["train/kl"] >= 0


# ---- wiring and bad input --------------------------------------------------------------------
def test_registered_and_built_by_the_cli(tmp_path):
    from metarl.cli import main

    assert AGENTS["pearl"] == "metarl.agents.pearl:PEARL" and load_agent_class("pearl") is PEARL
    out = tmp_path / "run"
    flags = ["--encoder", "mean", "--num-train-tasks", "4", "--num-tasks-sample", "2", "--meta-batch", "2",
             "--num-initial-steps", "20", "--num-steps-prior", "20", "--num-extra-rl-steps-posterior", "20",
             "--num-train-steps-per-itr", "2", "--batch-size", "8", "--embedding-batch-size", "8",
             "--hidden-sizes", "8", "--encoder-hidden-sizes", "8", "--replay-capacity", "100", "--eval-trials-per-task", "1"]
    common = ["--iterations", "2", "--eval-tasks", "0", "--log-every", "0", "--checkpoint-every", "1", "--out", str(out)]
    assert main(["train", "pearl", *flags, *common]) == 0
    state = load_checkpoint(out / "checkpoints" / "ckpt-000002.pt")
    assert state["agent"]["rl_buffer"]["size"].sum() > 0 and state["agent"]["iteration"] == 2
    assert main(["eval", str(out), "--num-tasks", "3"]) == 0
    import json

    summary = json.loads((out / "eval.json").read_text())
    assert summary["agent"] == "pearl" and summary["x"] == "episode" and len(summary["curve"]) == TINY.eval_episodes
    assert "trial_return" in summary


@pytest.mark.parametrize(
    "change, match",
    [
        ({"encoder": "lstm"}, "encoder"),
        ({"num_tasks_sample": 9}, "num_tasks_sample = 9 exceeds num_train_tasks = 4"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_initial_steps": 0}, "num_initial_steps must be an int >= 1"),
        ({"num_exp_traj_eval": 5}, "num_exp_traj_eval = 5 exceeds eval_episodes = 3"),
        ({"hidden_sizes": ()}, "hidden_sizes"),
        ({"reward_scale": 0.0}, "reward_scale"),
        ({"discount": 1.5}, "discount"),
    ],
)
def test_bad_config_is_a_typed_error_naming_the_field(change, match):
    with pytest.raises(ConfigError, match=match):
        _agent(**change)


def test_training_tasks_can_be_the_held_out_list_and_evaluation_says_so():
    from metarl.errors import MetaRLWarning

    with pytest.warns(MetaRLWarning, match="training on the first 4 held-out tasks"):
        agent = _agent(train_tasks="held_out")
    assert agent.train_tasks == agent.held_out_tasks()[:4]
    extra = agent.evaluate(agent.held_out_tasks()[:2], seed=0).extra
    assert extra["train_tasks"] == "held_out" and extra["held_out_tasks_trained_on"] == 4
    sampled = _agent(seed=9)
    assert sampled.train_tasks != _agent(seed=10).train_tasks  # sampled with the run seed otherwise
    assert sampled.evaluate(sampled.held_out_tasks()[:2], seed=0).extra["held_out_tasks_trained_on"] == 0
    with pytest.raises(ConfigError, match="num_train_tasks = 41 exceeds the 40 held-out tasks"):
        _agent(train_tasks="held_out", num_train_tasks=41, num_tasks_sample=2)


def test_discrete_actions_are_refused():
    with pytest.raises(ConfigError, match="Box action space"):
        PEARL("metarl/Bandit-v0", TINY)


def test_trainer_resume_continues_bit_identically(tmp_path):
    """``metarl train`` stopped after 2 iterations and resumed gives the rows of an unbroken run."""
    from metarl.cli import main
    from metarl.logger import read_metrics

    flags = ["--num-train-tasks", "4", "--num-tasks-sample", "2", "--meta-batch", "2", "--num-initial-steps", "20",
             "--num-steps-prior", "20", "--num-extra-rl-steps-posterior", "20", "--num-train-steps-per-itr", "3",
             "--batch-size", "8", "--embedding-batch-size", "8", "--hidden-sizes", "8", "--encoder-hidden-sizes", "8",
             "--replay-capacity", "30", "--eval-tasks", "0", "--log-every", "0", "--checkpoint-every", "1", "--seed", "5"]
    assert main(["train", "pearl", *flags, "--iterations", "3", "--out", str(tmp_path / "a")]) == 0
    assert main(["train", "pearl", *flags, "--iterations", "2", "--out", str(tmp_path / "b")]) == 0
    assert main(["train", "pearl", *flags, "--iterations", "3", "--out", str(tmp_path / "b"), "--resume"]) == 0
    strip = lambda rows: [{k: v for k, v in r.items() if not (k == "wall_s" or k.endswith("_s") or k.endswith("steps_per_s"))} for r in rows]  # noqa: E731
    a, b = strip(read_metrics(tmp_path / "a" / "metrics.jsonl")), strip(read_metrics(tmp_path / "b" / "metrics.jsonl"))
    assert len(a) == 3 and a == b


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    """Networks, replay buffers and updates on the GPU give the CPU's results up to float rounding
    (all noise is drawn from CPU generators, so both devices draw the same numbers)."""
    cpu = PEARL(NAV, TINY, seed=4, env_kwargs=SHORT, device="cpu")
    gpu = PEARL(NAV, TINY, seed=4, env_kwargs=SHORT, device="cuda")
    mc, mg = cpu.train_iteration(0), gpu.train_iteration(0)
    assert mc["env_steps"] == mg["env_steps"]
    for k in ("train/critic_loss", "train/actor_loss", "train/kl", "rollout/prior_return"):
        assert mg[k] == pytest.approx(mc[k], rel=1e-3, abs=1e-4), k
    assert gpu.rl_buffer.obs.device.type == "cuda"
    tasks = cpu.held_out_tasks()[:2]
    np.testing.assert_allclose(gpu.evaluate(tasks, seed=0).returns, cpu.evaluate(tasks, seed=0).returns, rtol=1e-3, atol=1e-3)
