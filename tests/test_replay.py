"""Per-task replay: tasks never mix, rings wrap around, sampling is seeded, state round-trips."""

from __future__ import annotations

import pytest
import torch

from metarl.errors import ConfigError
from metarl.replay import TaskReplay


def _fill(buf: TaskReplay, task_ids: list[int], start: int = 0) -> None:
    """Transition k of a call: obs = 1000 * task + running index (so a value names its task)."""
    ids = torch.tensor(task_ids)
    idx = torch.arange(start, start + len(task_ids), dtype=torch.float32)
    obs = (1000 * ids + idx).float().unsqueeze(-1)
    buf.add(ids, obs, obs * 2, obs.squeeze(-1), obs + 0.5, torch.zeros(len(task_ids)))


def test_samples_of_a_task_come_only_from_that_task():
    buf = TaskReplay(num_tasks=4, capacity=50, obs_dim=1, act_dim=1)
    g = torch.Generator().manual_seed(0)
    _fill(buf, torch.randint(4, (120,), generator=g).tolist())
    batch = buf.sample(torch.tensor([3, 0, 3, 1]), 200, g)
    owner = (batch.obs[..., 0] // 1000).long()
    assert torch.equal(owner, torch.tensor([3, 0, 3, 1]).unsqueeze(1).expand(4, 200))
    # the fields of one sampled transition belong together
    torch.testing.assert_close(batch.actions, batch.obs * 2)
    torch.testing.assert_close(batch.next_obs, batch.obs + 0.5)
    # every stored transition of a task is reachable, nothing else
    stored = set(buf.obs[1, : int(buf.size[1]), 0].tolist())
    many = buf.sample(torch.ones(1, dtype=torch.long), 5000, g)
    assert set(many.obs.flatten().tolist()) == stored


def test_ring_wraps_around_and_keeps_the_newest():
    buf = TaskReplay(num_tasks=2, capacity=4, obs_dim=1, act_dim=1)
    _fill(buf, [0, 0, 0, 1])
    _fill(buf, [0, 0, 0], start=4)  # task 0 now has 6 transitions in 4 slots
    assert buf.size.tolist() == [4, 1] and buf.ptr.tolist() == [2, 1]
    assert sorted(buf.obs[0, :, 0].tolist()) == [2.0, 4.0, 5.0, 6.0]  # 0 and 1 overwritten
    _fill(buf, [1] * 9, start=10)  # more than the capacity in one call: the last 4 are kept
    assert sorted(buf.obs[1, :, 0].tolist()) == [1015.0, 1016.0, 1017.0, 1018.0]
    assert buf.size.tolist() == [4, 4]


def test_sampling_is_seeded_and_clear_empties_a_task():
    buf = TaskReplay(num_tasks=3, capacity=10, obs_dim=2, act_dim=1)
    ids = torch.tensor([0, 1, 2] * 5)
    buf.add(ids, torch.randn(15, 2), torch.randn(15, 1), torch.randn(15), torch.randn(15, 2), torch.zeros(15))
    a = buf.sample([0, 2], 8, torch.Generator().manual_seed(5))
    b = buf.sample([0, 2], 8, torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    buf.clear([1])
    assert buf.size.tolist() == [5, 0, 5]
    with pytest.raises(ConfigError, match=r"task\(s\) \[1\] is empty"):
        buf.sample([1], 4, torch.Generator())
    with pytest.raises(ConfigError, match=r"\[0, 3\)"):
        buf.sample([3], 4, torch.Generator())


def test_state_dict_round_trips():
    buf = TaskReplay(num_tasks=2, capacity=6, obs_dim=1, act_dim=1)
    _fill(buf, [0, 1, 1, 0, 1])
    other = TaskReplay(num_tasks=2, capacity=6, obs_dim=1, act_dim=1)
    other.load_state_dict(buf.state_dict())
    for name in ("obs", "actions", "rewards", "next_obs", "terminals", "size", "ptr"):
        assert torch.equal(getattr(buf, name), getattr(other, name)), name
    with pytest.raises(ConfigError, match="capacity must be a positive int"):
        TaskReplay(num_tasks=2, capacity=0, obs_dim=1, act_dim=1)
