"""Rotated spectra: K-FAC with input power p keeps Σ^p, a diagonal preconditioner loses it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprecond.tasks.single_index import case_spectrum, random_rotation
from jaxprecond.experiments.noise import NoiseConfig
from jaxprecond.experiments.rotated import compare_arms, diagonal_power, feature_distance

CONFIG = NoiseConfig(dh=16, n=400, n_train=200, steps=200, log_every=200)
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
    with pytest.raises(ValueError, match="'newton'"):
        compare_arms(jax.random.key(0), case_spectrum("high"), 1.0, config=CONFIG, arms=("newton",))
