"""The training loop: minibatches, records, the Gaussian init inside the experiment."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxprecond.checks import SettingError
from jaxprecond.experiments.noise import NOISE, NoiseConfig
from jaxprecond.tasks.single_index import case_spectrum, sample_task
from jaxprecond.tasks.student import blocked_mse, init_mlp, mlp_apply, regression_loss
from jaxprecond.training.regression import train

SPEC = case_spectrum("high")
TASK = sample_task(jax.random.key(0), SPEC, 4.0, n=400, n_train=100)
PARAMS = init_mlp(jax.random.key(1), 10, 16, scale=0.1)


def run(**kwargs):
    options = dict(steps=200, log_every=50, weight_decay=0.0, eigenvectors=SPEC.eigenvectors)
    options.update(kwargs)
    return train(PARAMS, optax.sgd(0.05), TASK, **options)


def _apply(params):
    return mlp_apply(params, TASK.x_test)


def test_records_match_an_explicit_python_loop():
    """Train loss is logged before the update of the block's last step, test MSE after it."""
    final, traj = run(steps=20, log_every=10)
    params, losses = PARAMS, []
    opt = optax.sgd(0.05)
    state = opt.init(params)
    for _ in range(20):
        loss, grads = jax.value_and_grad(regression_loss)(
            params, TASK.x_train, TASK.y_train, weight_decay=0.0, n_train=100
        )
        updates, state = opt.update(grads, state)
        params = optax.apply_updates(params, updates)
        losses.append(loss)
        if len(losses) == 10:
            mid_params = params
    assert traj.train_loss.shape == traj.test_mse.shape == (2,)
    assert np.all(np.isfinite(traj.train_loss)) and np.all(np.isfinite(traj.test_mse))
    np.testing.assert_allclose(traj.train_loss, [losses[9], losses[19]], rtol=1e-5)
    expected = [float(jnp.mean((TASK.y_test - _apply(p)) ** 2)) for p in (mid_params, params)]
    np.testing.assert_allclose(traj.test_mse, expected, rtol=1e-5)
    for name in final:
        np.testing.assert_allclose(final[name], params[name], rtol=1e-5, atol=1e-7)
    # alignment is the first layer's energy fraction along the teacher direction
    w1 = np.asarray(params["W1"], np.float64)
    beta = np.asarray(TASK.beta, np.float64)
    expected_alignment = np.sum((w1 @ beta) ** 2) / np.sum(w1**2) / np.sum(beta**2)
    np.testing.assert_allclose(traj.alignment[-1], expected_alignment, rtol=1e-4)


def test_blocked_mse_equals_dense_for_any_block():
    dense = jnp.mean((_apply(PARAMS) - TASK.y_test) ** 2)
    assert np.isfinite(dense) and dense > 0
    for block in (1, 7, 300, 1000):
        got = blocked_mse(PARAMS, TASK.x_test, TASK.y_test, block_size=block)
        np.testing.assert_allclose(got, dense, rtol=1e-5)


def test_minibatch_sgd_is_seeded_and_learns():
    _, a = run(batch_size=16, key=jax.random.key(3))
    _, b = run(batch_size=16, key=jax.random.key(3))
    _, c = run(batch_size=16, key=jax.random.key(4))
    _, full = run()
    assert np.all(np.isfinite(a.test_mse))
    np.testing.assert_array_equal(a.test_mse, b.test_mse)
    assert not np.allclose(a.test_mse, c.test_mse)
    assert not np.allclose(a.test_mse, full.test_mse)
    assert a.train_loss[-1] < 0.5  # standardised targets: a predictor of 0 scores ~1


def test_bad_arguments():
    with pytest.raises(ValueError, match=re.escape("steps=25 must be a multiple of log_every=10")):
        run(steps=25, log_every=10)
    with pytest.raises(ValueError, match="batch_size needs a key"):
        run(batch_size=8)


def test_gaussian_init_experiment_runs_and_differs():
    cfg = NoiseConfig(
        cases=("high",),
        powers=(1.0,),
        snrs=(1.0,),
        seeds=2,
        steps=100,
        log_every=50,
        dh=16,
        n=400,
        n_train=100,
    )
    kaiming = NOISE.sweep(cfg, progress=False).data["test_mse"]
    gaussian = NOISE.sweep(dataclasses.replace(cfg, init="gaussian"), progress=False)
    assert gaussian.config.init == "gaussian"
    gaussian = gaussian.data["test_mse"]
    assert np.all(np.isfinite(kaiming)) and np.all(np.isfinite(gaussian))
    assert not np.allclose(kaiming, gaussian)
    message = "init must be one of ('kaiming', 'gaussian'), got 'xavier'"
    with pytest.raises(SettingError, match=re.escape(message)):
        dataclasses.replace(cfg, init="xavier")
