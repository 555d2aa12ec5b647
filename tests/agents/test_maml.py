"""MAML-RL: the batched inner step, the meta-gradient, advantages, determinism, resume, errors."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import metarl
from metarl.agents import MAML, MAMLConfig
from metarl.agents.maml import TaskBatch, _every_kth_episode, eval_lr_schedule
from metarl.errors import CheckpointError, ConfigError, TrainingDivergedError
from metarl.optim import (
    backtracking_line_search,
    conjugate_gradient,
    flatten,
    hessian_vector_product,
    unflatten,
)
from metarl.policies import batched_dist_params
from metarl.sampling import Rollout
from metarl.threads import parallel_map

TINY = MAMLConfig(meta_batch_size=3, episodes_per_task=2, horizon=6, hidden_sizes=(8,), cg_iters=3)


def _batch(M: int, T: int, E: int, obs_dim: int, act_dim: int, seed: int, dtype=torch.float32) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(M, T, E, dtype=dtype)
    mask[0, -2:, 0] = 0  # one episode ended early: its tail must not count
    return TaskBatch(
        obs=torch.randn(M, T, E, obs_dim, generator=g, dtype=dtype),
        actions=torch.randn(M, T, E, act_dim, generator=g, dtype=dtype),
        advantages=torch.randn(M, T, E, generator=g, dtype=dtype),
        mask=mask,
        episode_returns=torch.zeros(M, E, dtype=dtype),
    )


def _linear_agent(**kw) -> MAML:
    cfg = replace(TINY, hidden_sizes=(), **kw)
    return MAML("metarl/Navigation2D-v0", cfg, seed=0)


# ---- the inner step ------------------------------------------------------------------------------
def test_vmapped_inner_step_equals_hand_sgd_on_a_linear_policy() -> None:
    agent = _linear_agent(inner_lr=0.3)
    M, T, E = 3, 4, 2
    batch = _batch(M, T, E, 2, 2, seed=0)
    W = torch.randn(M, 2, 2, generator=torch.Generator().manual_seed(1))
    b = torch.randn(M, 2, generator=torch.Generator().manual_seed(2))
    log_std = torch.tensor([0.2, -0.1]).expand(M, 2)
    params = {"net.0.weight": W, "net.0.bias": b, "log_std": log_std}
    out = agent._adapt_step(params, batch, 0.3, first_order=False, iteration=0)
    for m in range(M):
        # loss = -(1/n) Σ A_i log N(a_i; W o_i + b, σ²):  ∂/∂μ log N = (a - μ)/σ²,
        # ∂/∂log σ log N = ((a - μ)/σ)² - 1.
        o = batch.obs[m].reshape(-1, 2)
        a = batch.actions[m].reshape(-1, 2)
        w = (batch.advantages[m] * batch.mask[m]).reshape(-1, 1)
        n = batch.mask[m].sum()
        sigma2 = torch.exp(2 * log_std[m])
        resid = a - (o @ W[m].T + b[m])
        g_mu = -(w * resid / sigma2)  # [n, 2]
        gW = g_mu.T @ o / n
        gb = g_mu.sum(0) / n
        gs = -(w * (resid**2 / sigma2 - 1)).sum(0) / n
        torch.testing.assert_close(out["net.0.weight"][m], W[m] - 0.3 * gW, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out["net.0.bias"][m], b[m] - 0.3 * gb, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out["log_std"][m], log_std[m] - 0.3 * gs, rtol=1e-5, atol=1e-6)


def test_vmapped_inner_step_equals_a_per_task_loop() -> None:
    agent = MAML("metarl/Navigation2D-v0", replace(TINY, hidden_sizes=(16, 16)), seed=0)
    M = 4
    batch = _batch(M, 5, 3, 2, 2, seed=3)
    base = {k: v.detach() for k, v in agent.params.items()}
    per_task = {k: v + 0.01 * torch.randn(M, *v.shape, generator=torch.Generator().manual_seed(4)) for k, v in base.items()}
    out = agent._adapt_step(per_task, batch, 0.1, first_order=False, iteration=0)
    for m in range(M):
        p = {k: v[m].clone().requires_grad_(True) for k, v in per_task.items()}
        loss = agent._inner_loss(p, batch.obs[m], batch.actions[m], batch.advantages[m], batch.mask[m])
        grads = torch.autograd.grad(loss, list(p.values()))
        for (k, v), g in zip(p.items(), grads, strict=True):
            torch.testing.assert_close(out[k][m], v.detach() - 0.1 * g, rtol=1e-5, atol=1e-6)


# ---- the meta-gradient ---------------------------------------------------------------------------
def _meta_problem(first_order: bool, steps: int = 1):
    cfg = replace(TINY, hidden_sizes=(4,), first_order=first_order, inner_lr=0.5, cg_subsample=1)
    agent = MAML("metarl/Navigation2D-v0", cfg, seed=1)
    agent.policy.double()
    agent.params = {k: v.detach().double().requires_grad_(True) for k, v in agent.params.items()}
    M = 2
    batches = [_batch(M, 3, 2, 2, 2, seed=10 + s, dtype=torch.float64) for s in range(steps)]
    valid = _batch(M, 3, 2, 2, 2, seed=20, dtype=torch.float64)
    with torch.no_grad():
        old = batched_dist_params(agent.policy, agent._adapted(batches, 0), valid.obs)
    old = tuple(d.detach() for d in old)

    def objective() -> torch.Tensor:
        return agent._outer_terms(agent._adapted(batches, 0), valid, old)[1]

    return agent, batches, valid, old, objective


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences(steps: int) -> None:
    agent, _, _, _, objective = _meta_problem(first_order=False, steps=steps)
    plist = list(agent.params.values())
    grad = flatten(torch.autograd.grad(objective(), plist))
    flat0 = flatten([p.detach() for p in plist])
    eps = 1e-6
    fd = torch.empty_like(flat0)
    with torch.no_grad():
        for i in range(flat0.numel()):
            for sign in (1, -1):
                x = flat0.clone()
                x[i] += sign * eps
                offset = 0
                for p in plist:
                    p.copy_(x[offset : offset + p.numel()].view_as(p))
                    offset += p.numel()
                val = float(objective())
                fd[i] = fd[i] + sign * val / (2 * eps) if sign == -1 else val / (2 * eps)
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-7)


def test_first_order_gradient_differs_and_matches_its_definition() -> None:
    agent_so, *_, obj_so = _meta_problem(first_order=False)
    g_so = flatten(torch.autograd.grad(obj_so(), list(agent_so.params.values())))
    agent, batches, valid, old, objective = _meta_problem(first_order=True)
    plist = list(agent.params.values())
    g_fo = flatten(torch.autograd.grad(objective(), plist))
    # FO-MAML: the gradient of the outer loss in the adapted parameters, summed over tasks
    # (dθ'/dθ taken as the identity; Finn et al. 2017 §5.2).
    with torch.no_grad():
        adapted = agent._adapted(batches, 0)
    leaf = {k: v.detach().requires_grad_(True) for k, v in adapted.items()}
    g_adapted = torch.autograd.grad(agent._outer_terms(leaf, valid, old)[1], list(leaf.values()))
    want = flatten([g.sum(0) for g in g_adapted])
    torch.testing.assert_close(g_fo, want, rtol=1e-10, atol=1e-12)
    assert (g_fo - g_so).norm() > 1e-3 * g_so.norm(), "first-order gradient should differ from second order"


def _reference_trpo_step(agent: MAML, batches, valid, old) -> dict[str, torch.Tensor]:
    """The straightforward second-order TRPO meta-step (the implementation before issue 10): the
    meta-gradient and the KL's Hessian-vector products by double backward through a fresh
    adaptation graph, conjugate gradient, the same backtracking line search. Returns new params."""
    cfg = agent.config
    plist = list(agent.params.values())
    loss = agent._outer_terms(agent._adapted(batches, 0), valid, old)[1]
    grad = flatten(torch.autograd.grad(loss, plist))
    if cfg.cg_subsample == 1:
        hvp = hessian_vector_product(lambda: agent._outer_terms(agent._adapted(batches, 0), valid, old)[2], plist, cfg.cg_damping)
    else:
        hvp = _subsampled_reference_hvp(agent, batches, valid, old)
    step_dir = conjugate_gradient(hvp, grad, cfg.cg_iters)
    step = step_dir * torch.sqrt(cfg.max_kl / (0.5 * (step_dir @ hvp(step_dir))))
    p0 = [p.detach().clone() for p in plist]

    def evaluate(fraction: float) -> tuple[float, float]:
        with torch.no_grad():
            for p, q, d in zip(plist, p0, unflatten(step, plist), strict=True):
                p.copy_(q - fraction * d)
            _, new_loss, kl = agent._outer_terms(agent._adapted(batches, 0), valid, old)
        return float(loss.detach()) - float(new_loss), float(kl)

    result = backtracking_line_search(evaluate, cfg.max_kl, cfg.ls_max_steps, cfg.ls_backtrack_ratio)
    assert result.accepted
    out = {k: v.detach().clone() for k, v in agent.params.items()}
    with torch.no_grad():
        for p, q in zip(plist, p0, strict=True):
            p.copy_(q)
    return out


def _subsampled_reference_hvp(agent: MAML, batches, valid, old):
    """Curvature on every k-th episode, by definition: the Hessian in θ of the mean KL on the
    subsample, through an adaptation on the subsample that is evaluated at the full-data
    adapted parameters (Jacobian of the inner steps from the subsample's inner losses)."""
    k = agent.config.cg_subsample
    sub = [_every_kth_episode(b, k) for b in batches]
    sub_valid, sub_old = _every_kth_episode(valid, k), tuple(d[:, :, ::k] for d in old)
    plist = list(agent.params.values())

    def kl() -> torch.Tensor:
        full = {n: v.detach() for n, v in agent._adapted(batches, 0).items()}
        via_sub = agent._adapted(sub, 0)
        # Same value as the full-data adaptation, Jacobian of the subsample's adaptation.
        adapted = {n: via_sub[n] - via_sub[n].detach() + full[n] for n in full}
        return agent._outer_terms(adapted, sub_valid, sub_old)[2]

    return hessian_vector_product(kl, plist, agent.config.cg_damping)


@pytest.mark.parametrize("steps", [1, 2])
def test_kl_hvp_through_the_adaptation_equals_the_double_backward_hvp(steps: int) -> None:
    agent, batches, valid, old, _ = _meta_problem(first_order=False, steps=steps)
    plist = list(agent.params.values())
    fast = agent._linearise(batches, valid, old, 0)
    hvp_ref = hessian_vector_product(lambda: agent._outer_terms(agent._adapted(batches, 0), valid, old)[2], plist, agent.config.cg_damping)
    grad_ref = flatten(torch.autograd.grad(agent._outer_terms(agent._adapted(batches, 0), valid, old)[1], plist))
    v = torch.randn(sum(p.numel() for p in plist), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(fast.hvp(v), hvp_ref(v), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(fast.grad, grad_ref, rtol=1e-10, atol=1e-12)


def test_categorical_policy_curvature_equals_the_double_backward_hvp() -> None:
    # Log-probabilities are not free parameters: the KL keeps a second-order term there, so the
    # curvature must not take the Gauss-Newton shortcut (the test fails if it does).
    agent = MAML("metarl/Bandit-v0", replace(TINY, hidden_sizes=(4,), horizon=3, cg_subsample=1), seed=0)
    agent.policy.double()
    agent.params = {k: v.detach().double().requires_grad_(True) for k, v in agent.params.items()}
    g = torch.Generator().manual_seed(5)

    def batch(seed: int) -> TaskBatch:
        g.manual_seed(seed)
        return TaskBatch(torch.randn(2, 3, 2, 1, generator=g, dtype=torch.float64), torch.randint(0, 5, (2, 3, 2), generator=g),
                         torch.randn(2, 3, 2, generator=g, dtype=torch.float64), torch.ones(2, 3, 2, dtype=torch.float64),
                         torch.zeros(2, 2, dtype=torch.float64))

    batches, valid = [batch(1)], batch(2)
    with torch.no_grad():
        old = tuple(d.detach() for d in batched_dist_params(agent.policy, agent._adapted(batches, 0), valid.obs))
    plist = list(agent.params.values())
    hvp_ref = hessian_vector_product(lambda: agent._outer_terms(agent._adapted(batches, 0), valid, old)[2], plist, agent.config.cg_damping)
    v = torch.randn(sum(p.numel() for p in plist), generator=g, dtype=torch.float64)
    torch.testing.assert_close(agent._linearise(batches, valid, old, 0).hvp(v), hvp_ref(v), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(("steps", "first_order", "cg_subsample"), [(1, False, 1), (2, False, 1), (1, True, 1), (1, False, 2)])
def test_trpo_step_equals_the_straightforward_second_order_step(steps: int, first_order: bool, cg_subsample: int) -> None:
    agent, batches, valid, old, _ = _meta_problem(first_order=first_order, steps=steps)
    # Larger than the tiny default so that the step is a real CG solve with a line search.
    agent.config = replace(agent.config, cg_iters=8, max_kl=0.05, cg_subsample=cg_subsample)
    if cg_subsample > 1:
        batches = [_batch(2, 3, 4, 2, 2, seed=30 + s, dtype=torch.float64) for s in range(steps)]
        valid = _batch(2, 3, 4, 2, 2, seed=40, dtype=torch.float64)
        with torch.no_grad():
            old = tuple(d.detach() for d in batched_dist_params(agent.policy, agent._adapted(batches, 0), valid.obs))
    before = {k: v.detach().clone() for k, v in agent.params.items()}
    want = _reference_trpo_step(agent, batches, valid, old)
    stats = agent._trpo_step(batches, valid, old, 0)
    assert stats["train/line_search_accepted"] == 1.0
    for k in want:
        moved = (want[k] - before[k]).abs().max()
        assert moved > 1e-6, k
        # Same math, different order of floating-point operations (CG amplifies the rounding).
        torch.testing.assert_close(agent.params[k].detach(), want[k], rtol=1e-7, atol=1e-7 * float(moved))


def _three_task_problem():
    agent, _, _, _, _ = _meta_problem(first_order=False, steps=1)
    batches = [_batch(3, 3, 4, 2, 2, seed=50, dtype=torch.float64)]
    valid = _batch(3, 3, 4, 2, 2, seed=51, dtype=torch.float64)
    with torch.no_grad():
        old = tuple(d.detach() for d in batched_dist_params(agent.policy, agent._adapted(batches, 0), valid.obs))
    return agent, batches, valid, old


def test_task_groups_give_the_same_update_up_to_rounding() -> None:
    agent, batches, valid, old = _three_task_problem()
    plist = list(agent.params.values())
    v = torch.randn(sum(p.numel() for p in plist), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    lins = []
    for groups in (1, 2, 3, 5):
        agent.config = replace(agent.config, update_task_groups=groups)
        lins.append(agent._linearise(batches, valid, old, 0))
    for lin in lins[1:]:
        assert lin.loss == pytest.approx(lins[0].loss, rel=1e-12)
        torch.testing.assert_close(lin.grad, lins[0].grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(lin.hvp(v), lins[0].hvp(v), rtol=1e-10, atol=1e-12)


def test_task_groups_on_threads_are_bit_identical_to_serial(monkeypatch) -> None:
    # Results depend on update_task_groups only, never on how many threads ran the groups.
    import metarl.gradient_meta as gm

    def run(serial: bool) -> tuple[dict, list]:
        if serial:
            monkeypatch.setattr(gm, "parallel_map", lambda fn, items, workers=None: [fn(x) for x in items])
        else:
            monkeypatch.setattr(gm, "parallel_map", lambda fn, items, workers=None: parallel_map(fn, items, workers=2))
        agent = MAML("metarl/Navigation2D-v0", replace(TINY, meta_batch_size=4, update_task_groups=3, cg_subsample=1), seed=2)
        metrics = [agent.train_iteration() for _ in range(2)]
        return _params(agent), [m["train/outer_loss"] for m in metrics]

    (p_serial, l_serial), (p_threads, l_threads) = run(True), run(False)
    assert l_serial == l_threads
    assert all(torch.equal(p_serial[k], p_threads[k]) for k in p_serial)


def test_update_task_groups_must_be_a_positive_int() -> None:
    with pytest.raises(ConfigError, match="update_task_groups"):
        MAML("metarl/Navigation2D-v0", replace(TINY, update_task_groups=0))


# ---- returns, baseline, advantages ------------------------------------------------------------
def test_advantages_are_discounted_returns_minus_the_per_task_linear_baseline() -> None:
    cfg = replace(TINY, gamma=0.9, baseline_reg=1e-3, normalize_advantages=False)
    agent = MAML("metarl/Navigation2D-v0", cfg, seed=0)
    T, M, E = 4, 2, 2
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(T, M * E, generator=g)
    obs = torch.randn(T, M * E, 2, generator=g)
    valid = torch.ones(T, M * E)
    valid[3, 1] = 0  # sub-env 1 (task 0) ended after step 2
    ro = Rollout(obs, torch.zeros(T, M * E, 2), rewards, torch.zeros(T, M * E, dtype=torch.bool),
                 torch.zeros(T, M * E, dtype=torch.bool), valid, obs[-1], {})
    batch = agent._process(ro, M, E)
    r, v = rewards.double().numpy(), valid.double().numpy()
    G = np.zeros_like(r)
    for n in range(M * E):
        run = 0.0
        for t in reversed(range(T)):
            run = (r[t, n] + 0.9 * run) * v[t, n]
            G[t, n] = run
    for m in range(M):
        rows, targets = [], []
        for e in range(E):
            n = m * E + e
            for t in range(T):
                if v[t, n]:
                    o = np.clip(obs[t, n].double().numpy(), -10, 10)
                    tt = t / 100
                    rows.append(np.concatenate([o, o**2, [tt, tt**2, tt**3, 1.0]]))
                    targets.append(G[t, n])
        X, y = np.array(rows), np.array(targets)
        w = np.linalg.solve(X.T @ X + 1e-3 * np.eye(X.shape[1]), X.T @ y)
        want = y - X @ w
        got = batch.advantages[m].transpose(0, 1).reshape(-1)[batch.mask[m].transpose(0, 1).reshape(-1) > 0]
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)
    assert batch.advantages[0, 3, 1] == 0 and batch.mask[0, 3, 1] == 0


def test_advantages_are_normalised_per_task() -> None:
    agent = MAML("metarl/Navigation2D-v0", TINY, seed=0)
    agent.train_iteration(0)
    tasks = agent.venv.unwrapped.sample_tasks(3, seed=0)
    ro = agent._sample(
        {k: v.detach().unsqueeze(0).expand(3, *v.shape) for k, v in agent.params.items()}, tasks, 2, seed=0
    )
    batch = agent._process(ro, 3, 2)
    for m in range(3):
        a = batch.advantages[m][batch.mask[m] > 0]
        assert abs(float(a.mean())) < 1e-5 and abs(float(a.std(unbiased=False)) - 1) < 1e-3


# ---- training: metrics, determinism, resume, variants -------------------------------------------
METRICS = {
    "rollout/pre_return", "rollout/post_return", "adapt/gain", "train/kl", "train/surrogate_improvement",
    "train/line_search_steps", "time/sample_s", "time/adapt_s", "time/outer_s", "env_steps",
}


def test_iteration_reports_the_promised_metrics_and_respects_the_trust_region() -> None:
    agent = MAML("metarl/Navigation2D-v0", TINY, seed=0)
    m = agent.train_iteration(0)
    assert METRICS <= set(m)
    assert m["env_steps"] == 2 * 3 * 2 * 6
    assert all(math.isfinite(v) for v in m.values())
    if m["train/line_search_accepted"]:
        assert 0 <= m["train/kl"] <= TINY.max_kl and m["train/surrogate_improvement"] > 0
    assert m["adapt/gain"] == pytest.approx(m["rollout/post_return"] - m["rollout/pre_return"])
    # The TRPO outer update is split into its phases, which lie inside time/outer_s.
    phases = [m["time/outer_grad_s"], m["time/outer_cg_s"], m["time/outer_line_search_s"]]
    assert all(p > 0 for p in phases) and sum(phases) <= m["time/outer_s"]


def _params(agent: MAML) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in agent.params.items()}


def test_two_runs_with_the_same_seed_are_identical() -> None:
    a, b = (MAML("metarl/Navigation2D-v0", TINY, seed=7) for _ in range(2))
    ma = [a.train_iteration() for _ in range(3)]
    mb = [b.train_iteration() for _ in range(3)]
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k]), k
    assert [m["rollout/post_return"] for m in ma] == [m["rollout/post_return"] for m in mb]
    c = MAML("metarl/Navigation2D-v0", TINY, seed=8)
    c.train_iteration()
    c.train_iteration()
    c.train_iteration()
    assert not torch.equal(a.params["net.0.weight"], c.params["net.0.weight"])


@pytest.mark.parametrize("outer", ["trpo", "ppo"])
def test_resume_from_state_dict_and_from_a_saved_file_is_exact(outer: str, tmp_path) -> None:
    cfg = replace(TINY, outer=outer, ppo_epochs=2)
    full = MAML("metarl/Navigation2D-v0", cfg, seed=3)
    for _ in range(3):
        full.train_iteration()
    half = MAML("metarl/Navigation2D-v0", cfg, seed=3)
    half.train_iteration()
    half.train_iteration()
    path = half.save(tmp_path / "maml.pt")
    resumed = MAML.load(path)
    other = MAML("metarl/Navigation2D-v0", cfg, seed=3)
    other.load_state_dict(half.state_dict())
    for agent in (resumed, other):
        assert agent.iteration == 2
        agent.train_iteration()
        for k in full.params:
            assert torch.equal(agent.params[k], full.params[k]), k


def test_load_rejects_foreign_or_mismatched_checkpoints(tmp_path) -> None:
    from metarl.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "x.pt", {"agent": {}})
    with pytest.raises(CheckpointError, match="MAML.save"):
        MAML.load(tmp_path / "x.pt")
    agent = MAML("metarl/Navigation2D-v0", TINY, seed=0)
    state = agent.state_dict()
    state["params"] = {"w": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="parameters"):
        agent.load_state_dict(state)


@pytest.mark.parametrize(
    "changes",
    [{"outer": "ppo", "ppo_epochs": 2}, {"outer": "vpg"}, {"first_order": True}, {"num_inner_steps": 2},
     {"gae_lambda": 0.95}, {"cg_subsample": 2}],
)
def test_variants_train_and_move_the_parameters(changes) -> None:
    cfg = replace(TINY, **changes)
    agent = MAML("metarl/Navigation2D-v0", cfg, seed=0)
    before = _params(agent)
    m = agent.train_iteration()
    assert METRICS <= set(m) and all(math.isfinite(v) for v in m.values())
    assert m["env_steps"] == (cfg.num_inner_steps + 1) * 3 * 2 * 6
    moved = any(not torch.equal(before[k], agent.params[k]) for k in before)
    assert moved or m.get("train/line_search_accepted") == 0.0


@pytest.mark.parametrize("env_id", ["metarl/Bandit-v0", "metarl/TabularMDP-v0"])
def test_discrete_families_train_with_a_categorical_policy(env_id: str) -> None:
    agent = MAML(env_id, replace(TINY, horizon=0), seed=0)
    assert type(agent.policy).__name__ == "CategoricalMLPPolicy"
    m = agent.train_iteration()
    assert all(math.isfinite(v) for v in m.values())
    assert agent.evaluate(agent.held_out_tasks()[:2], seed=0, num_steps=1).returns.shape == (2, 2)


# ---- NaN guard ---------------------------------------------------------------------------------------
def test_nan_rewards_stop_training_with_an_error_naming_iteration_and_quantity(monkeypatch) -> None:
    agent = MAML("metarl/Navigation2D-v0", TINY, seed=0)
    agent.train_iteration()
    env = agent.venv.unwrapped
    original = env._advance

    def poisoned(actions):
        reward, terminated = original(actions)
        reward[0] = np.nan
        return reward, terminated

    monkeypatch.setattr(env, "_advance", poisoned)
    with pytest.raises(TrainingDivergedError, match=r"iteration 1: discounted return"):
        agent.train_iteration()


def test_nan_parameters_stop_training_with_a_typed_error() -> None:
    agent = MAML("metarl/Navigation2D-v0", replace(TINY, outer="vpg"), seed=0)
    with torch.no_grad():
        agent.params["log_std"].fill_(float("nan"))
    with pytest.raises((TrainingDivergedError, metarl.errors.InvalidActionError)):
        agent.train_iteration()


# ---- evaluation and adaptation ----------------------------------------------------------------------
def test_evaluate_gives_a_curve_per_task_with_the_paper_lr_schedule() -> None:
    agent = MAML("metarl/Navigation2D-v0", TINY, seed=0)
    tasks = agent.held_out_tasks()[:4]
    res = agent.evaluate(tasks, seed=5, num_steps=3)
    assert res.x == "gradient_steps" and res.returns.shape == (4, 4)
    assert res.extra["inner_lrs"] == [0.1, 0.05, 0.05] == eval_lr_schedule(0.1, 3)
    again = agent.evaluate(tasks, seed=5, num_steps=3)
    np.testing.assert_array_equal(res.returns, again.returns)
    single = agent.adapt(tasks[0], num_steps=0, seed=5, episodes=TINY.episodes_per_task)
    assert len(single.returns) == 1


def test_adapt_returns_adapted_parameters_that_differ_from_the_meta_parameters() -> None:
    agent = MAML("metarl/Navigation2D-v0", TINY, seed=0)
    task = agent.held_out_tasks()[0]
    out = agent.adapt(task, num_steps=2, seed=0)
    assert len(out.returns) == 3
    assert set(out.params) == set(agent.params)
    assert not torch.equal(out.params["net.0.weight"], agent.params["net.0.weight"])
    with pytest.raises(metarl.errors.InvalidTaskError):
        agent.adapt({"type": "BanditTask", "probs": [0.5]}, num_steps=1)


# ---- configuration errors ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "culprit"),
    [({"meta_batch_size": 0}, "meta_batch_size"), ({"inner_lr": -1.0}, "inner_lr"), ({"gamma": 1.5}, "gamma"),
     ({"outer": "sgd"}, "outer"), ({"ls_backtrack_ratio": 1.0}, "ls_backtrack_ratio"), ({"horizon": -1}, "horizon"),
     ({"inner_lr": float("nan")}, "inner_lr")],
)
def test_bad_config_values_raise_config_errors_naming_the_field(changes, culprit) -> None:
    with pytest.raises(ConfigError, match=culprit):
        MAML("metarl/Navigation2D-v0", replace(TINY, **changes))


def test_unknown_config_fields_env_and_seed_are_typed_errors() -> None:
    with pytest.raises(ConfigError, match="inner_lrr"):
        MAML("metarl/Navigation2D-v0", {"inner_lrr": 0.1})
    with pytest.raises(metarl.errors.UnknownEnvError, match="did you mean"):
        MAML("metarl/Navigaton2D-v0", TINY)
    with pytest.raises(ConfigError, match="seed"):
        MAML("metarl/Navigation2D-v0", TINY, seed=-1)


# ---- presets ---------------------------------------------------------------------------------------------
def _maml_presets() -> list[str]:
    from metarl.config import list_presets

    return [p for p in list_presets() if p.startswith("maml-")]


def test_paper_presets_exist() -> None:
    names = set(_maml_presets())
    for want in ("navigation2d", "halfcheetah-vel", "halfcheetah-dir", "ant-vel", "ant-dir", "bandit", "tabular-mdp"):
        assert any(want in n for n in names), want


@pytest.mark.parametrize("name", _maml_presets())
def test_presets_build_and_run_one_iteration(name: str) -> None:
    from metarl.config import build_config, load_preset

    preset = load_preset(name)
    if "metaworld" in name and importlib.util.find_spec("metaworld") is None:
        pytest.skip("Meta-World preset: runs in the [metaworld] venv (tests/envs/test_metaworld.py)")
    assert preset.agent == "maml" and preset.source
    cfg = build_config(MAMLConfig, preset.config)
    assert cfg.inner_lr > 0
    assert preset.env in metarl.registered_envs(), f"preset {name} names unregistered env {preset.env}"
    agent = MAML.from_preset(name, meta_batch_size=2, episodes_per_task=2, horizon=min(cfg.horizon or 5, 5), cg_iters=2)
    m = agent.train_iteration()
    assert all(math.isfinite(v) for v in m.values())


# ---- device --------------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_iteration_matches_cpu() -> None:
    cfg = replace(TINY, outer="vpg")
    cpu = MAML("metarl/Navigation2D-v0", cfg, seed=0)
    gpu = MAML("metarl/Navigation2D-v0", cfg, seed=0, device="cuda")
    assert gpu.params["log_std"].device.type == "cuda"
    mc, mg = cpu.train_iteration(), gpu.train_iteration()
    assert mc["rollout/pre_return"] == pytest.approx(mg["rollout/pre_return"], rel=1e-4)
    for k in cpu.params:
        torch.testing.assert_close(cpu.params[k], gpu.params[k].cpu(), rtol=1e-3, atol=1e-4)
