"""RL²: memory resets only at trial boundaries, GAE over trials, determinism, resume, API, errors."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

import metarl
from metarl.agent import AGENTS, EvalResult, load_agent_class
from metarl.agents.rl2 import RL2, GRUActorCritic, RL2Config, check_config, trial_advantages
from metarl.envs.bandit import BanditTask
from metarl.errors import CheckpointError, ConfigError

TINY = RL2Config(num_trials=32, hidden_size=16, episodes_per_trial=4, update_epochs=2, num_minibatches=2, eval_trials_per_task=3)
BANDIT = {"num_arms": 3, "horizon": 2}


def _net(seed: int = 0) -> GRUActorCritic:
    torch.manual_seed(seed)
    from gymnasium import spaces

    return GRUActorCritic(6, spaces.Discrete(3), 16)


def _stepwise(net: GRUActorCritic, x: torch.Tensor, starts: torch.Tensor, perturb_before: int | None) -> torch.Tensor:
    """Policy outputs ``[T, N, A]`` step by step, adding noise to the hidden state before one step."""
    h = net.initial_state(x.shape[1])
    outs = []
    for t in range(x.shape[0]):
        if t == perturb_before:
            h = h + torch.randn(h.shape, generator=torch.Generator().manual_seed(1))
        out, _, h = net(x[t : t + 1], h, starts[t : t + 1])
        outs.append(out[0])
    return torch.stack(outs)


def test_hidden_state_resets_only_at_trial_boundaries() -> None:
    net = _net()
    T, N, boundary = 12, 4, 6
    x = torch.randn(T, N, 6, generator=torch.Generator().manual_seed(0))
    starts = torch.zeros(T, N, dtype=torch.bool)
    starts[0] = True
    starts[boundary] = True  # a new trial starts at step 6 (episode ends inside trials are not boundaries)
    with torch.no_grad():
        base = _stepwise(net, x, starts, None)
        at_boundary = _stepwise(net, x, starts, boundary)  # perturb the state the new trial would inherit
        mid_trial = _stepwise(net, x, starts, 3)  # perturb the state inside the first trial
    torch.testing.assert_close(at_boundary, base, rtol=0, atol=0)
    assert (mid_trial[3:boundary] - base[3:boundary]).abs().max() > 1e-3  # later outputs of the trial change
    torch.testing.assert_close(mid_trial[boundary:], base[boundary:], rtol=0, atol=0)  # ...but not the next trial's


def test_sequence_forward_matches_stepping_with_resets() -> None:
    net = _net()
    x = torch.randn(9, 5, 6, generator=torch.Generator().manual_seed(2))
    starts = torch.zeros(9, 5, dtype=torch.bool)
    starts[0] = True
    starts[4, [1, 3]] = True  # trials of different sub-envs restart at different times
    with torch.no_grad():
        seq, values, h = net(x, net.initial_state(5), starts)
        step = _stepwise(net, x, starts, None)
    torch.testing.assert_close(seq, step, rtol=1e-5, atol=1e-6)
    assert values.shape == (9, 5) and h.shape == (5, 16)


def test_rollout_clears_memory_where_the_env_starts_a_trial() -> None:
    """In a rollout spanning two trials, the second trial's first value equals a fresh state's."""
    agent = RL2("metarl/Bandit-v0", dataclasses.replace(TINY, episodes_per_trial=2), env_kwargs={"num_arms": 3, "horizon": 1})
    agent.horizon = 4  # two trials of 2 one-pull episodes per sub-env
    ro, _, _ = agent._rollout()
    starts = ro.extras["trial_start"]
    assert starts[0].all() and starts[2].all() and not starts[[1, 3]].any()
    with torch.no_grad():
        _, fresh, _ = agent.net(ro.obs[2:3], agent.net.initial_state(32))
    torch.testing.assert_close(ro.extras["value"][2], fresh[0])


def test_gae_over_trials_matches_a_hand_computation() -> None:
    g, lam = 0.9, 0.5
    r = torch.tensor([[1.0, 0.0], [2.0, 1.0], [0.5, 3.0]])
    v = torch.tensor([[0.5, 1.0], [1.5, 2.0], [1.0, 0.5]])
    last = torch.tensor([4.0, 7.0])
    # Column 0: the trial ends (terminates) at t=1, a new trial runs at t=2 and is truncated by the
    # rollout's end (bootstraps from last=4). Column 1: one trial, truncated at the end (last=7).
    end = torch.tensor([[False, False], [True, False], [False, False]])
    adv, ret = trial_advantages(r, v, last, end, g, lam)

    d0 = [1.0 + g * 1.5 - 0.5, 2.0 - 1.5, 0.5 + g * 4.0 - 1.0]  # no bootstrap at the termination
    a0 = [0.0, 0.0, 0.0]
    a0[2] = d0[2]
    a0[1] = d0[1]  # the termination stops the backward recursion
    a0[0] = d0[0] + g * lam * a0[1]
    d1 = [0.0 + g * 2.0 - 1.0, 1.0 + g * 0.5 - 2.0, 3.0 + g * 7.0 - 0.5]
    a1 = [0.0, 0.0, d1[2]]
    a1[1] = d1[1] + g * lam * a1[2]
    a1[0] = d1[0] + g * lam * a1[1]
    want = torch.tensor([a0, a1]).T
    torch.testing.assert_close(adv, want)
    torch.testing.assert_close(ret, want + v)
    # Termination vs truncation at the same final step: only the bootstrap term differs.
    end_last = end.clone()
    end_last[2, 1] = True
    adv_term, _ = trial_advantages(r, v, last, end_last, g, lam)
    torch.testing.assert_close(adv[2, 1] - adv_term[2, 1], torch.tensor(g * 7.0))


def _train(iterations: int, seed: int = 3, **kw) -> tuple[RL2, list[dict]]:
    agent = RL2("metarl/Bandit-v0", dataclasses.replace(TINY, **kw), seed=seed, env_kwargs=BANDIT)
    return agent, [agent.train_iteration(i) for i in range(iterations)]


def test_same_seed_identical_training_on_cpu() -> None:
    a, ma = _train(3)
    b, mb = _train(3)
    for x, y in zip(ma, mb, strict=True):
        assert {k: v for k, v in x.items() if not k.endswith("_s")} == {k: v for k, v in y.items() if not k.endswith("_s")}
    for (name, p), q in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    c, mc = _train(3, seed=4)
    assert mc[-1]["rollout/trial_return"] != ma[-1]["rollout/trial_return"] or not torch.equal(
        c.net.policy_head.weight, a.net.policy_head.weight
    )


def test_state_dict_resumes_exactly() -> None:
    straight, m = _train(4)
    half, _ = _train(2)
    state = half.state_dict()
    resumed = RL2("metarl/Bandit-v0", TINY, seed=3, env_kwargs=BANDIT)
    resumed.load_state_dict(state)
    m_resumed = [resumed.train_iteration(i) for i in (2, 3)]
    assert m_resumed[-1]["train/policy_loss"] == m[-1]["train/policy_loss"]
    for p, q in zip(straight.net.parameters(), resumed.net.parameters(), strict=True):
        assert torch.equal(p, q)


def test_late_phase_switches_batch_and_step_size_and_resumes_exactly() -> None:
    late = {"late_iteration": 2, "late_num_trials": 8, "late_learning_rate": 1e-4}
    straight, m = _train(4, **late)
    assert [x["env_steps"] for x in m] == [32 * 8, 32 * 8, 8 * 8, 8 * 8]  # trials x 4 two-step episodes
    assert [x["train/learning_rate"] for x in m] == [TINY.learning_rate] * 2 + [1e-4] * 2
    assert straight.phase(1) == (32, TINY.learning_rate, TINY.gamma)
    assert straight.phase(2) == straight.phase(10**6) == (8, 1e-4, TINY.gamma)
    # Resuming from a checkpoint taken before the switch lands on the same bits after it.
    half, _ = _train(1, **late)
    resumed = RL2("metarl/Bandit-v0", dataclasses.replace(TINY, **late), seed=3, env_kwargs=BANDIT)
    resumed.load_state_dict(half.state_dict())
    m_resumed = [resumed.train_iteration(i) for i in (1, 2, 3)]
    assert m_resumed[-1]["train/policy_loss"] == m[-1]["train/policy_loss"]
    for p, q in zip(straight.net.parameters(), resumed.net.parameters(), strict=True):
        assert torch.equal(p, q)
    # late_iteration 0 (the default) never switches; a late batch too small to split is an error.
    assert _train(1, late_num_trials=1)[0].phase(10**6) == (32, TINY.learning_rate, TINY.gamma)
    with pytest.raises(ConfigError, match=r"num_minibatches \(2\) exceeds late_num_trials \(1\)"):
        check_config(dataclasses.replace(TINY, late_iteration=5, late_num_trials=1))


def test_late_gamma_discounts_the_late_phase_only() -> None:
    late = {"late_iteration": 2, "late_num_trials": 32, "late_learning_rate": TINY.learning_rate}
    plain, m = _train(3, **late)
    longer, m_longer = _train(3, late_gamma=1.0, **late)
    assert longer.phase(1)[2] == TINY.gamma and longer.phase(2)[2] == 1.0
    # Same bits before the switch; the late update sees other advantages, hence another loss.
    untimed = [[{k: v for k, v in x.items() if not k.endswith("_s")} for x in run[:2]] for run in (m, m_longer)]
    assert untimed[0] == untimed[1]
    assert m_longer[2]["train/policy_loss"] != m[2]["train/policy_loss"]
    # None (the default) keeps gamma; late_gamma equal to gamma is the same run.
    same, m_same = _train(3, late_gamma=TINY.gamma, **late)
    assert m_same[2]["train/policy_loss"] == m[2]["train/policy_loss"]
    with pytest.raises(ConfigError, match=r"late_gamma must be None or lie in \[0, 1\], got 1.5"):
        check_config(dataclasses.replace(TINY, late_gamma=1.5))


def test_save_and_load_round_trip(tmp_path) -> None:
    agent, _ = _train(1)
    path = tmp_path / "rl2.pt"
    agent.save(path)
    loaded = RL2.load(path)
    assert loaded.config == agent.config and loaded.env_kwargs == BANDIT
    obs = agent.trials.reset(seed=0)[0]
    agent.action_gen.manual_seed(9)
    loaded.action_gen.manual_seed(9)
    a1, h1 = agent.act(obs)
    a2, h2 = loaded.act(obs)
    np.testing.assert_array_equal(a1, a2)
    torch.testing.assert_close(h1, h2)
    (tmp_path / "other.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        RL2.load(tmp_path / "other.pt")


def test_chunked_bptt_sees_the_same_sequence_and_trains() -> None:
    agent, _ = _train(0, bptt_chunk=3, episodes_per_trial=4)  # trials of 8 steps in chunks of 3
    ro, chunk_states, _ = agent._rollout()
    assert chunk_states.shape == (3, 32, 16)
    with torch.no_grad():
        full, _, _ = agent.net(ro.obs, agent.net.initial_state(32), ro.extras["trial_start"])
        parts = [agent.net(ro.obs[a : a + 3], chunk_states[c], ro.extras["trial_start"][a : a + 3])[0] for c, a in enumerate(range(0, 8, 3))]
    torch.testing.assert_close(torch.cat(parts), full, rtol=1e-5, atol=1e-6)
    m = agent.train_iteration(0)
    assert np.isfinite(m["train/policy_loss"]) and m["env_steps"] == 32 * 8


def test_act_carries_state_and_validates_obs() -> None:
    agent = RL2("metarl/Bandit-v0", TINY, env_kwargs=BANDIT)
    obs, _ = agent.trials.reset(seed=0)
    a, h = agent.act(obs)
    assert a.shape == (32,) and h.shape == (32, 16)
    a1, h1 = agent.act(obs[0], deterministic=True)
    assert np.ndim(a1) == 0 and h1.shape == (1, 16)
    _, h2 = agent.act(obs, h)
    assert not torch.equal(h, h2)
    with pytest.raises(ConfigError, match=r"obs must have shape \[N, 6\]"):
        agent.act(np.zeros((2, 5)))


def test_evaluate_reports_episodes_trials_and_baselines() -> None:
    agent = RL2("metarl/Bandit-v0", TINY, env_kwargs={"num_arms": 3, "horizon": 1})
    tasks = metarl.make_vec("metarl/Bandit-v0", 1, num_arms=3).held_out_tasks()[:5]
    res = agent.evaluate(tasks, seed=0)
    assert isinstance(res, EvalResult) and res.x == "episode"
    assert res.returns.shape == (5, 4) and res.trial_returns.shape == (5,)
    np.testing.assert_allclose(res.trial_returns, res.returns.sum(1))
    assert {"random", "ucb1", "thompson", "gittins", "greedy", "epsilon_greedy"} <= set(res.baselines)
    assert all(v.shape == (5,) for v in res.baselines.values()) and "ucb1_c" in res.extra
    again = agent.evaluate(tasks, seed=0)
    np.testing.assert_array_equal(res.returns, again.returns)


def test_relabeled_evaluation_averages_a_policys_arm_preference_over_arm_orders() -> None:
    """A policy that always pulls arm 0 scores the whole trial on a task whose arm 0 always pays
    and the other arms never; on relabeled copies it meets the paying arm in 1 of 3 orders."""
    cfg = dataclasses.replace(TINY, eval_trials_per_task=300)
    agent = RL2("metarl/Bandit-v0", cfg, env_kwargs={"num_arms": 3, "horizon": 1})
    with torch.no_grad():
        agent.net.policy_head.weight.zero_()
        agent.net.policy_head.bias.copy_(torch.tensor([30.0, 0.0, 0.0]))
    task = BanditTask(probs=np.array([1.0, 0.0, 0.0]))
    agent.config.eval_relabel = False
    fixed = agent.evaluate([task], seed=0)
    agent.config.eval_relabel = True
    relabeled = agent.evaluate([task], seed=0)
    assert fixed.trial_returns[0] == 4.0  # 4 pulls of arm 0
    # 300 trials, each 4 (p = 1/3) or 0: mean 4/3, standard error 0.11
    assert 1.0 < relabeled.trial_returns[0] < 1.7
    # the baselines ran on the same copies: one score per task, symmetric policies, so near their usual level
    assert relabeled.baselines["gittins"].shape == (1,) and relabeled.baselines["gittins"][0] > 3.0
    np.testing.assert_array_equal(relabeled.returns, agent.evaluate([task], seed=0).returns)  # same seed, same copies


def test_relabeling_leaves_families_without_a_symmetry_unchanged() -> None:
    cfg = dataclasses.replace(TINY, episodes_per_trial=2, eval_baselines=False)  # no classic baselines for Box actions
    agent = RL2("metarl/Navigation2D-v0", cfg, env_kwargs={"max_episode_steps": 5})
    tasks = metarl.make_vec("metarl/Navigation2D-v0", 1).held_out_tasks()[:3]
    on = agent.evaluate(tasks, seed=3)
    agent.config.eval_relabel = False
    np.testing.assert_array_equal(on.returns, agent.evaluate(tasks, seed=3).returns)


def test_tabular_mdp_agent_runs_with_psrl_baseline() -> None:
    agent = RL2("metarl/TabularMDP-v0", dataclasses.replace(TINY, episodes_per_trial=2), env_kwargs={"max_episode_steps": 3})
    m = agent.train_iteration(0)
    assert m["env_steps"] == 32 * 6
    res = agent.evaluate(metarl.make_vec("metarl/TabularMDP-v0", 1).held_out_tasks()[:2], seed=1)
    assert set(res.baselines) == {"random", "psrl", "ucrl2", "beb", "epsilon_greedy", "greedy"} and res.returns.shape == (2, 2)


def test_continuous_actions_train() -> None:
    agent = RL2("metarl/Navigation2D-v0", dataclasses.replace(TINY, episodes_per_trial=2), env_kwargs={"max_episode_steps": 5})
    m = agent.train_iteration(0)
    assert np.isfinite(m["train/policy_loss"]) and m["env_steps"] == 32 * 10


def test_registered_and_default_env() -> None:
    assert AGENTS["rl2"] == "metarl.agents.rl2:RL2"
    assert load_agent_class("rl2") is RL2
    from metarl.agents import RL2 as exported

    assert exported is RL2
    agent = RL2(config=dataclasses.replace(TINY, episodes_per_trial=10))
    assert agent.env_id == "metarl/Bandit-v0" and agent.env_kwargs == {"num_arms": 5, "horizon": 1}
    assert agent.horizon == 10


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("num_trials", 0, "num_trials must be a positive int, got 0"),
        ("gamma", 1.5, r"gamma must lie in \[0, 1\], got 1.5"),
        ("learning_rate", -1.0, "learning_rate must be a positive number"),
        ("bptt_chunk", -2, "bptt_chunk must be an int >= 0"),
        ("num_minibatches", 64, "exceeds num_trials"),
        ("entropy_coef", float("nan"), "entropy_coef must be a number >= 0"),
        ("late_iteration", -1, "late_iteration must be an int >= 0"),
        ("late_num_trials", 0, "late_num_trials must be a positive int, got 0"),
        ("late_learning_rate", 0.0, "late_learning_rate must be a positive number"),
    ],
)
def test_bad_config_is_a_typed_error(field: str, value, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_config(dataclasses.replace(TINY, **{field: value}))


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ConfigError, match="seed must be a non-negative int"):
        RL2("metarl/Bandit-v0", TINY, seed=-1)
    with pytest.raises(ConfigError, match="device"):
        RL2("metarl/Bandit-v0", TINY, device="tpu:0")
    with pytest.raises(metarl.errors.UnknownEnvError, match="did you mean"):
        RL2("metarl/Bandti-v0", TINY)
    with pytest.raises(ConfigError, match="iterations"):
        RL2("metarl/Bandit-v0", TINY, env_kwargs=BANDIT).learn(-1)


def test_presets_load_into_the_config() -> None:
    from metarl.config import build_config, load_preset

    names = [f"rl2-bandit-k{k}-n{n}" for k in (5, 10, 50) for n in (10, 100, 500)]
    names += [f"rl2-tabular-mdp-n{n}" for n in (10, 25, 50, 75, 100)]
    for name in names:
        preset = load_preset(name)
        cfg = check_config(build_config(RL2Config, preset.config, source=f"preset {name}"))
        # The paper's GRU of 256 units, unless the preset's source says it departs (issue 11: GRU 64).
        assert preset.agent == "rl2" and (
            cfg.hidden_size == 256 or re.search(rf"GRU (of )?{cfg.hidden_size}\b", preset.source)
        )
        n = int(name.rsplit("-n", 1)[1])
        assert cfg.episodes_per_trial == n
        trial_len = n * preset.env_kwargs.get("horizon", preset.env_kwargs.get("max_episode_steps", 1))
        assert cfg.bptt_chunk == 0 or cfg.bptt_chunk < trial_len  # long trials use truncated BPTT


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    cpu = RL2("metarl/Bandit-v0", TINY, env_kwargs=BANDIT)
    gpu = RL2("metarl/Bandit-v0", TINY, env_kwargs=BANDIT, device="cuda")
    gpu.net.load_state_dict(cpu.net.state_dict())
    x = torch.randn(7, 32, 6, generator=torch.Generator().manual_seed(0))
    starts = torch.zeros(7, 32, dtype=torch.bool)
    starts[0] = True
    starts[3, :5] = True
    with torch.no_grad():
        out_c, v_c, _ = cpu.net(x, cpu.net.initial_state(32), starts)
        out_g, v_g, _ = gpu.net(x.cuda(), gpu.net.initial_state(32, "cuda"), starts.cuda())
    torch.testing.assert_close(out_g.cpu(), out_c, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(v_g.cpu(), v_c, rtol=1e-4, atol=1e-5)
    m = gpu.train_iteration(0)  # rollout envs on CPU, network and update on the GPU
    assert np.isfinite(m["train/policy_loss"]) and next(gpu.net.parameters()).is_cuda


# --- time_input: the fraction of the trial's episodes done, as an extra GRU input ---------------
def test_time_input_counts_finished_episodes_and_clears_at_trial_starts() -> None:
    """The count rides in the state's last column: stepping and a whole-sequence forward agree."""
    cfg = dataclasses.replace(TINY, episodes_per_trial=3, time_input=True)
    agent = RL2("metarl/Bandit-v0", cfg, env_kwargs=BANDIT)
    agent.horizon = 12  # two trials of 3 two-step episodes per sub-env
    ro, _, _ = agent._rollout()
    starts = ro.extras["trial_start"]
    assert starts[0].all() and starts[6].all() and not starts[[1, 2, 3, 4, 5, 7]].any()
    with torch.no_grad():
        out, values, h = agent.net(ro.obs, agent.net.initial_state(32), starts)
    # The rollout stepped the network one step at a time; the sequence forward gives the same bits.
    torch.testing.assert_close(agent.net.log_prob(out, ro.actions), ro.extras["logp"], rtol=0, atol=0)
    torch.testing.assert_close(values, ro.extras["value"], rtol=0, atol=0)
    assert h.shape == (32, 17) and h[:, -1].eq(2).all()  # 2 episodes finished before the last one's end
    # The input the GRU saw at each step: episodes finished in this trial / 3.
    with torch.no_grad():
        counts = []
        state = agent.net.initial_state(32)
        for t in range(12):
            state = state * (~starts[t]).unsqueeze(-1)
            counts.append(state[:, -1] + ro.obs[t, :, -1])
            _, _, state = agent.net(ro.obs[t : t + 1], state)
    expected = torch.tensor([0, 0, 1, 1, 2, 2] * 2, dtype=torch.float32).unsqueeze(-1).expand(12, 32)
    torch.testing.assert_close(torch.stack(counts), expected)


def test_time_input_changes_the_policy_and_survives_save_and_load(tmp_path) -> None:
    cfg = dataclasses.replace(TINY, time_input=True)
    agent = RL2("metarl/Bandit-v0", cfg, env_kwargs=BANDIT)
    assert agent.net.gru.input_size == agent.trials.single_observation_space.shape[0] + 1
    agent.train_iteration(0)
    obs, _ = agent.trials.reset(seed=0)
    _, h = agent.act(obs)
    assert h.shape == (32, 17)
    # The same trial observation at a later point of the trial gives other action probabilities.
    late = h.clone()
    late[:, -1] = 3.0
    with torch.no_grad():
        x = torch.as_tensor(obs).unsqueeze(0)
        early_out, _, _ = agent.net(x, h)
        late_out, _, _ = agent.net(x, late)
    assert (early_out - late_out).abs().max() > 1e-4
    agent.save(tmp_path / "rl2.pt")
    loaded = RL2.load(tmp_path / "rl2.pt")
    assert loaded.config.time_input and loaded.net.gru.input_size == agent.net.gru.input_size
    with torch.no_grad():
        torch.testing.assert_close(loaded.net(x, h)[0], early_out, rtol=0, atol=0)
