"""The linear feature baseline against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarl.baselines import LinearFeatureBaseline, fit_linear, linear_features
from metarl.errors import TrainingDivergedError


def test_features_match_the_reference_definition() -> None:
    obs = torch.tensor([[[0.5, -20.0]], [[3.0, 1.0]], [[-1.0, 0.0]]])  # [T=3, N=1, 2]
    phi = linear_features(obs)
    t = np.arange(3) / 100.0
    for i in range(3):
        o = np.clip(obs[i, 0].numpy(), -10, 10)
        want = np.concatenate([o, o**2, [t[i], t[i] ** 2, t[i] ** 3, 1.0]])
        np.testing.assert_allclose(phi[i, 0].numpy(), want, rtol=1e-6)


def test_ridge_fit_matches_the_normal_equations_per_task() -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(3, 50, 4))
    y = rng.normal(size=(3, 50))
    w = fit_linear(torch.as_tensor(feats), torch.as_tensor(y), reg_coeff=0.1).numpy()
    for b in range(3):
        want = np.linalg.solve(feats[b].T @ feats[b] + 0.1 * np.eye(4), feats[b].T @ y[b])
        np.testing.assert_allclose(w[b], want, rtol=1e-8)


def test_masked_samples_are_left_out_of_the_fit() -> None:
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(1, 30, 3))
    y = rng.normal(size=(1, 30))
    mask = np.ones((1, 30))
    mask[0, 20:] = 0
    y_garbage = y.copy()
    y_garbage[0, 20:] = 1e6
    w = fit_linear(torch.as_tensor(feats), torch.as_tensor(y_garbage), torch.as_tensor(mask), reg_coeff=1e-5)
    w_sub = fit_linear(torch.as_tensor(feats[:, :20]), torch.as_tensor(y[:, :20]), reg_coeff=1e-5)
    torch.testing.assert_close(w, w_sub)


def test_fit_predict_equals_a_per_task_fit_on_that_tasks_episodes() -> None:
    gen = torch.Generator().manual_seed(0)
    T, M, E = 6, 3, 4
    obs = torch.randn(T, M, E, 2, generator=gen, dtype=torch.float64)
    returns = torch.randn(T, M, E, generator=gen, dtype=torch.float64)
    values = LinearFeatureBaseline(reg_coeff=1e-3).fit_predict(obs, returns)
    for m in range(M):
        phi = linear_features(obs[:, m]).reshape(T * E, -1).numpy()  # [T, E, D] -> samples
        y = returns[:, m].reshape(T * E).numpy()
        w = np.linalg.solve(phi.T @ phi + 1e-3 * np.eye(phi.shape[1]), phi.T @ y)
        np.testing.assert_allclose(values[:, m].reshape(T * E).numpy(), phi @ w, rtol=1e-7, atol=1e-9)


def test_fit_raises_a_typed_error_on_nan_targets() -> None:
    feats = torch.ones(1, 5, 2, dtype=torch.float64)
    y = torch.full((1, 5), float("nan"), dtype=torch.float64)
    with pytest.raises(TrainingDivergedError, match="ridge solve"):
        fit_linear(feats, y)
