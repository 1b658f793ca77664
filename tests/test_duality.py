"""The p ↔ −2−p duality of the two cases, as an exact test (issue 13, item 3).

In whitened coordinates (u = Σ^{-1/2}x, ṽ_j = Σ^{1/2}w_j) the step is ṽ ← ṽ − η Σ^{p+1} ∇_ṽ L on
isotropic inputs, and Σ_High^{p+1} = Π Σ_Low^{(−2−p)+1} Πᵀ with Π swapping axes 0 and 9. Case
High's teacher β* = c·e₀ has whitened scale √10·|c|, Case Low's c·e₉ has |c|/√10. So with the
theory's initialisation w_j ~ N(0, σ²P) (whitened covariance σ²Σ^{p+1}), weight decay 0 and the
draws coupled through Π, Case High at p with β* and Case Low at −2−p with 10·β* are the same
learning problem: their losses, test MSEs and whitened features agree to rounding. Kaiming's
initialisation (isotropic in x, not in u) breaks it, as would weight decay (‖W‖² is not
invariant).
"""

import dataclasses

import jax
import numpy as np
import pytest

from jaxprecond.tasks.single_index import case_spectrum, dual_spectrum, sample_task
from jaxprecond.training.regression import PreconditionerConfig, train_student

CONFIG = PreconditionerConfig(
    steps=200, log_every=50, dh=32, n=600, n_train=100, init="gaussian", init_scale=0.1,
    weight_decay=0.0, learning_rate=0.01, float64=True,
)  # fmt: skip
POWERS = (-3.0, -2.0, -1.0, 0.0, 1.0)
INVARIANT = ("train_loss", "test_mse", "whitened_alignment", "whitened_energy")


@pytest.fixture(scope="module")
def spectra():
    with jax.enable_x64(True):
        high = case_spectrum("high", dtype=np.float64)
        yield high, dual_spectrum(high)


def run_pair(spectra, power, config, seed=0):
    """Case High at p (teacher β*) and Case Low at −2−p (teacher 10·β*), one coupled draw."""
    high, low = spectra
    key = jax.random.key(seed)
    with jax.enable_x64(True):
        run = jax.jit(train_student, static_argnames="config")
        first = run(key, high, power, 1.0, config=config)[1]
        dual = dataclasses.replace(config, teacher_scale=10.0 * config.teacher_scale)
        second = run(key, low, -2.0 - power, 1.0, config=dual)[1]
    return jax.tree.map(np.asarray, first), jax.tree.map(np.asarray, second)


def test_dual_spectrum_is_case_low(spectra):
    high, low = spectra
    reference = case_spectrum("low", dtype=np.float64)
    np.testing.assert_allclose(low.covariance, reference.covariance, rtol=1e-15)
    np.testing.assert_array_equal(low.teacher_basis, reference.teacher_basis)
    # the inputs are coupled through Π and the labels are the same
    with jax.enable_x64(True):
        a = sample_task(jax.random.key(3), high, 1.0, n=300, n_train=50)
        b = sample_task(jax.random.key(3), low, 1.0, n=300, n_train=50, teacher_scale=10.0)
    u_high = np.asarray(a.x_train) / np.sqrt(np.diag(high.covariance))
    u_low = np.asarray(b.x_train) / np.sqrt(np.diag(low.covariance))
    np.testing.assert_allclose(u_low[:, [9, 1, 2, 3, 4, 5, 6, 7, 8, 0]], u_high, rtol=1e-14)
    np.testing.assert_allclose(b.y_train, a.y_train, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.y_test, a.y_test, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("power", POWERS)
def test_high_at_p_is_low_at_minus_two_minus_p(spectra, power):
    high, low = run_pair(spectra, power, CONFIG)
    np.testing.assert_allclose(high.whitened_energy.sum(-1), 1.0, rtol=1e-12)
    for name in INVARIANT:
        assert np.isfinite(getattr(high, name)).all(), name
        np.testing.assert_allclose(
            getattr(low, name), getattr(high, name), rtol=1e-9, atol=1e-12, err_msg=name
        )
    # the network learned: the test is not comparing two initialisations
    assert high.train_loss[-1] < 0.97 * high.train_loss[0]
    assert np.ptp(high.test_mse) > 1e-2
    # the input-space alignment is not invariant: the eigenvalue ratio alone moves it
    assert not np.isclose(low.alignment[-1], high.alignment[-1], rtol=0.01)


def test_control_breaks_the_duality(spectra):
    """The same comparison at p = 1 ↔ −3 with Kaiming's initialisation (isotropic in x, not in
    whitened coordinates: the reference's) must fail. (Weight decay breaks it too: ‖W‖² is not
    invariant.)"""
    high, low = run_pair(spectra, 1.0, dataclasses.replace(CONFIG, init="kaiming"))
    assert np.isfinite(high.test_mse).all() and np.isfinite(low.test_mse).all()
    gap = np.max(np.abs(low.whitened_alignment - high.whitened_alignment))
    assert gap > 1e-3, gap
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(low.test_mse, high.test_mse, rtol=1e-6)


def test_teacher_scale_is_a_setting_an_axis_and_an_option(tmp_path):
    from jaxprecond.cli import main
    from jaxprecond.engine.experiment import grid_axes
    from jaxprecond.experiments.noise import NOISE, NoiseConfig

    spectrum = case_spectrum("low")
    a = sample_task(jax.random.key(0), spectrum, 1.0, n=300, n_train=50)
    b = sample_task(jax.random.key(0), spectrum, 1.0, n=300, n_train=50, teacher_scale=10.0)
    np.testing.assert_allclose(b.beta, 10 * np.asarray(a.beta), rtol=1e-6)
    np.testing.assert_array_equal(b.x_train, a.x_train)
    config, axes = grid_axes(NOISE, NoiseConfig(), {"teacher_scale": [1.0, 10.0]})
    assert [(a.name, a.values, a.traced) for a in axes][-1] == ("teacher_scale", (1.0, 10.0), True)
    # from the command line, checked like every setting
    assert main(["noise", "--teacher-scale", "-1", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
