"""Teacher-student data and the student's initialisations against closed forms and statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprecond.tasks.single_index import case_spectrum, random_rotation, sample_task, teacher
from jaxprecond.tasks.student import init_mlp, init_mlp_gaussian

DX, K, N, N_TRAIN = 5, 2, 4000, 200

#: one compilation per (shapes, dtype) for every test below; spectra and snr are traced.
sample = jax.jit(sample_task, static_argnames=("n", "n_train"))


def inv_sqrt(matrix):
    eigenvalues, q = np.linalg.eigh(matrix)
    return (q / np.sqrt(eigenvalues)) @ q.T


def all_inputs(task):
    return np.concatenate([np.asarray(task.x_train), np.asarray(task.x_test)])


def all_targets(task):
    return np.concatenate([np.asarray(task.y_train), np.asarray(task.y_test)])


def numpy_signal(task):
    """The noiseless teacher softplus(10·⟨β, x⟩) on every point, computed in numpy."""
    return np.logaddexp(0.0, 10.0 * all_inputs(task) @ np.asarray(task.beta))


# --- spectra -------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("case", ["high", "low"])
def test_case_spectrum_axis_aligned(case, k):
    dx, scale = 5, 10.0
    spectrum = case_spectrum(case, dx=dx, k=k, scale=scale)
    n_large = k if case == "high" else dx - k
    expected = [scale] * n_large + [1 / scale] * (dx - n_large)
    np.testing.assert_allclose(spectrum.eigenvalues, expected, rtol=1e-7)
    np.testing.assert_array_equal(spectrum.eigenvectors, np.eye(dx))
    axes = list(range(k)) if case == "high" else list(range(dx - k, dx))
    np.testing.assert_array_equal(spectrum.teacher_basis, np.eye(dx)[:, axes])
    # the teacher lives on the large (high) or small (low) eigenvalues of Σ.
    basis = np.asarray(spectrum.teacher_basis)
    teacher_value = scale if case == "high" else 1 / scale
    np.testing.assert_allclose(
        basis.T @ np.asarray(spectrum.covariance) @ basis, teacher_value * np.eye(k), rtol=1e-6
    )


@pytest.mark.parametrize("case", ["high", "low"])
def test_case_spectrum_rotation(x64, make_orthogonal, case):
    dx, k, scale = 6, 2, 4.0
    Q = make_orthogonal(dx)
    spectrum = case_spectrum(case, dx=dx, k=k, scale=scale, rotation=Q, dtype=jnp.float64)
    cov = np.asarray(spectrum.covariance)
    q = np.asarray(spectrum.eigenvectors)
    np.testing.assert_allclose(q.T @ q, np.eye(dx), atol=1e-12)
    lam = np.asarray(spectrum.eigenvalues)
    np.testing.assert_allclose(cov, Q @ np.diag(lam) @ Q.T, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(cov)), np.sort(lam), rtol=1e-12)
    # teacher directions are eigenvectors of Σ with the case's eigenvalue.
    basis = np.asarray(spectrum.teacher_basis)
    value = scale if case == "high" else 1 / scale
    np.testing.assert_allclose(cov @ basis, value * basis, atol=1e-12)


def test_random_rotation_is_orthogonal(x64):
    q = np.asarray(random_rotation(jax.random.key(4), 7, jnp.float64))
    np.testing.assert_allclose(q @ q.T, np.eye(7), atol=1e-12)
    assert not np.allclose(q, np.eye(7))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(case="mid"),
        dict(case="high", k=0),
        dict(case="high", dx=3, k=3),
        dict(case="low", dx=3.0),
        dict(case="low", scale=0.0),
        dict(case="high", dx=3, rotation=np.eye(4)),
    ],
)
def test_case_spectrum_bad_arguments(kwargs):
    kwargs = dict(kwargs)
    with pytest.raises(ValueError):
        case_spectrum(kwargs.pop("case"), **kwargs)


# --- sample_task ---------------------------------------------------------------------------------


def test_sample_task_input_covariance(x64, make_orthogonal):
    spectrum = case_spectrum(
        "low", dx=DX, k=K, scale=10.0, rotation=make_orthogonal(DX), dtype=jnp.float64
    )
    task = sample(jax.random.key(0), spectrum, 2.0, n=20_000, n_train=N_TRAIN)
    x = all_inputs(task)
    assert task.x_train.shape == (N_TRAIN, DX) and task.x_test.shape == (20_000 - N_TRAIN, DX)
    empirical = x.T @ x / len(x)
    root = inv_sqrt(np.asarray(spectrum.covariance))
    # whitened, each entry has standard error ~ sqrt(2/n) = 0.01.
    np.testing.assert_allclose(root @ empirical @ root, np.eye(DX), atol=0.05)
    np.testing.assert_allclose(x.mean(axis=0) @ root, 0.0, atol=0.05)


@pytest.mark.parametrize("snr", [0.5, 4.0, np.inf])
def test_sample_task_targets_standardised(x64, snr):
    spectrum = case_spectrum("high", dx=DX, k=K, dtype=jnp.float64)
    task = sample(jax.random.key(1), spectrum, snr, n=N, n_train=N_TRAIN)
    y = np.asarray(task.y_train)
    np.testing.assert_allclose(y.mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.std(ddof=1), 1.0, rtol=1e-12)
    assert task.y_test.shape == (N - N_TRAIN,)
    assert np.all(np.isfinite(task.y_test))


def test_noiseless_targets_are_train_standardised_teacher(x64):
    spectrum = case_spectrum("high", dx=DX, k=K, dtype=jnp.float64)
    task = sample(jax.random.key(2), spectrum, np.inf, n=N, n_train=N_TRAIN)
    beta = np.asarray(task.beta)
    assert np.all(beta[K:] == 0.0) and np.all(beta[:K] != 0.0)  # β* in the teacher subspace
    signal = numpy_signal(task)
    expected = (signal - signal[:N_TRAIN].mean()) / signal[:N_TRAIN].std(ddof=1)
    np.testing.assert_allclose(all_targets(task), expected, rtol=1e-10, atol=1e-10)


def recover_noise(spectrum, key, snr_a, snr_b):
    """The noise of the snr_a task, in units of std(signal) / snr_a, up to an additive constant.

    Same key, two SNRs: raw targets are s + ξ·std(s)/snr with the same ξ, and the observed
    targets are (raw − m)/sd with unknown train statistics. Then
    snr_a·(sd_a·y_a + m_a − s) = snr_b·(sd_b·y_b + m_b − s) = ξ·std(s) is linear in
    (sd_a, sd_b, snr_a·m_a − snr_b·m_b): solve by least squares (n equations, 3 unknowns).
    """
    task_a = sample(key, spectrum, snr_a, n=N, n_train=N_TRAIN)
    task_b = sample(key, spectrum, snr_b, n=N, n_train=N_TRAIN)
    s = numpy_signal(task_a)
    np.testing.assert_array_equal(all_inputs(task_a), all_inputs(task_b))
    y_a, y_b = all_targets(task_a), all_targets(task_b)
    design = np.stack([snr_a * y_a, -snr_b * y_b, np.ones(N)], axis=1)
    rhs = (snr_a - snr_b) * s
    solution, *_ = np.linalg.lstsq(design, rhs, rcond=None)
    # an exact fit: the two noise vectors are the same draws scaled by 1/snr.
    np.testing.assert_allclose(design @ solution, rhs, atol=1e-9 * np.abs(rhs).max())
    noise = solution[0] * y_a - s
    return snr_a * (noise - noise.mean()) / s.std(), s


def test_noise_scale_is_signal_std_over_snr(x64):
    key = jax.random.key(5)
    xis = {}
    for case in ("high", "low"):
        spectrum = case_spectrum(case, dx=DX, k=K, scale=10.0, dtype=jnp.float64)
        xis[case], _ = recover_noise(spectrum, key, 1.0, 3.0)
        # the recovered standard normals have unit spread (standard error ~1/sqrt(2n) = 1.1%).
        np.testing.assert_allclose(xis[case].std(), 1.0, atol=0.05)
    # Both cases share the noise draws, and each is scaled by its own std(signal) over all n:
    # the normalised noise is identical. Scaling by the train-only std would break this.
    np.testing.assert_allclose(xis["high"], xis["low"], rtol=1e-8, atol=1e-8)


def test_same_key_same_draws_across_cases(x64):
    key = jax.random.key(7)
    dx, k = DX, K
    tasks = {}
    for case in ("high", "low"):
        spectrum = case_spectrum(case, dx=dx, k=k, scale=10.0, dtype=jnp.float64)
        tasks[case] = (sample(key, spectrum, 2.0, n=N, n_train=N_TRAIN), spectrum)
    (high, spec_high), (low, spec_low) = tasks["high"], tasks["low"]
    z_high = all_inputs(high) / np.sqrt(np.asarray(spec_high.eigenvalues))
    z_low = all_inputs(low) / np.sqrt(np.asarray(spec_low.eigenvalues))
    np.testing.assert_allclose(z_high, z_low, rtol=1e-14)
    assert not np.allclose(all_inputs(high), all_inputs(low))
    # the teacher coefficients are the same draws on the respective teacher axes.
    np.testing.assert_array_equal(np.asarray(high.beta)[:k], np.asarray(low.beta)[dx - k :])


@pytest.mark.parametrize("n, n_train", [(100, 1), (100, 100), (100, 150)])
def test_sample_task_bad_split(n, n_train):
    with pytest.raises(ValueError, match="n_train"):
        sample_task(jax.random.key(0), case_spectrum("high"), 1.0, n=n, n_train=n_train)


# --- teacher -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_teacher_stable_for_large_arguments(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        z = jnp.asarray([[-1e4], [-30.0], [-1.0], [0.0], [0.3], [30.0], [1e4]], dtype)
        values = np.asarray(teacher(z, jnp.ones(1, dtype)))
    assert values.dtype == dtype
    assert np.all(np.isfinite(values)) and np.all(values >= 0.0)
    expected = np.logaddexp(0.0, 10.0 * np.asarray(z, np.float64)[:, 0])
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-30)
    assert values[-1] == 1e5  # softplus(10z) = 10z for large positive z
    assert values[0] == 0.0


def test_teacher_is_single_index(x64, rng):
    x = rng.normal(size=(10, 4))
    beta = rng.normal(size=4)
    np.testing.assert_allclose(teacher(x, beta), np.logaddexp(0.0, 10.0 * x @ beta), rtol=1e-12)


# --- init_mlp ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1e-3, 0.5])
def test_init_mlp_bounds_shapes_and_zero_biases(scale):
    dx, dh = 8, 32
    params = init_mlp(jax.random.key(0), dx, dh, scale=scale)
    assert {k: v.shape for k, v in params.items()} == {
        "W1": (dh, dx),
        "b1": (dh,),
        "W2": (dh,),
        "b2": (),
    }
    assert all(v.dtype == jnp.float32 for v in params.values())
    for name, fan_in in (("W1", dx), ("W2", dh)):
        bound = scale * np.sqrt(6.0 / fan_in)
        w = np.asarray(params[name])
        assert np.abs(w).max() <= bound * (1 + 1e-6)
        assert np.abs(w).max() > 0.8 * bound  # fills the interval, not a tiny sub-range
    np.testing.assert_array_equal(params["b1"], 0.0)
    np.testing.assert_array_equal(params["b2"], 0.0)


def test_init_mlp_variance(x64):
    dx, dh, scale = 8, 4096, 0.1
    params = init_mlp(jax.random.key(1), dx, dh, scale=scale, dtype=jnp.float64)
    assert params["W1"].dtype == jnp.float64
    # U(−b, b)·scale has variance scale²·b²/3 = scale²·2/fan_in.
    w1, w2 = np.asarray(params["W1"]), np.asarray(params["W2"])
    np.testing.assert_allclose(w1.var(), scale**2 * 2 / dx, rtol=0.03)  # 32768 draws
    np.testing.assert_allclose(w2.var(), scale**2 * 2 / dh, rtol=0.06)  # 4096 draws
    np.testing.assert_allclose(w1.mean(), 0.0, atol=0.02 * scale)


def test_init_mlp_gaussian_covariance(x64, make_spd):
    dx, dh, sigma = 4, 20_000, 0.1
    P = make_spd(dx, low=0.2, high=5.0)
    assert np.abs(P - np.diag(np.diag(P))).max() > 0.1  # genuinely non-diagonal
    init = jax.jit(init_mlp_gaussian, static_argnames="dh")
    params = init(jax.random.key(2), jnp.asarray(P), dh, sigma=sigma)
    w1 = np.asarray(params["W1"])
    assert w1.shape == (dh, dx) and params["W2"].shape == (dh,)
    empirical = w1.T @ w1 / dh / sigma**2
    root = inv_sqrt(P)
    np.testing.assert_allclose(root @ empirical @ root, np.eye(dx), atol=0.05)
    np.testing.assert_allclose(np.asarray(params["W2"]).var(), sigma**2, rtol=0.05)
    np.testing.assert_array_equal(params["b1"], 0.0)
    np.testing.assert_array_equal(params["b2"], 0.0)


@pytest.mark.parametrize("dx, dh", [(0, 4), (4, 0), (-1, 4), (2.0, 4), (4, 3.5), (4, None)])
def test_init_mlp_bad_sizes(dx, dh):
    with pytest.raises(ValueError, match="dx" if dx != 4 else "dh"):
        init_mlp(jax.random.key(0), dx, dh)


@pytest.mark.parametrize("dh", [0, -2, 1.5])
def test_init_mlp_gaussian_bad_sizes(dh):
    with pytest.raises(ValueError, match="dh"):
        init_mlp_gaussian(jax.random.key(0), jnp.eye(3), dh)
    with pytest.raises(ValueError):
        init_mlp_gaussian(jax.random.key(0), jnp.ones((3, 2)), 4)
