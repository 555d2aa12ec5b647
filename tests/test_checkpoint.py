"""Checkpoint format: round trips, atomic writes, typed errors for truncated/foreign files, RNG states."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from metarl.checkpoint import (
    capture_rng_states,
    check_spaces,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng_states,
    save_checkpoint,
)
from metarl.errors import CheckpointError, SpaceMismatchError


def _state():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {
        "net": net.state_dict(),
        "opt": opt.state_dict(),  # int-keyed state dict
        "np_rng": np.random.default_rng(3).bit_generator.state,  # 128-bit ints
        "torch_gen": torch.Generator().manual_seed(5).get_state(),
        "array": np.arange(6, dtype=np.uint32).reshape(2, 3),
        "scalars": [1, 2.5, "x", None, True, float("inf")],
        "nested": {"a": [{"b": torch.zeros(2, dtype=torch.int64)}]},
    }


def test_round_trip_is_exact(tmp_path):
    state = _state()
    path = save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(path)
    for k, v in state["net"].items():
        assert torch.equal(back["net"][k], v)
    assert back["opt"]["state"].keys() == state["opt"]["state"].keys()  # int keys survive
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], state["opt"]["state"][0]["exp_avg"])
    assert back["np_rng"] == state["np_rng"]
    assert torch.equal(back["torch_gen"], state["torch_gen"])
    assert back["array"].dtype == np.uint32 and np.array_equal(back["array"], state["array"])
    assert back["scalars"] == state["scalars"]
    assert torch.equal(back["nested"]["a"][0]["b"], torch.zeros(2, dtype=torch.int64))
    # The restored optimizer state is usable as such.
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    opt.load_state_dict(back["opt"])
    assert opt.state_dict()["state"][0]["step"] == state["opt"]["state"][0]["step"]


def test_load_is_weights_only(tmp_path):
    """A file that needs unpickling arbitrary objects is refused, not executed."""

    path = tmp_path / "evil.pt"
    torch.save({"format": "metarl-checkpoint", "version": 1, "metadata": "{}", "tensors": {}, "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_truncated_checkpoint_names_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"c\.pt is corrupt \(truncated"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "payload, match",
    [
        ({"state_dict": {"w": torch.ones(1)}}, r"not a metarl checkpoint: missing 'format'.*state_dict"),
        ({"format": "metarl-checkpoint", "version": 99, "metadata": "{}", "tensors": {}}, "format version 99"),
        ({"format": "metarl-checkpoint", "version": 1, "tensors": {}}, r"missing \['metadata'\]"),
        ({"format": "metarl-checkpoint", "version": 1, "metadata": '{"w": {"__tensor__": "0"}}', "tensors": {}}, "missing tensor '0'"),
    ],
)
def test_foreign_checkpoints_say_what_is_missing(tmp_path, payload, match):
    path = tmp_path / "foreign.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_plain_pickle_and_missing_file(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="x.pkl"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_required_keys_are_named(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"iteration": 3})
    with pytest.raises(CheckpointError, match=r"missing 'agent', 'rng'"):
        load_checkpoint(path, required=("iteration", "agent", "rng"))


def test_unsupported_values_are_typed_errors(tmp_path):
    with pytest.raises(CheckpointError, match=r"state\.bad has type object"):
        save_checkpoint(tmp_path / "c.pt", {"bad": object()})
    with pytest.raises(CheckpointError, match="reserved"):
        save_checkpoint(tmp_path / "c.pt", {"__tensor__": 1})


def test_write_is_atomic(tmp_path, monkeypatch):
    """A save that dies mid-write leaves the previous checkpoint intact and no temp file."""
    path = save_checkpoint(tmp_path / "c.pt", {"v": torch.tensor([1.0])})

    def broken_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # as if killed while writing

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"v": torch.tensor([2.0])})
    monkeypatch.undo()
    assert load_checkpoint(path)["v"].item() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_rng_states_restore_python_numpy_torch():
    random.seed(1)
    np.random.seed(2)  # noqa: NPY002
    torch.manual_seed(3)
    saved = capture_rng_states()
    first = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())  # noqa: NPY002
    restore_rng_states(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn()) == first  # noqa: NPY002


def test_rng_states_survive_a_file(tmp_path):
    saved = capture_rng_states()
    first = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    restore_rng_states(load_checkpoint(save_checkpoint(tmp_path / "r.pt", {"rng": saved}))["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first  # noqa: NPY002


def test_listing_and_latest(tmp_path):
    assert list_checkpoints(tmp_path) == []
    with pytest.raises(CheckpointError, match="no checkpoint"):
        latest_checkpoint(tmp_path)
    for it in (2, 10, 4):
        save_checkpoint(checkpoint_path(tmp_path, it), {"iteration": it})
    (tmp_path / "ckpt-000003.pt.tmp").write_text("junk")
    assert [i for i, _ in list_checkpoints(tmp_path)] == [2, 4, 10]
    assert latest_checkpoint(tmp_path).name == "ckpt-000010.pt"


def test_space_mismatch_lists_both():
    a = {"observation_space": "Box(-inf, inf, (2,), float32)", "action_space": "Box(-0.1, 0.1, (2,), float32)"}
    b = {"observation_space": "Box(0.0, 1.0, (1,), float32)", "action_space": "Discrete(5)"}
    check_spaces(a, dict(a), source="x")
    with pytest.raises(SpaceMismatchError) as info:
        check_spaces(a, b, source="checkpoint c.pt")
    msg = str(info.value)
    for text in (*a.values(), *b.values(), "c.pt"):
        assert text in msg


# --- verification ------------------------------------------------------------------------------
def test_every_flipped_byte_is_detected(tmp_path):
    """Flip each byte of a small checkpoint in turn: every variant is a CheckpointError naming the file."""
    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.arange(4.0), "step": 3, "name": "x"})
    data = path.read_bytes()
    assert data.startswith(b"metarl-checkpoint 2 sha256=")
    bad = tmp_path / "flipped.pt"
    for i in range(len(data)):
        for mask in (0x01, 0x80):
            flipped = bytearray(data)
            flipped[i] ^= mask
            bad.write_bytes(bytes(flipped))
            with pytest.raises(CheckpointError, match="flipped.pt"):
                load_checkpoint(bad)
    assert load_checkpoint(path)["w"].tolist() == [0.0, 1.0, 2.0, 3.0]  # the original verifies


def test_tensor_checksums_name_the_tensor(tmp_path, monkeypatch):
    """A payload whose tensor differs from its recorded checksum (a rewritten body) is refused by name."""
    import hashlib
    import io

    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(3)})
    data = path.read_bytes()
    header_end = data.index(b"\n") + 1
    payload = torch.load(io.BytesIO(data[header_end:]), weights_only=True)
    payload["tensors"]["0"] = torch.zeros(3)  # checksums kept from the original
    buf = io.BytesIO()
    torch.save(payload, buf)
    body = buf.getvalue()
    path.write_bytes(b"metarl-checkpoint 2 sha256=%s\n" % hashlib.sha256(body).hexdigest().encode() + body)
    with pytest.raises(CheckpointError, match=r"c\.pt is corrupt: tensor '0' does not match its checksum"):
        load_checkpoint(path)


def test_version_1_checkpoints_load_with_a_warning(tmp_path):
    """Decision: checkpoints of metarl 0.1.0 (no checksums) still load, with a CheckpointWarning."""
    from metarl.errors import CheckpointWarning

    path = tmp_path / "old.pt"
    torch.save({"format": "metarl-checkpoint", "version": 1, "metadata": '{"w": {"__tensor__": "0"}, "it": 4}',
                "tensors": {"0": torch.ones(2)}}, path)
    with pytest.warns(CheckpointWarning, match=r"old\.pt has format version 1 \(no checksums\)"):
        state = load_checkpoint(path)
    assert state["it"] == 4 and state["w"].tolist() == [1.0, 1.0]
    # A bare zip that claims version 2 lost its checksum header: refused.
    torch.save({"format": "metarl-checkpoint", "version": 2, "metadata": "{}", "tensors": {}, "checksums": {}}, path)
    with pytest.raises(CheckpointError, match="checksum header line is missing"):
        load_checkpoint(path)


def test_load_latest_falls_back_to_the_newest_that_verifies(tmp_path):
    from metarl.checkpoint import load_latest_checkpoint
    from metarl.errors import CheckpointWarning

    for it in (2, 4, 6):
        save_checkpoint(checkpoint_path(tmp_path, it), {"iteration": it})
    newest = checkpoint_path(tmp_path, 6)
    newest.write_bytes(newest.read_bytes()[:-10])
    with pytest.warns(CheckpointWarning, match=r"skipping checkpoint ckpt-000006\.pt: .*corrupt.*; using ckpt-000004\.pt"):
        path, state = load_latest_checkpoint(tmp_path)
    assert path == checkpoint_path(tmp_path, 4) and state["iteration"] == 4
    for it in (2, 4):
        checkpoint_path(tmp_path, it).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"no checkpoint in .* verifies \(3 tried; restore one") as info:
        load_latest_checkpoint(tmp_path)
    for it in (2, 4, 6):
        assert f"ckpt-00000{it}.pt" in str(info.value)


def test_stray_temp_files_are_removed_and_never_listed(tmp_path):
    stray = tmp_path / ".ckpt-000004.pt.k2j3h4.tmp"  # what a SIGKILLed save leaves behind
    stray.write_bytes(b"metarl-checkpoint 2 sha256=" + b"0" * 64 + b"\npartial")
    assert list_checkpoints(tmp_path) == []
    save_checkpoint(checkpoint_path(tmp_path, 2), {"iteration": 2})
    assert not stray.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000002.pt"]
