"""Σ^p with Σ estimated from data: full-data and online (EMA) estimates against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprecond.linalg import matrix_power
from jaxprecond.optim.estimated import empirical_covariance, scale_by_online_covariance_power
from jaxprecond.tasks.single_index import case_spectrum, sample_task


def numpy_power(matrix, p):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * values**p) @ vectors.T


def test_empirical_covariance(rng):
    x = rng.normal(size=(50, 4)) + 3.0
    np.testing.assert_allclose(empirical_covariance(x), x.T @ x / 50, rtol=1e-5)
    np.testing.assert_allclose(
        empirical_covariance(x, centered=True), np.cov(x.T, ddof=0), rtol=1e-4, atol=1e-5
    )


def test_full_data_estimate_approaches_the_population_power():
    spec = case_spectrum("high")
    task = sample_task(jax.random.key(0), spec, 1.0, n=40_000, n_train=20_000)
    estimate = matrix_power(empirical_covariance(task.x_train), 1.0)
    np.testing.assert_allclose(estimate, np.diag(spec.eigenvalues), atol=0.25)
    # Σ^(1/2) Σ̂^(-1) Σ^(1/2) = I up to sampling error of order sqrt(dx / N)
    root = np.diag(np.sqrt(spec.eigenvalues))
    inverse = np.asarray(matrix_power(empirical_covariance(task.x_train), -1.0))
    np.testing.assert_allclose(root @ inverse @ root, np.eye(10), atol=0.05)


@pytest.mark.parametrize("centered", [False, True])
def test_online_estimate_is_the_ema_of_batch_moments(x64, rng, centered):
    d, decay, p, damping = 3, 0.8, -0.5, 0.1
    batches = [rng.normal(size=(16, d)) @ rng.normal(size=(d, d)) + 0.5 for _ in range(3)]
    tx = scale_by_online_covariance_power(
        d, p, layout="out_in", decay=decay, damping=damping, centered=centered
    )
    grad = jnp.asarray(rng.normal(size=(5, d)))
    state = tx.init(grad)
    second, mean = batches[0].T @ batches[0] / 16, batches[0].mean(0)
    for i, x in enumerate(batches):
        out, state = tx.update(grad, state, inputs=jnp.asarray(x))
        if i:
            second = decay * second + (1 - decay) * x.T @ x / 16
            mean = decay * mean + (1 - decay) * x.mean(0)
        moment = second - np.outer(mean, mean) if centered else second
        expected = np.asarray(grad) @ numpy_power(moment + damping * np.eye(d), p).T
        np.testing.assert_allclose(out, expected, rtol=2e-4)


def test_refresh_follows_the_unbatched_step_index(rng):
    tx = scale_by_online_covariance_power(2, 1.0, layout="in_out", decay=0.5, refresh_every=3)
    grad = jnp.ones((2, 4))
    state = tx.init(grad)
    cached = []
    for step in range(7):
        x = jnp.asarray(rng.normal(size=(8, 2)) * (step + 1))
        _, state = tx.update(grad, state, inputs=x, step=step)
        cached.append(np.asarray(state.preconditioner))
    changed = [not np.allclose(cached[i], cached[i - 1]) for i in range(1, 7)]
    assert changed == [False, False, True, False, False, True]


def test_vmap_over_seeds_with_a_shared_step(rng):
    tx = scale_by_online_covariance_power(3, -1.0, layout="out_in", damping=0.1, refresh_every=2)
    xs = jnp.asarray(rng.normal(size=(4, 10, 3)))
    grads = jnp.asarray(rng.normal(size=(4, 5, 3)))

    def one(g, x, step):
        return tx.update(g, tx.init(g), inputs=x, step=step)[0]

    batched = jax.vmap(one, in_axes=(0, 0, None))(grads, xs, 0)
    for i in range(4):
        np.testing.assert_allclose(batched[i], one(grads[i], xs[i], 0), rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decay": 1.0}, "decay must be in"),
        ({"damping": -1.0}, "damping must be non-negative"),
        ({"refresh_every": 0}, "refresh_every must be a positive integer"),
        ({"layout": "rows"}, "layout must be one of"),
    ],
)
def test_bad_arguments(kwargs, message):
    options = {"layout": "out_in"} | kwargs
    with pytest.raises(ValueError, match=message):
        scale_by_online_covariance_power(3, 1.0, **options)


def test_needs_the_inputs():
    tx = scale_by_online_covariance_power(2, 1.0, layout="out_in")
    g = jnp.ones((3, 2))
    with pytest.raises(ValueError, match="inputs"):
        tx.update(g, tx.init(g))
