"""Matrix powers of PSD matrices against scipy / dense numpy eigendecompositions."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxprecond.linalg import (
    eigenvalue_power,
    eigh_psd,
    matrix_power,
    power_from_eigh,
)

POWERS = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]


def numpy_power(matrix: np.ndarray, power: float) -> np.ndarray:
    """Dense truth: ``Q diag(λ^p) Qᵀ`` from numpy's eigendecomposition."""
    eigenvalues, q = np.linalg.eigh(matrix)
    return (q * eigenvalues**power) @ q.T


def singular_psd(rng: np.random.Generator, eigenvalues) -> np.ndarray:
    """A rotated PSD matrix with the given (some zero) eigenvalues."""
    q, _ = np.linalg.qr(rng.normal(size=(len(eigenvalues),) * 2))
    return (q * np.asarray(eigenvalues, float)) @ q.T, q


@pytest.mark.parametrize("power", POWERS)
@pytest.mark.parametrize("dx", [1, 5])
def test_matrix_power_matches_scipy(x64, make_spd, dx, power):
    sigma = make_spd(dx)
    expected = scipy.linalg.fractional_matrix_power(sigma, power).real
    result = np.asarray(matrix_power(jnp.asarray(sigma), power))
    assert result.dtype == np.float64
    np.testing.assert_allclose(result, expected, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(result, numpy_power(sigma, power), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("power", [-1.0, 0.5, 2.0])
def test_matrix_power_float32_close_to_float64_truth(make_spd, power):
    sigma = make_spd(5)
    result = matrix_power(jnp.asarray(sigma, jnp.float32), power)
    assert result.dtype == jnp.float32
    np.testing.assert_allclose(result, numpy_power(sigma, power), rtol=2e-5, atol=2e-5)


def test_matrix_power_integer_powers_are_products(x64, make_spd):
    sigma = make_spd(4)
    np.testing.assert_allclose(matrix_power(sigma, 2.0), sigma @ sigma, rtol=1e-10)
    np.testing.assert_allclose(matrix_power(sigma, -1.0), np.linalg.inv(sigma), rtol=1e-10)
    root = np.asarray(matrix_power(sigma, 0.5))
    np.testing.assert_allclose(root @ root, sigma, rtol=1e-10)
    np.testing.assert_allclose(root, root.T, atol=1e-14)


@pytest.mark.parametrize("power", [-1.0, -0.5, 0.5, 2.0])
@pytest.mark.parametrize("damping", [0.1, 2.0])
def test_damping_shifts_eigenvalues(x64, make_spd, power, damping):
    sigma = make_spd(4)
    expected = scipy.linalg.fractional_matrix_power(sigma + damping * np.eye(4), power).real
    result = matrix_power(sigma, power, damping=damping)
    np.testing.assert_allclose(result, expected, rtol=1e-9, atol=1e-12)


def test_eigh_psd_damping_and_clipping(x64, rng):
    matrix, _ = singular_psd(rng, [0.0, 1.0, 4.0])
    eigh = eigh_psd(matrix, damping=0.5)
    np.testing.assert_allclose(eigh.eigenvalues, [0.5, 1.5, 4.5], atol=1e-12)
    q = np.asarray(eigh.eigenvectors)
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-12)
    np.testing.assert_allclose((q * eigh.eigenvalues) @ q.T, matrix + 0.5 * np.eye(3), atol=1e-12)
    # Rounding makes the zero eigenvalue slightly negative or positive; never below zero here.
    assert float(eigh_psd(matrix).eigenvalues.min()) >= 0.0


@pytest.mark.parametrize("power", [-1.0, -0.5, -2])
def test_negative_power_of_singular_matrix_raises(rng, power):
    matrix, _ = singular_psd(rng, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=f"power={power}"):
        matrix_power(matrix, power)
    rank_one = np.ones((2, 2))
    with pytest.raises(ValueError, match=f"power={power}"):
        matrix_power(rank_one, power)


@pytest.mark.parametrize("power", [-1.0, -0.5])
def test_negative_power_of_singular_matrix_with_damping(x64, rng, power):
    matrix, q = singular_psd(rng, [0.0, 1.0, 2.0])
    result = matrix_power(matrix, power, damping=0.25)
    expected = (q * np.array([0.25, 1.25, 2.25]) ** power) @ q.T
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("power", [-2.0, -1.0, -0.5, -10.0])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_power_from_eigh_traced_singular_is_finite(rng, dtype, power):
    eigenvalues = [0.0, 0.0, 1.0, 4.0]
    matrix, q = singular_psd(rng, eigenvalues)
    with jax.enable_x64(dtype == jnp.float64):
        fn = jax.jit(lambda m, p: power_from_eigh(eigh_psd(m), p))
        result = np.asarray(fn(jnp.asarray(matrix, dtype), jnp.asarray(power, dtype)))
    assert result.dtype == dtype
    assert np.all(np.isfinite(result))
    if power >= -2:
        # On the range of the matrix the power is exact: P q_r = λ_r^p q_r.
        tol = 1e-4 if dtype == jnp.float32 else 1e-10
        scale = np.abs(result).max()
        for r in (2, 3):
            np.testing.assert_allclose(
                result @ q[:, r], eigenvalues[r] ** power * q[:, r], atol=tol * scale
            )
        # and the null space sees the floored eigenvalue, largest entries ~ (floor·λmax)^p
        # with the default relative floor d·eps(dtype).
        floor = (len(eigenvalues) * np.finfo(dtype).eps * 4.0) ** power
        np.testing.assert_allclose(q[:, 0] @ result @ q[:, 0], floor, rtol=1e-2)


def test_eigenvalue_power_floor_and_clip():
    values = np.asarray(eigenvalue_power(jnp.array([0.0, 1e-12, 1.0], jnp.float32), -1.0))
    floor = 3 * np.finfo(np.float32).eps  # default: d·eps(dtype), relative to max(λ) = 1
    np.testing.assert_allclose(values, [1 / floor, 1 / floor, 1.0], rtol=1e-5)
    huge = np.asarray(eigenvalue_power(jnp.array([0.0, 1.0], jnp.float32), -50.0))
    assert np.all(np.isfinite(huge))
    assert huge[0] == np.finfo(np.float32).max


def test_vmap_over_power_equals_per_power(x64, make_spd):
    sigma = make_spd(5)
    eigh = eigh_psd(sigma)
    powers = jnp.asarray(POWERS)
    batched = jax.vmap(lambda p: power_from_eigh(eigh, p))(powers)
    assert batched.shape == (len(POWERS), 5, 5)
    for i, p in enumerate(POWERS):
        np.testing.assert_allclose(batched[i], numpy_power(sigma, p), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(batched[i], power_from_eigh(eigh, p), rtol=1e-12, atol=1e-14)


def test_jitted_power_does_not_retrace_per_value(x64, make_spd):
    sigma = make_spd(4)
    eigh = eigh_psd(sigma)
    traces = []

    @jax.jit
    def fn(p):
        traces.append(p)
        return power_from_eigh(eigh, p)

    for p in POWERS:
        np.testing.assert_allclose(fn(jnp.asarray(p)), numpy_power(sigma, p), rtol=1e-9, atol=1e-12)
    assert len(traces) == 1


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 2, 2), ()])
def test_non_square_matrix_raises(shape):
    with pytest.raises(ValueError, match="square"):
        matrix_power(np.ones(shape), 1.0)
    with pytest.raises(ValueError, match="square"):
        eigh_psd(np.ones(shape))


def test_negative_damping_raises(make_spd):
    sigma = make_spd(3)
    with pytest.raises(ValueError, match="damping"):
        matrix_power(sigma, 1.0, damping=-0.1)
    with pytest.raises(ValueError, match="damping"):
        eigh_psd(sigma, damping=-1e-3)


def test_floor_only_for_negative_powers_and_scaled_to_dtype(x64):
    """The floor keeps negative powers finite; it must not touch positive powers, and in
    float64 it must not clip eigenvalues that float64 resolves."""
    import jax.numpy as jnp

    from jaxprecond.linalg import matrix_power

    np.testing.assert_allclose(
        np.diag(matrix_power(jnp.diag(jnp.array([1.0, 1e-8])), -1.0)), [1.0, 1e8], rtol=1e-10
    )
    np.testing.assert_array_equal(
        np.asarray(matrix_power(jnp.diag(jnp.array([4.0, 0.0])), 0.5)), np.diag([2.0, 0.0])
    )


def test_symmetric_eigh_batched_equals_one_at_a_time(rng):
    """Under (nested) vmap the CPU path maps over the batch; the result is the same."""
    from jaxprecond.linalg import symmetric_eigh

    a = rng.normal(size=(2, 3, 5, 5)).astype(np.float32)
    a = a + np.swapaxes(a, -1, -2)
    values, vectors = jax.jit(jax.vmap(jax.vmap(symmetric_eigh)))(a)
    for i in range(2):
        for j in range(3):
            w, v = np.linalg.eigh(a[i, j])
            np.testing.assert_allclose(values[i, j], w, rtol=1e-4, atol=1e-4)
            recon = (vectors[i, j] * values[i, j]) @ vectors[i, j].T
            np.testing.assert_allclose(recon, a[i, j], atol=1e-4)
    # an unbatched operand under vmap stays unbatched
    out = jax.vmap(lambda s: symmetric_eigh(a[0, 0])[0] * s)(np.ones(4, np.float32))
    np.testing.assert_allclose(out[3], np.linalg.eigh(a[0, 0])[0], rtol=1e-4, atol=1e-4)


def test_cholesky_solve_batched_equals_numpy(rng):
    """Batched (nested vmap, one operand unbatched) Cholesky solves match numpy's solve."""
    from jaxprecond.linalg import cholesky_solve

    a = rng.normal(size=(2, 3, 6, 6))
    spd = (a @ np.swapaxes(a, -1, -2) + 6 * np.eye(6)).astype(np.float32)
    rhs = rng.normal(size=6).astype(np.float32)
    out = jax.jit(jax.vmap(jax.vmap(cholesky_solve, (0, None)), (0, None)))(spd, rhs)
    np.testing.assert_allclose(out, np.linalg.solve(spd, rhs), rtol=1e-4, atol=1e-5)


def test_batched_solves_on_two_host_devices_do_not_hang():
    """A vmapped Cholesky solve dispatched to two host devices at once, 200 times: with XLA's
    batched LAPACK call this deadlocked the CPU thread pool (every thread idle); one system at
    a time it finishes in seconds."""
    code = """
import jax, jax.numpy as jnp
from jaxprecond.linalg import cholesky_solve
solve = jax.jit(jax.vmap(cholesky_solve))
a, b = jnp.eye(200)[None].repeat(8, 0) * 2.0 + 0.01, jnp.ones((8, 200))
copies = [jax.device_put((a, b), d) for d in jax.local_devices()]
for _ in range(200):
    jax.block_until_ready([solve(*x) for x in copies])
print("done", len(copies))
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.split() == ["done", "2"], out.stderr
