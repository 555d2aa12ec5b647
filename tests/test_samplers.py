"""Samplers: the local backend is today's rollout, every shard layout gives the same bits, and the
Ray backend (when ray is installed) trains bit-identically to local and survives a killed worker."""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest
import torch

import metarl
from metarl.checkpoint import latest_checkpoint, load_checkpoint
from metarl.cli import main
from metarl.errors import ConfigError, SamplerError
from metarl.logger import read_metrics
from metarl.policies import batched_dist_params, make_policy
from metarl.samplers import (
    EnvSpec,
    LocalSampler,
    RecurrentPolicySpec,
    TaskPolicySpec,
    _concat,
    attach_sampler,
    collect_rows,
    make_sampler,
    shard_bounds,
)
from metarl.sampling import Rollout, collect
from metarl.streams import SubEnvRNG
from metarl.threads import torch_threads

NAV = EnvSpec("metarl/Navigation2D-v0")
BANDIT_TRIALS = EnvSpec("metarl/Bandit-v0", {"num_arms": 3, "horizon": 2}, episodes_per_trial=3)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with torch_threads(1):  # the thread policy's context: restores torch's setting afterwards
        yield


def assert_rollouts_equal(a: Rollout, b: Rollout) -> None:
    for name in Rollout._fields:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, dict):
            assert sorted(x) == sorted(y), name
            for k in x:
                assert torch.equal(x[k], y[k]), f"extras[{k!r}] differ"
        elif isinstance(x, torch.Tensor):
            assert torch.equal(x, y), f"{name} differs"
        else:
            assert x == y, name


def maml_spec(M: int = 4, E: int = 3, seed: int = 5) -> tuple[TaskPolicySpec, list]:
    venv = metarl.make_vec(NAV.env_id, 1)
    policy = make_policy(venv.single_observation_space, venv.single_action_space, (16,))
    # Distinct parameters per task, as after adaptation.
    params = {k: torch.stack([policy.init_params(torch.Generator().manual_seed(m))[k] for m in range(M)]) for k in policy.init_params(torch.Generator())}
    low = torch.as_tensor(venv.single_action_space.low)
    high = torch.as_tensor(venv.single_action_space.high)
    return TaskPolicySpec(policy, params, E, seed, low, high), venv.unwrapped.sample_tasks(M, seed=1)


def rl2_spec(block: int = 2, chunk: int = 4) -> tuple[RecurrentPolicySpec, list]:
    from metarl.agents.rl2 import GRUActorCritic

    trials = BANDIT_TRIALS.make(1)
    torch.manual_seed(0)
    net = GRUActorCritic(trials.single_observation_space.shape[0], trials.single_action_space, 8)
    return RecurrentPolicySpec(net, seed=7, chunk=chunk, block=block), trials.env.sample_tasks(7, seed=2)


# ---- streams and envs: per-sub-env randomness ------------------------------------------------

def _import_ray():
    """ray, or a skip where it is not installed -- a failure under ``METARL_REQUIRE_RAY=1`` (set by
    ``.ci/run``), so a missing ray cannot hide the distributed tests in CI."""
    if os.environ.get("METARL_REQUIRE_RAY") == "1":
        import ray

        return ray
    return pytest.importorskip("ray")


def test_sub_env_streams_do_not_depend_on_the_batch():
    full = SubEnvRNG([3, 4, 5, 6])
    part = SubEnvRNG([5, 6], block=7)  # a different refill period changes nothing either
    for _ in range(150):
        np.testing.assert_array_equal(full.random(4)[2:], part.random(2))
        np.testing.assert_array_equal(full.standard_normal(4)[2:], part.standard_normal(2))
    # Sub-env i's stream is the one Gymnasium gives a single env seeded with seed_i.
    np.testing.assert_array_equal(SubEnvRNG([9]).random(1), np.random.default_rng(9).random(1))
    with pytest.raises(ConfigError, match="size must be 4"):
        full.random(3)


@pytest.mark.parametrize("env_id", ["metarl/Bandit-v0", "metarl/TabularMDP-v0"])
def test_stochastic_env_shards_step_like_the_whole_batch(env_id):
    N, cut = 6, 2
    whole, a, b = metarl.make_vec(env_id, N), metarl.make_vec(env_id, cut), metarl.make_vec(env_id, N - cut)
    tasks = whole.unwrapped.sample_tasks(N, seed=0)
    whole.reset(seed=10, options={"tasks": tasks})
    a.reset(seed=[10, 11], options={"tasks": tasks[:cut]})
    b.reset(seed=[10 + i for i in range(cut, N)], options={"tasks": tasks[cut:]})
    rng = np.random.default_rng(0)
    for _ in range(30):
        actions = rng.integers(0, whole.single_action_space.n, N)
        o, r, *_ = whole.step(actions)
        oa, ra, *_ = a.step(actions[:cut])
        ob, rb, *_ = b.step(actions[cut:])
        np.testing.assert_array_equal(r, np.concatenate([ra, rb]))
        np.testing.assert_array_equal(o, np.concatenate([oa, ob]))


# ---- the local backend is today's rollout ----------------------------------------------------
def test_local_sampler_is_the_closure_rollout_bit_for_bit():
    """What MAML ran before the seam (a vmapped per-task closure through collect) gives the same bits."""
    spec, tasks = maml_spec()
    M, E = len(tasks), spec.episodes
    gen = torch.Generator().manual_seed(spec.seed)

    def act(obs, t):
        dist = batched_dist_params(spec.policy, spec.params, obs.reshape(M, E, -1))
        raw = spec.policy.sample(tuple(d.reshape(M * E, *d.shape[2:]) for d in dist), gen)
        return torch.clamp(raw, spec.low, spec.high), {"raw_action": raw}

    before = collect(NAV.make(M * E), act, 20, tasks=[t for t in tasks for _ in range(E)], seed=3)
    after = LocalSampler().sample(NAV, spec, tasks, episodes=E, horizon=20, seed=3)
    assert_rollouts_equal(before, after)


# ---- every shard layout gives the same bits (no Ray needed) ----------------------------------
@pytest.mark.parametrize("num_shards", [2, 3, 4])
def test_maml_shards_concatenate_to_the_whole_batch(num_shards):
    spec, tasks = maml_spec()
    E, N = spec.episodes, len(tasks) * spec.episodes
    whole = LocalSampler().sample(NAV, spec, tasks, episodes=E, horizon=15, seed=8)
    sub_tasks = [t for t in tasks for _ in range(E)]
    shards = shard_bounds(N, num_shards, group=E)
    assert len(shards) == num_shards
    parts = [collect_rows(NAV.make(len(r)), spec, r, N, sub_tasks[r.start : r.stop], 15, 8) for r in shards]
    assert_rollouts_equal(whole, _concat(parts))


@pytest.mark.parametrize("num_shards", [2, 4])
def test_rl2_shards_concatenate_to_the_whole_batch(num_shards):
    """Trials restart mid-rollout (horizon > a trial) with per-sub-env task draws; hidden states,
    values and the bootstrap value come back in sub-env order."""
    spec, tasks = rl2_spec()
    N, T = len(tasks), 2 * 3 * 2 + 3  # two trials and a bit: restarts inside the rollout
    whole = LocalSampler().sample(BANDIT_TRIALS, spec, tasks, episodes=1, horizon=T, seed=4)
    assert whole.extras["trial_start"][1:].any(), "the rollout must cross a trial restart"
    assert tuple(whole.extras["chunk_states"].shape) == (-(-T // spec.chunk), N, 8)
    shards = shard_bounds(N, num_shards, group=spec.block)
    assert len(shards) == num_shards
    parts = [collect_rows(BANDIT_TRIALS.make(len(r)), spec, r, N, tasks[r.start : r.stop], T, 4) for r in shards]
    assert_rollouts_equal(whole, _concat(parts))


@pytest.mark.parametrize("num_shards", [2, 3])
def test_pearl_latent_policy_shards_concatenate_to_the_whole_batch(num_shards):
    """PEARL's z-conditioned actor: per-sub-env latents and action noise land on the right rows."""
    from gymnasium import spaces

    from metarl.agents.pearl import TanhGaussianActor
    from metarl.samplers import LatentPolicySpec

    torch.manual_seed(0)
    actor = TanhGaussianActor(2 + 3, spaces.Box(-0.1, 0.1, (2,)), (8,))
    tasks = metarl.make_vec(NAV.env_id, 1).unwrapped.sample_tasks(3, seed=1)
    N = len(tasks) * 2
    z = torch.randn(N, 3, generator=torch.Generator().manual_seed(2))
    spec = LatentPolicySpec(actor, z, seed=7, block=2)
    whole = LocalSampler().sample(NAV, spec, tasks, episodes=2, horizon=12, seed=6)
    sub_tasks = [t for t in tasks for _ in range(2)]
    shards = shard_bounds(N, num_shards, group=spec.block)
    parts = [collect_rows(NAV.make(len(r)), spec, r, N, sub_tasks[r.start : r.stop], 12, 6) for r in shards]
    assert_rollouts_equal(whole, _concat(parts))
    # the latent matters: other z, other actions
    other = LocalSampler().sample(NAV, LatentPolicySpec(actor, -z, seed=7, block=2), tasks, episodes=2, horizon=12, seed=6)
    assert not torch.equal(other.actions, whole.actions)


def test_shard_bounds_cover_in_order_on_group_boundaries():
    for n, k, g in [(10, 3, 2), (7, 2, 4), (12, 5, 3), (5, 9, 1), (64, 2, 64)]:
        shards = shard_bounds(n, k, g)
        assert [i for r in shards for i in r] == list(range(n))
        assert all(r.start % g == 0 and len(r) > 0 for r in shards) and len(shards) <= k


# ---- selection and errors --------------------------------------------------------------------
def test_without_ray_the_ray_sampler_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r'pip install "metarl-lab\[ray\]"'):
        make_sampler("ray")
    out = tmp_path / "run"
    assert main(["train", "maml", "--sampler", "ray", "--iterations", "1", "--out", str(out)]) == 1
    assert 'pip install "metarl-lab[ray]"' in capsys.readouterr().err
    assert not out.exists()


def test_sampler_options_are_checked():
    with pytest.raises(ConfigError, match="sampler must be 'local' or 'ray', got 'dask'"):
        make_sampler("dask")
    with pytest.raises(ConfigError, match="num_workers must be a positive int, got 0"):
        make_sampler("local", num_workers=0)



def test_attach_refuses_an_agent_that_does_not_sample_through_a_sampler():
    _import_ray()  # raised before any cluster starts

    class NoSampler:
        pass

    assert attach_sampler(NoSampler(), "local") is None
    with pytest.raises(ConfigError, match="NoSampler does not collect through metarl.samplers"):
        attach_sampler(NoSampler(), "ray")


# ---- Ray: one local cluster for every test below ---------------------------------------------
@pytest.fixture(scope="session")
def ray_cluster():
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


MAML_TINY = ["--meta-batch-size", "4", "--episodes-per-task", "3", "--horizon", "20", "--hidden-sizes", "8",
             "--cg-iters", "3", "--iterations", "2"]
RL2_TINY = ["--env", "metarl/Bandit-v0", "--num-trials", "8", "--episodes-per-trial", "3", "--hidden-size", "8",
            "--num-minibatches", "2", "--update-epochs", "1", "--sample-block", "2", "--iterations", "2"]


def _run(tmp_path, name, agent, flags, sampler_flags):
    out = tmp_path / name
    common = ["--eval-tasks", "0", "--log-every", "0", "--checkpoint-every", "2", "--seed", "3"]
    assert main(["train", agent, *flags, *common, *sampler_flags, "--out", str(out)]) == 0
    rows = [{k: v for k, v in r.items() if not (k == "wall_s" or k.startswith("time/") or k.endswith("_s"))}
            for r in read_metrics(out / "metrics.jsonl")]
    state = load_checkpoint(latest_checkpoint(out / "checkpoints"))["agent"]
    params = state.get("params") or state.get("net")
    return rows, params


@pytest.mark.parametrize("agent,flags", [("maml", MAML_TINY), ("rl2", RL2_TINY)], ids=["maml-nav", "rl2-bandit"])
def test_ray_training_is_bit_identical_to_local(ray_cluster, tmp_path, agent, flags):
    local_rows, local_params = _run(tmp_path, "local", agent, flags, [])
    assert len(local_rows) == 2
    for workers in (1, 2):
        rows, params = _run(tmp_path, f"ray{workers}", agent, flags, ["--sampler", "ray", "--num-workers", str(workers)])
        assert rows == local_rows, f"{workers} worker(s): metrics differ"
        assert sorted(params) == sorted(local_params)
        for k in params:
            assert torch.equal(params[k], local_params[k]), f"{workers} worker(s): parameter {k!r} differs"


class _KillFirstShard(metarl.samplers.RaySampler):
    """Kills worker 0's process right after the shards are submitted, on the first call only."""

    killed: list[int]

    def _submitted(self) -> None:
        if not self.killed:
            pid = self.worker_pids_cache[0]
            os.kill(pid, signal.SIGKILL)
            self.killed.append(pid)


def test_killed_worker_is_replaced_and_its_shard_recollected(ray_cluster):
    spec, tasks = maml_spec(M=6)
    E = spec.episodes
    local = LocalSampler().sample(NAV, spec, tasks, episodes=E, horizon=100, seed=2)
    sampler = _KillFirstShard(2)
    try:
        sampler.killed = []
        sampler.worker_pids_cache = sampler.worker_pids()
        ro = sampler.sample(NAV, spec, tasks, episodes=E, horizon=100, seed=2)
        assert sampler.killed and sampler.replacements == 1
        assert sampler.worker_pids()[0] != sampler.killed[0]  # a new process holds shard 0
        assert_rollouts_equal(local, ro)  # nothing lost, nothing duplicated, same bits
        assert_rollouts_equal(local, sampler.sample(NAV, spec, tasks, episodes=E, horizon=100, seed=2))
    finally:
        sampler.close()


def test_worker_that_cannot_be_replaced_is_a_sampler_error(ray_cluster):
    spec, tasks = maml_spec()
    sampler = _KillFirstShard(2)
    try:
        sampler.killed = []
        sampler.worker_pids_cache = sampler.worker_pids()
        sampler.start_timeout_s = 0.0  # no replacement can start in zero seconds
        with pytest.raises(SamplerError, match="worker 0 died .* no replacement started within 0 s"):
            sampler.sample(NAV, spec, tasks, episodes=spec.episodes, horizon=20, seed=0)
    finally:
        sampler.close()


def test_more_workers_than_cpus_is_a_sampler_error_not_a_hang(ray_cluster):
    import time

    t0 = time.monotonic()
    # One of the three can never get a CPU; Ray picks which (CI once saw worker 0 left waiting),
    # and on a loaded machine more may be late (all named then).
    with pytest.raises(SamplerError, match=r"worker \d(, \d)* could not start within 10 s: each needs 1 free CPU"):
        metarl.samplers.RaySampler(3, start_timeout_s=10.0)
    assert time.monotonic() - t0 < 60
    # The two actors it did start were released: a 2-worker sampler still fits.
    metarl.samplers.RaySampler(2).close()
