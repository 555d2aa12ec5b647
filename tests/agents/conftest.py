"""Shared fixtures of the agent tests."""

from __future__ import annotations

import pytest

from metarl.threads import torch_threads


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Agent ops are small: on a shared 2-core CI box torch's intra-op threads only contend
    # (measured ~10x slower with 2 threads under load), so agent tests run single-threaded.
    # Agents' entry points run under metarl.threads (one thread by default); this also covers
    # the direct torch work of the tests themselves, and restores torch afterwards.
    with torch_threads(1):  # the thread policy's context: restores torch's setting afterwards
        yield
