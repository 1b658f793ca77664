"""The paper's algebra: Eq. 7's spectrum of the preconditioned Gram, and Gram invariance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxprecond.linalg import matrix_power
from jaxprecond.optim.covariance_power import covariance_power
from jaxprecond.tasks.single_index import Task
from jaxprecond.tasks.student import init_mlp, mlp_apply
from jaxprecond.training.regression import train

DX, DH, N, N_TEST = 4, 16, 32, 32
STEPS, LOG_EVERY, LR = 100, 10, 0.05


# --- Eq. 7 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("power", [-2.0, -1.0, -0.5, 0.0, 1.0])
@pytest.mark.parametrize("dx, n", [(3, 8), (6, 20)])
def test_eq7_spectrum_of_preconditioned_gram(x64, rng, dx, n, power):
    # Paper convention: data matrix D = Xᵀ (dx × N, one column per sample), Σ_X = D Dᵀ / N.
    # With D = U S Vᵀ: Σ_X^p = U (S²/N)^p Uᵀ, so Dᵀ Σ_X^p D = V N^(-p) S^(2p+2) Vᵀ, whose non-zero
    # eigenvalues are N^(-p) s_r^(2(p+1)) and whose other N - dx eigenvalues vanish.
    D = rng.normal(size=(dx, n)) * rng.uniform(0.5, 2.0, size=(dx, 1))
    sigma = D @ D.T / n
    gram = D.T @ np.asarray(matrix_power(jnp.asarray(sigma), power)) @ D
    singular_values = np.linalg.svd(D, compute_uv=False)
    expected = np.sort(n ** (-power) * singular_values ** (2 * (power + 1)))
    eigenvalues = np.linalg.eigvalsh(0.5 * (gram + gram.T))
    np.testing.assert_allclose(eigenvalues[-dx:], expected, rtol=1e-9)
    np.testing.assert_allclose(eigenvalues[:-dx], 0.0, atol=1e-10 * expected.max())


# --- Gram invariance (Theorems 1-2) --------------------------------------------------------------


def make_task(rng, sigma):
    """Gaussian inputs with covariance Σ (rows are samples) and a fixed nonlinear target."""
    root = scipy.linalg.sqrtm(sigma).real
    x = rng.normal(size=(N + N_TEST, DX)) @ root
    beta = rng.normal(size=DX)
    y = np.tanh(x @ beta) + 0.5 * (x @ beta) ** 2 / DX
    y = (y - y[:N].mean()) / y[:N].std(ddof=1)
    return Task(*(jnp.asarray(v) for v in (x[:N], y[:N], x[N:], y[N:], beta)))


def transform_task(task, A):
    """x' = A x for every input: rows X' = X Aᵀ; targets unchanged."""
    return task._replace(x_train=task.x_train @ A.T, x_test=task.x_test @ A.T)


@jax.jit
def run(params, P, task, weight_decay):
    """Full-batch training with the first-layer kernel preconditioned by P (one compilation)."""
    return train(
        params,
        covariance_power(LR, P, 1.0, layout="out_in"),
        task,
        steps=STEPS,
        log_every=LOG_EVERY,
        weight_decay=weight_decay,
        eigenvectors=jnp.eye(DX, dtype=P.dtype),
    )


def preacts(params, x):
    return np.asarray(x @ params["W1"].T + params["b1"])


def compare_runs(task, task2, A, P, P2, weight_decay):
    """Train (X, W1, P) and (X Aᵀ, W1 A⁻¹, P2) from the same init; return both results."""
    params = init_mlp(jax.random.key(3), DX, DH, scale=1.0, dtype=jnp.float64)
    params2 = dict(params, W1=params["W1"] @ np.linalg.inv(A))
    # identical pre-activations at initialisation: X Aᵀ (W1 A⁻¹)ᵀ = X Aᵀ A⁻ᵀ W1ᵀ = X W1ᵀ.
    np.testing.assert_allclose(
        preacts(params2, task2.x_train), preacts(params, task.x_train), rtol=1e-12, atol=1e-12
    )
    final, traj = run(params, P, task, weight_decay)
    final2, traj2 = run(params2, P2, task2, weight_decay)
    # the runs learned something: the comparisons below are not between untouched parameters.
    assert float(traj.train_loss[-1]) < 0.8 * float(traj.train_loss[0])
    return (params, final, traj), (params2, final2, traj2)


def assert_same_function(task, task2, first, second, rtol=1e-8):
    (_, final, traj), (_, final2, traj2) = first, second
    np.testing.assert_allclose(traj2.train_loss, traj.train_loss, rtol=rtol)
    np.testing.assert_allclose(traj2.test_mse, traj.test_mse, rtol=rtol)
    np.testing.assert_allclose(
        preacts(final2, task2.x_train), preacts(final, task.x_train), rtol=rtol, atol=rtol
    )
    np.testing.assert_allclose(
        mlp_apply(final2, task2.x_test), mlp_apply(final, task.x_test), rtol=rtol, atol=rtol
    )
    for key in ("b1", "W2", "b2"):
        np.testing.assert_allclose(final2[key], final[key], rtol=rtol, atol=rtol)


def p_orthogonal_map(sigma, orthogonal, power):
    """A = Σ^(-p/2) O Σ^(p/2), and the matching preconditioner P' = A⁻ᵀ P A⁻¹ (equal to P)."""
    half = scipy.linalg.fractional_matrix_power(sigma, power / 2).real
    A = np.linalg.inv(half) @ orthogonal @ half
    P = scipy.linalg.fractional_matrix_power(sigma, power).real
    A_inv = np.linalg.inv(A)
    return A, P, A_inv.T @ P @ A_inv


@pytest.mark.parametrize("power", [-1.0, 0.5, 1.0])
def test_gram_invariance_same_trajectory(x64, rng, make_spd, make_orthogonal, power):
    """Training sees the inputs only through G_P = X P Xᵀ, so a map keeping it fixed is invisible.

    Rows are samples: pre-activations H = X W1ᵀ (+ b1), and with Δ = ∂L/∂H the kernel's gradient
    is Δᵀ X, so neuron j's gradient is g_j = Xᵀ δ_j. Preconditioned, W1 ← W1 − η Δᵀ X P, hence
    H ← H − η (X P Xᵀ) Δ: everything (Δ, b1, W2, b2) follows from H and the targets, so the
    trajectory depends on the inputs only through G_P = X P Xᵀ.

    Transform the inputs x' = A x, i.e. X' = X Aᵀ, and start from W1' = W1 A⁻¹ so that
    H'(0) = X Aᵀ A⁻ᵀ W1ᵀ = H(0). The transformed run keeps G_P iff X Aᵀ P' A Xᵀ = X P Xᵀ, which
    holds for P' = A⁻ᵀ P A⁻¹. For A = Σ^(−p/2) O Σ^(p/2) (O orthogonal) one has
    Aᵀ Σ^p A = Σ^(p/2) Oᵀ Σ^(−p/2) Σ^p Σ^(−p/2) O Σ^(p/2) = Σ^p, i.e. P' = A⁻ᵀ P A⁻¹ = P: the same
    preconditioner Σ^p gives the same trajectory on the transformed data (checked numerically
    below before training; the second run is nevertheless given the computed P').
    """
    sigma = make_spd(DX, low=0.5, high=2.0)
    A, P, P2 = p_orthogonal_map(sigma, make_orthogonal(DX), power)
    np.testing.assert_allclose(P2, P, rtol=1e-10, atol=1e-12)
    assert not np.allclose(A.T @ A, np.eye(DX), atol=1e-2)  # A is not merely orthogonal
    task = make_task(rng, sigma)
    task2 = transform_task(task, A)
    first, second = compare_runs(task, task2, A, jnp.asarray(P), jnp.asarray(P2), 0.0)
    assert_same_function(task, task2, first, second)
    # W1' A equals W1 along the whole run (checked at the end).
    np.testing.assert_allclose(second[1]["W1"] @ A, first[1]["W1"], rtol=1e-8, atol=1e-10)


def test_whitening_invariant_to_any_linear_map(x64, rng, make_spd):
    """p = −1 with Σ recomputed from the transformed data: (A Σ Aᵀ)^(−1) = A⁻ᵀ Σ^(−1) A⁻¹ = P'.

    So whitening by the data's own empirical covariance is invariant under any invertible A,
    not only the P-orthogonal ones of the previous test.
    """
    sigma = make_spd(DX, low=0.5, high=2.0)
    task = make_task(rng, sigma)
    A = rng.normal(size=(DX, DX)) + 2.0 * np.eye(DX)
    task2 = transform_task(task, A)
    cov = np.asarray(task.x_train).T @ np.asarray(task.x_train) / N
    cov2 = np.asarray(task2.x_train).T @ np.asarray(task2.x_train) / N
    P = matrix_power(jnp.asarray(cov), -1.0)
    P2 = matrix_power(jnp.asarray(cov2), -1.0)
    first, second = compare_runs(task, task2, A, P, P2, 0.0)
    assert_same_function(task, task2, first, second)


@pytest.mark.parametrize("power", [-1.0, 0.5, 1.0])
def test_weight_decay_breaks_invariance(x64, rng, make_spd, make_orthogonal, power):
    """With an L2 term on W1 the gradient gains wd·W1/N; preconditioned, it moves H by
    −η·wd/N · X P W1ᵀ, while the transformed run moves H' by −η·wd/N · X Aᵀ P' A⁻ᵀ W1ᵀ
    = −η·wd/N · X P A⁻¹ A⁻ᵀ W1ᵀ, which differs unless A is orthogonal."""
    sigma = make_spd(DX, low=0.5, high=2.0)
    A, P, P2 = p_orthogonal_map(sigma, make_orthogonal(DX), power)
    task = make_task(rng, sigma)
    task2 = transform_task(task, A)
    (_, final, traj), (_, final2, traj2) = compare_runs(
        task, task2, A, jnp.asarray(P), jnp.asarray(P2), weight_decay=1.0
    )
    h, h2 = preacts(final, task.x_train), preacts(final2, task2.x_train)
    assert np.abs(h2 - h).max() > 1e-2 * np.abs(h).max()
    assert np.abs(traj2.test_mse - traj.test_mse).max() > 1e-3


def test_weight_decay_keeps_orthogonal_invariance(x64, rng, make_spd, make_orthogonal):
    """Control: for p = 0 (P = I) and orthogonal A, ‖W1 Aᵀ‖ = ‖W1‖ so weight decay is harmless."""
    sigma = make_spd(DX, low=0.5, high=2.0)
    A = make_orthogonal(DX)
    task = make_task(rng, sigma)
    task2 = transform_task(task, A)
    eye = jnp.eye(DX, dtype=jnp.float64)
    first, second = compare_runs(task, task2, A, eye, eye, weight_decay=1.0)
    assert_same_function(task, task2, first, second)
