"""Rotated spectra: K-FAC with input power p keeps Σ^p, a diagonal preconditioner loses it."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprecond.checks import SettingError
from jaxprecond.experiments.rotated import (
    ROTATED,
    RotatedConfig,
    compare_arms,
    diagonal_power,
    feature_distance,
)
from jaxprecond.tasks.single_index import case_spectrum, random_rotation

CONFIG = RotatedConfig(snr=0.25, dh=16, n=400, n_train=200, steps=200, log_every=200)
POWERS = jnp.array([-1.0, 1.0])


def run(spectrum, arms):
    """Both powers, one seed, one compiled program."""
    key = jax.random.key(3)
    return jax.jit(jax.vmap(lambda p: compare_arms(key, spectrum, p, config=CONFIG, arms=arms)))(
        POWERS
    )


def distances(out, arm, to):
    return np.asarray(jax.vmap(feature_distance)(out[arm]["W1"], out[to]["W1"]))


def test_rotated_spectrum_kfac_keeps_the_power_and_the_diagonal_loses_it():
    rotation = random_rotation(jax.random.key(11), CONFIG.dx)
    out = run(case_spectrum("high", rotation=rotation), ("empirical", "kfac", "diagonal"))
    # K-FAC's input factor is the batch's XᵀX/N: the whole run is the Σ̂^p run.
    np.testing.assert_allclose(out["kfac"]["W1"], out["empirical"]["W1"], rtol=2e-4, atol=1e-7)
    assert np.all(distances(out, "kfac", "empirical") < 1e-4)
    # diag(Σ)^p mixes the large and small eigenvalues: the learned directions differ.
    assert np.all(distances(out, "diagonal", "empirical") > 0.2)


def test_unrotated_spectrum_diagonal_is_exact():
    out = run(case_spectrum("high"), ("exact", "diagonal"))
    np.testing.assert_array_equal(out["diagonal"]["W1"], out["exact"]["W1"])


def test_feature_distance_properties(rng):
    w = jnp.asarray(rng.normal(size=(7, 4)), jnp.float32)
    perm = jnp.asarray(rng.permutation(7))
    signs = jnp.asarray(rng.choice([-1.0, 1.0], size=(7, 1)), jnp.float32)
    # invariant to neuron order, signs and scale
    assert float(feature_distance(w, 3.0 * signs * w[perm])) < 1e-6
    v = jnp.asarray(rng.normal(size=(7, 4)), jnp.float32)
    assert 0.0 < float(feature_distance(w, v)) <= np.sqrt(2) + 1e-6
    # orthogonal one-neuron layers are the farthest apart
    np.testing.assert_allclose(feature_distance(jnp.eye(4)[:1], jnp.eye(4)[1:2]), np.sqrt(2))


def test_diagonal_power_and_bad_arm():
    sigma = jnp.array([[2.0, 1.0], [1.0, 3.0]])
    np.testing.assert_array_equal(diagonal_power(sigma).eigenvalues, [2.0, 3.0])
    np.testing.assert_array_equal(diagonal_power(sigma).eigenvectors, np.eye(2))
    message = "every value of arms must be one of ('empirical', 'kfac', 'diagonal', 'adahessian')"
    with pytest.raises(SettingError, match=re.escape(message + ", got 'newton'")):
        RotatedConfig(arms=["newton"])
    with pytest.raises(SettingError, match=re.escape("snr must be a positive number, got 0.0")):
        RotatedConfig(snr=0.0)


def test_compare_arms_refuses_an_unknown_arm():
    with pytest.raises(ValueError, match=r"arms must be among .*'newton'"):
        compare_arms(jax.random.key(0), case_spectrum("high"), 1.0, config=CONFIG, arms=("newton",))


def test_rotate_axis_of_the_sweep():
    """Unrotated, diag(Σ)^p is Σ^p: distance 0; rotated, the diagonal arm learns elsewhere."""
    config = dataclasses.replace(
        CONFIG, cases=("high",), powers=(1.0,), arms=("diagonal",), seeds=2, group_size=2
    )
    results = ROTATED.sweep(config, axes={"rotate": [False, True]}, progress=False)
    assert results.dims == ("case", "p", "rotate", "seed", "step")
    assert results.values("rotate") == (False, True)
    assert sorted(results.data) == ["diagonal_distance", "diagonal_test_mse", "exact_test_mse"]
    distance = results.final("diagonal_distance")[0, 0]  # (rotate, seed)
    assert np.all(distance[0] < 1e-6)  # the same run up to rounding
    np.testing.assert_allclose(
        results.data["diagonal_test_mse"][:, :, 0], results.data["exact_test_mse"][:, :, 0],
        rtol=1e-5,
    )  # fmt: skip
    assert np.all(distance[1] > 0.2)
    assert np.isfinite(results.final("diagonal_test_mse")).all()
    assert "diagonal_distance (95% CI)" in results.table()
