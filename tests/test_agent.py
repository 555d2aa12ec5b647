"""metarl.agent: the device check every agent shares."""

from __future__ import annotations

import pytest
import torch

from metarl.agent import resolve_device
from metarl.errors import ConfigError


def test_resolve_device_accepts_cpu_names_and_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu0", "", None, 3.5])
def test_resolve_device_rejects_unknown_names_with_the_value(bad):
    with pytest.raises(ConfigError, match="device must be like") as info:
        resolve_device(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
@pytest.mark.parametrize("agent", ["maml", "promp", "rl2", "pearl"])
def test_every_agent_rejects_cuda_without_cuda(agent):
    from metarl.agent import load_agent_class

    cls = load_agent_class(agent)
    with pytest.raises(ConfigError, match="'cuda' requested but CUDA is not available"):
        cls(device="cuda")
