"""ProMP, E-MAML and Reptile (and MAML with DiCE): their losses and updates against hand
computations, the batched second-order inner step of LVC/DiCE against plain autograd,
determinism, exact resume, the CLI (train, resume, eval), presets and bad configs."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

import metarl
from metarl.agents import (
    EMAML,
    MAML,
    EMAMLConfig,
    MAMLConfig,
    ProMP,
    ProMPConfig,
    Reptile,
    ReptileConfig,
)
from metarl.errors import ConfigError
from metarl.gradient_meta import TaskBatch
from metarl.optim import flatten
from metarl.policies import stack_params

SMALL = dict(meta_batch_size=3, episodes_per_task=2, horizon=6, hidden_sizes=(8,))
AGENTS = {
    "promp": (ProMP, ProMPConfig(**SMALL, promp_steps=2, adaptive_inner_kl=True)),
    "emaml": (EMAML, EMAMLConfig(**SMALL, cg_iters=3)),
    "emaml-vpg": (EMAML, EMAMLConfig(**SMALL, outer="vpg")),
    "reptile": (Reptile, ReptileConfig(**SMALL, num_inner_steps=2)),
    "maml-dice": (MAML, MAMLConfig(**SMALL, cg_iters=3, inner_estimator="dice")),
    "promp-dice": (ProMP, ProMPConfig(**SMALL, promp_steps=2, inner_estimator="dice", num_inner_steps=2)),
}
ENV = "metarl/Navigation2D-v0"


def _batch(M: int, T: int, E: int, seed: int) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(M, T, E, dtype=torch.float64)
    mask[0, -2:, 0] = 0  # one episode ended early: its tail must not count
    return TaskBatch(
        obs=torch.randn(M, T, E, 2, generator=g, dtype=torch.float64),
        actions=torch.randn(M, T, E, 2, generator=g, dtype=torch.float64),
        advantages=torch.randn(M, T, E, generator=g, dtype=torch.float64),
        mask=mask,
        episode_returns=torch.randn(M, E, generator=g, dtype=torch.float64),
    )


def _double(agent):
    agent.policy.double()
    agent.params = {k: v.detach().double().requires_grad_(True) for k, v in agent.params.items()}
    if agent.optimizer is not None:
        agent.optimizer = type(agent.optimizer)(list(agent.params.values()), lr=agent.optimizer.defaults["lr"])
    return agent


def _gauss_logp(mu: torch.Tensor, log_std: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return (-0.5 * ((a - mu) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def _gauss_kl(mu0, ls0, mu1, ls1) -> torch.Tensor:  # KL(N0 ‖ N1), diagonal
    return (ls1 - ls0 + (torch.exp(2 * ls0) + (mu0 - mu1) ** 2) / (2 * torch.exp(2 * ls1)) - 0.5).sum(-1)


# ---- the batched second-order inner step ---------------------------------------------------------
@pytest.mark.parametrize(("cls", "estimator"), [(ProMP, "lvc"), (ProMP, "dice"), (MAML, "dice")])
def test_batched_inner_step_differentiates_lvc_and_dice_like_plain_autograd(cls, estimator) -> None:
    """vmap(grad(·)) with ⊥ inside gives the same meta-gradient as per-task double backward."""
    cfg = (ProMPConfig if cls is ProMP else MAMLConfig)(**{**SMALL, "hidden_sizes": (4,)}, inner_estimator=estimator, inner_lr=0.5)
    agent = _double(cls(ENV, cfg, seed=1))
    M = 2
    batch = _batch(M, 3, 2, seed=3)
    weights = {k: torch.randn(M, *v.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64) for k, v in agent.params.items()}
    plist = list(agent.params.values())
    adapted = agent._adapt_step(stack_params(agent.params, M), batch, 0.5, first_order=False, iteration=0)
    batched = torch.autograd.grad(sum((weights[k] * adapted[k]).sum() for k in adapted), plist)
    total = 0.0
    for m in range(M):
        loss = agent._inner_loss(agent.params, batch.obs[m], batch.actions[m], batch.advantages[m], batch.mask[m])
        grads = torch.autograd.grad(loss, plist, create_graph=True)
        total = total + sum((weights[k][m] * (p - 0.5 * g)).sum() for (k, p), g in zip(agent.params.items(), grads, strict=True))
    looped = torch.autograd.grad(total, plist)
    torch.testing.assert_close(flatten(list(batched)), flatten(list(looped)))


# ---- ProMP --------------------------------------------------------------------------------------
def test_promp_objective_equals_a_hand_computation() -> None:
    """Clipped surrogate of the adapted policies + η·inner KL (Rothfuss et al. 2019, eq. 13)."""
    cfg = ProMPConfig(**{**SMALL, "hidden_sizes": ()}, inner_lr=0.3, clip_eps=0.2, inner_kl_coef=0.7)
    agent = _double(ProMP(ENV, cfg, seed=0))
    M = 2
    inner, valid = _batch(M, 4, 3, seed=5), _batch(M, 4, 3, seed=6)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():  # a θ away from the sampling θ_old, so ratios clip and the KLs are > 0
        old_params = {k: v.detach().clone() for k, v in agent.params.items()}
        for v in agent.params.values():
            v.add_(0.3 * torch.randn(v.shape, generator=g, dtype=torch.float64))
    _, _, _, _, old = _promp_at(agent, old_params, inner, valid)
    loss, *_ = agent._promp_terms([inner], valid, old, 0)

    clipped_count, inner_kl = [0], [0.0]

    def hand(W, b, ls, batch_inner):  # per-task LVC step, then everything by formula
        total_clip, total_kl = 0.0, 0.0
        for m in range(M):
            logp = _gauss_logp(batch_inner.obs[m] @ W.T + b, ls, batch_inner.actions[m])
            A, mk = batch_inner.advantages[m], batch_inner.mask[m]
            # Rothfuss et al. 2019, eq. 12, importance-weighted to the sampling θ_old (ProMP's code).
            logp_old = _gauss_logp(old["inner"][0][0][m], old["inner"][0][1][m], batch_inner.actions[m])
            lvc = -(torch.exp(logp - logp_old) * A * mk).sum() / mk.sum()
            gW, gb, gls = torch.autograd.grad(lvc, (W, b, ls), create_graph=True)
            W1, b1, ls1 = W - 0.3 * gW, b - 0.3 * gb, ls - 0.3 * gls
            mu_old, ls_old = old["outer"][0][m], old["outer"][1][m]
            ratio = torch.exp(_gauss_logp(valid.obs[m] @ W1.T + b1, ls1, valid.actions[m]) - _gauss_logp(mu_old, ls_old, valid.actions[m]))
            A, mk = valid.advantages[m], valid.mask[m]
            clipped = torch.minimum(ratio * A, ratio.clamp(0.8, 1.2) * A)
            clipped_count[0] += int(((ratio < 0.8) | (ratio > 1.2)).sum())
            total_clip = total_clip - (clipped * mk).sum() / mk.sum() / M
            kl = _gauss_kl(old["inner"][0][0][m], old["inner"][0][1][m], batch_inner.obs[m] @ W.T + b, ls)
            total_kl = total_kl + (kl * batch_inner.mask[m]).sum() / batch_inner.mask[m].sum() / M
        inner_kl[0] = total_kl
        return total_clip + 0.7 * total_kl

    W, b, ls = agent.params["net.0.weight"], agent.params["net.0.bias"], agent.params["log_std"]
    expected = hand(W, b, ls, inner)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(flatten(torch.autograd.grad(loss, [W, b, ls])), flatten(torch.autograd.grad(expected, [W, b, ls])))
    # The point was away from θ_old: some ratios were clipped and the inner KL is > 0.
    assert clipped_count[0] > 0 and float(inner_kl[0].detach()) > 1e-3


def _promp_at(agent, params, inner, valid):
    """The ProMP terms at ``params`` with ``old=None`` (those params sampled): the old distributions."""
    saved = {k: v.detach().clone() for k, v in agent.params.items()}
    with torch.no_grad():
        for k, v in agent.params.items():
            v.copy_(params[k])
    out = agent._promp_terms([inner], valid, None, 0)
    with torch.no_grad():
        for k, v in agent.params.items():
            v.copy_(saved[k])
    return out


def test_promp_first_outer_step_starts_at_ratio_one_and_the_adaptive_penalty_moves() -> None:
    agent = ProMP(ENV, replace(AGENTS["promp"][1], target_inner_kl=1e-9), seed=0)
    m = agent.train_iteration()
    # At the sampling θ the clipped surrogate is -mean Â (0 for normalised advantages) and KL = 0.
    assert abs(m["train/outer_loss"]) < 1e-6 and m["train/surrogate_improvement"] > 0
    assert agent.inner_kl_coefs == [2 * agent.config.inner_kl_coef]  # inner KL far above the target: η doubles


# ---- E-MAML -------------------------------------------------------------------------------------
def test_emaml_exploration_term_equals_a_hand_computation() -> None:
    agent = _double(EMAML(ENV, EMAMLConfig(**{**SMALL, "hidden_sizes": ()}, exploration_weight=0.7), seed=0))
    pre, valid = _batch(3, 4, 2, seed=8), _batch(3, 4, 2, seed=9)
    w = agent.exploration_weights(valid)
    r = valid.episode_returns.mean(1)
    torch.testing.assert_close(w, (r - r.mean()) / r.std(unbiased=False))
    W, b, ls = agent.params["net.0.weight"], agent.params["net.0.bias"], agent.params["log_std"]
    hand = 0.0
    for m in range(3):  # -λ mean_m w_m mean_t log π_θ(a_t|s_t) over task m's pre-adaptation steps
        logp = _gauss_logp(pre.obs[m] @ W.T + b, ls, pre.actions[m])
        hand = hand - 0.7 * w[m] * (logp * pre.mask[m]).sum() / pre.mask[m].sum() / 3
    torch.testing.assert_close(agent._exploration_loss(pre, w), hand)


def test_emaml_without_exploration_is_maml_and_with_it_differs() -> None:
    common = dict(**SMALL, cg_iters=3)
    maml = MAML(ENV, MAMLConfig(**common), seed=4)
    plain = EMAML(ENV, EMAMLConfig(**common, exploration_weight=0.0), seed=4)
    explore = EMAML(ENV, EMAMLConfig(**common, exploration_weight=1.0), seed=4)
    for _ in range(2):
        ma, pa, ea = maml.train_iteration(), plain.train_iteration(), explore.train_iteration()
    for k in maml.params:
        assert torch.equal(maml.params[k], plain.params[k]), k
    assert ma["train/kl"] == pa["train/kl"]
    assert any(not torch.equal(maml.params[k], explore.params[k]) for k in maml.params)
    assert ea["train/exploration_loss"] != 0.0


# ---- Reptile ------------------------------------------------------------------------------------
def test_reptile_update_is_theta_plus_eps_times_the_mean_adapted_difference() -> None:
    cfg = ReptileConfig(**SMALL, num_inner_steps=2, outer_lr=0.4)
    agent, twin = Reptile(ENV, cfg, seed=2), Reptile(ENV, cfg, seed=2)
    theta = {k: v.detach().clone() for k, v in agent.params.items()}
    # θ'_m: k inner steps on the iteration's tasks and episodes (the same draws as train_iteration).
    _, _, adapted = twin._draw_and_adapt(0, [cfg.inner_lr] * 2, {"sample": 0.0, "adapt": 0.0})
    m = agent.train_iteration(0)
    step = {}
    for k, v in theta.items():
        diffs = [adapted[k][i] - v for i in range(cfg.meta_batch_size)]
        step[k] = 0.4 * sum(diffs) / cfg.meta_batch_size
        torch.testing.assert_close(agent.params[k], v + step[k])
    assert m["train/meta_step_norm"] == pytest.approx(float(flatten(list(step.values())).norm()), rel=1e-5)
    assert any(float(s.abs().max()) > 0 for s in step.values())


def test_reptile_evaluates_with_the_step_size_it_trains_with() -> None:
    """Reptile meta-trains for k steps of α: its held-out curve uses α at every step (MAML: α, α/2)."""
    cfg = ReptileConfig(**SMALL, inner_lr=0.3)
    agent, maml = Reptile(ENV, cfg, seed=0), MAML(ENV, MAMLConfig(**SMALL, inner_lr=0.3), seed=0)
    tasks = agent.held_out_tasks()[:2]
    assert agent.evaluate(tasks, seed=0, num_steps=3).extra["inner_lrs"] == [0.3, 0.3, 0.3]
    assert maml.evaluate(tasks, seed=0, num_steps=3).extra["inner_lrs"] == [0.3, 0.15, 0.15]
    # The adapted parameters are those of three α-steps on the evaluation episodes.
    _, _, adapted = agent._sample_and_adapt(tasks[:1], [0.3] * 3, cfg.episodes_per_task, 0, -1, {"sample": 0.0, "adapt": 0.0})
    one = agent.adapt(tasks[0], 3, seed=0)
    for k, v in one.params.items():
        torch.testing.assert_close(v, adapted[k][0])


# ---- all: determinism, exact resume, bad configs ------------------------------------------------
@pytest.mark.parametrize("name", sorted(AGENTS))
def test_same_seed_same_run_and_resume_is_exact(name: str, tmp_path) -> None:
    cls, cfg = AGENTS[name]
    full = cls(ENV, cfg, seed=3)
    metrics = [full.train_iteration() for _ in range(3)]
    assert all(math.isfinite(v) for m in metrics for v in m.values())
    half = cls(ENV, cfg, seed=3)
    half.train_iteration()
    half.train_iteration()
    resumed = cls.load(half.save(tmp_path / "ckpt.pt"))
    assert resumed.iteration == 2 and type(resumed) is cls
    last = resumed.train_iteration()
    for k in full.params:
        assert torch.equal(resumed.params[k], full.params[k]), k
    strip = lambda m: {k: v for k, v in m.items() if not k.startswith("time/")}  # noqa: E731
    assert strip(last) == strip(metrics[-1])
    other = cls(ENV, cfg, seed=4)
    other.train_iteration()
    assert not torch.equal(other.params["net.0.weight"], full.params["net.0.weight"])


@pytest.mark.parametrize(
    ("cls", "changes", "culprit"),
    [(ProMP, {"clip_eps": 0.0}, "clip_eps"), (ProMP, {"promp_steps": 0}, "promp_steps"), (ProMP, {"inner_estimator": "reinforce"}, "inner_estimator"),
     (ProMP, {"inner_kl_coef": float("nan")}, "inner_kl_coef"), (EMAML, {"outer": "ppo"}, "outer"), (EMAML, {"exploration_weight": -1.0}, "exploration_weight"),
     (Reptile, {"outer_lr": 0.0}, "outer_lr"), (Reptile, {"num_inner_steps": 0}, "num_inner_steps"), (MAML, {"inner_estimator": "lvc"}, "inner_estimator")],
)
def test_bad_config_values_are_config_errors_naming_the_field(cls, changes, culprit) -> None:
    with pytest.raises(ConfigError, match=culprit):
        cls(ENV, {**SMALL, **changes})


def test_unknown_fields_are_config_errors_naming_the_agent() -> None:
    with pytest.raises(ConfigError, match="ProMP.*clip_epss"):
        ProMP(ENV, {"clip_epss": 0.2})


# ---- presets --------------------------------------------------------------------------------------
def _presets(prefixes=("promp-", "emaml-", "reptile-")) -> list[str]:
    from metarl.config import list_presets

    return [p for p in list_presets() if p.startswith(prefixes)]


def test_paper_presets_exist() -> None:
    names = set(_presets())
    for want in ("promp-navigation2d", "promp-halfcheetah-vel", "promp-halfcheetah-dir", "promp-ant-dir", "emaml-navigation2d",
                 "emaml-halfcheetah-vel", "reptile-navigation2d", "reptile-halfcheetah-vel"):
        assert want in names, want


@pytest.mark.parametrize("name", _presets())
def test_presets_build_and_run_one_iteration(name: str) -> None:
    from metarl.agent import load_agent_class
    from metarl.config import load_preset

    preset = load_preset(name)
    assert preset.source and preset.env in metarl.registered_envs()
    cls = load_agent_class(preset.agent)
    agent = cls.from_preset(name, meta_batch_size=2, episodes_per_task=2, horizon=3)
    assert type(agent).__name__ == cls.__name__ and agent.config.inner_lr > 0
    assert all(math.isfinite(v) for v in agent.train_iteration().values())


# ---- the command line -----------------------------------------------------------------------------
@pytest.mark.parametrize(("agent", "flags"), [("promp", ["--promp-steps", "2"]), ("emaml", ["--cg-iters", "2"]), ("reptile", []),
                                               ("maml", ["--inner-estimator", "dice", "--cg-iters", "2"])])
def test_cli_trains_resumes_exactly_and_evaluates(agent: str, flags: list[str], tmp_path, capsys) -> None:
    import yaml

    from metarl.cli import main
    from metarl.logger import read_metrics

    tiny = ["--meta-batch-size", "2", "--episodes-per-task", "2", "--horizon", "8", "--hidden-sizes", "8", "--eval-steps", "1",
            "--eval-tasks", "0", "--log-every", "0", "--checkpoint-every", "1", *flags]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["train", agent, "--iterations", "2", *tiny, "--out", str(straight)]) == 0
    assert main(["train", agent, "--iterations", "1", *tiny, "--out", str(resumed)]) == 0
    assert main(["train", agent, "--resume", "--iterations", "2", "--out", str(resumed), "--eval-tasks", "0"]) == 0

    def rows(d):
        return [{k: v for k, v in r.items() if k != "wall_s" and not k.startswith("time/")} for r in read_metrics(d / "metrics.jsonl")]

    assert rows(resumed) == rows(straight) and len(rows(straight)) == 2
    config = yaml.safe_load((straight / "config.yaml").read_text())
    assert config["agent"] == agent
    if agent == "maml":
        assert "dice" in (straight / "config.yaml").read_text()
    for d in (straight, resumed):
        assert main(["eval", str(d), "--num-tasks", "3", "--seed", "2"]) == 0
    assert (straight / "eval.json").read_text() == (resumed / "eval.json").read_text()
