"""Every optimizer of the comparison trains the student through the one training loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxprecond.experiments.regression import train
from jaxprecond.optim.registry import OPTIMIZERS, make_optimizer, oracles
from jaxprecond.tasks.single_index import case_spectrum, sample_task
from jaxprecond.tasks.student import init_mlp, regression_loss

SPEC = case_spectrum("high")
TASK = sample_task(jax.random.key(0), SPEC, 4.0, n=300, n_train=100)
PARAMS = init_mlp(jax.random.key(1), 10, 16, scale=0.3)

SETTINGS = {
    "gd": (0.1, {}),
    "momentum": (0.05, {}),
    "adam": (0.01, {}),
    "sam": (0.1, {"rho": 0.01}),
    "lbfgs": (None, {}),
    "sophia_h": (0.01, {"weight_decay": 0.0}),
    "adahessian": (0.01, {}),
    "covariance_power": (0.05, {"covariance": SPEC.covariance, "power": 0.5}),
    "shampoo": (0.02, {"graft": "sgd"}),
    "kfac": (0.01, {"damping": 1e-2, "momentum": None}),
}


def test_every_registered_optimizer_has_settings_here():
    assert set(SETTINGS) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_optimizer_trains_the_student(name):
    lr, options = SETTINGS[name]
    optimizer = make_optimizer(name, lr, **options)
    run = jax.jit(
        lambda p: train(
            p,
            optimizer,
            TASK,
            steps=60,
            log_every=20,
            weight_decay=0.0,
            eigenvectors=SPEC.eigenvectors,
        )
    )
    params, traj = run(PARAMS)
    start = regression_loss(PARAMS, TASK.x_train, TASK.y_train, weight_decay=0.0, n_train=100)
    end = regression_loss(params, TASK.x_train, TASK.y_train, weight_decay=0.0, n_train=100)
    assert np.all(np.isfinite(traj.test_mse))
    assert float(end) < 0.9 * float(start), (name, float(start), float(end))


def test_sam_takes_the_gradient_at_the_adversarial_point():
    """One SAM step from w: w - lr * grad(w + rho * grad(w)/|grad(w)|) (Foret et al.)."""

    def loss(w):
        return jnp.sum(w**4) + jnp.sum(w**2)

    w = jnp.array([1.0, -0.5])
    lr, rho = 0.1, 0.05
    tx = make_optimizer("sam", lr, rho=rho)
    g = jax.grad(loss)(w)
    u, _ = tx.update(g, tx.init(w), w, **oracles(loss, w))
    adversarial = w + rho * g / jnp.linalg.norm(g)
    np.testing.assert_allclose(u, -lr * jax.grad(loss)(adversarial), rtol=1e-5)


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", 0.1)


def test_extra_args_do_not_disturb_plain_transforms():
    w = jnp.ones(3)
    tx = make_optimizer("adam", 0.1)
    plain = optax.adam(0.1)
    g = jnp.array([1.0, -2.0, 0.5])
    ours = tx.update(g, tx.init(w), w, **oracles(lambda p: jnp.sum(p**2), w, step=0))[0]
    np.testing.assert_array_equal(ours, plain.update(g, plain.init(w), w)[0])
