"""Discounted returns and GAE against hand computations."""

from __future__ import annotations

import pytest
import torch

from metarl.returns import discounted_returns, gae


def test_discounted_returns_by_hand() -> None:
    r = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 1.0]])
    g = 0.9
    expected = torch.tensor([[1 + g * 2 + g * g * 3, g * 1 + g * g * 1], [2 + g * 3, 1 + g], [3.0, 1.0]])
    torch.testing.assert_close(discounted_returns(r, g), expected)


def test_discounted_returns_stop_at_mask() -> None:
    r = torch.tensor([[1.0], [1.0], [5.0]])
    mask = torch.tensor([[1.0], [1.0], [0.0]])  # the episode ended after step 1: step 2 belongs to no one
    torch.testing.assert_close(discounted_returns(r, 0.5, mask), torch.tensor([[1.5], [1.0], [0.0]]))
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(r, 1.5)


def test_gae_by_hand_with_termination_and_truncation() -> None:
    g, lam = 0.9, 0.8
    r = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    v = torch.tensor([[0.5], [0.4], [0.3], [0.2]])
    # step 1 terminates (no bootstrap); step 3 is truncated: bootstrap from the final obs' value 7
    nv = torch.tensor([[0.4], [99.0], [0.2], [7.0]])
    term = torch.tensor([[False], [True], [False], [False]])
    end = torch.tensor([[False], [True], [False], [True]])
    d0 = 1 + g * 0.4 - 0.5
    d1 = 2 - 0.4
    d2 = 3 + g * 0.2 - 0.3
    d3 = 4 + g * 7 - 0.2
    a3 = d3
    a2 = d2 + g * lam * a3
    a1 = d1  # nothing flows back across the episode end
    a0 = d0 + g * lam * a1
    adv, ret = gae(r, v, nv, term, end, g, lam)
    torch.testing.assert_close(adv.squeeze(1), torch.tensor([a0, a1, a2, a3]))
    torch.testing.assert_close(ret, adv + v)
