"""Every optimizer of the comparison trains the student through the one training loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxprecond.optim.registry import OPTIMIZERS, make_optimizer, oracles
from jaxprecond.tasks.single_index import case_spectrum, sample_task
from jaxprecond.tasks.student import init_mlp, regression_loss
from jaxprecond.training.regression import train

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


def _torch_sam_steps(params, grad, *, lr, rho, momentum, weight_decay, eps, steps):
    """The authors' SAM (torch ``SAM(base_optimizer=SGD, ...)``) written out in float64 numpy:
    ``first_step`` climbs by ``rho · g / (‖g‖ + eps)``, ``second_step`` restores ``w`` and
    takes torch SGD's step with the gradient there: ``d = g(w + e) + wd · w``,
    ``buf = d`` on the first step and ``momentum · buf + d`` after, ``w ← w − lr · buf``."""
    w = {k: np.asarray(v, np.float64) for k, v in params.items()}
    buf = None
    path = [w]
    for _ in range(steps):
        g = grad(w)
        norm = np.sqrt(sum(np.sum(v**2) for v in g.values()))
        e = {k: rho * g[k] / (norm + eps) for k in w}
        g_sharp = grad({k: w[k] + e[k] for k in w})
        d = {k: g_sharp[k] + weight_decay * w[k] for k in w}
        buf = d if buf is None else {k: momentum * buf[k] + d[k] for k in w}
        w = {k: w[k] - lr * buf[k] for k in w}
        path.append(w)
    return path


def test_sam_is_momentum_sgd_on_the_adversarial_gradient_as_the_authors_ran_it():
    """Four steps of make_optimizer("sam") against the dense hand computation above, on a
    loss with two parameters (the ascent step's norm is global): ¼Σ c·a⁴ + ½‖M b − T‖²."""
    c = np.array([1.0, 2.0, 0.5])
    m = np.array([[2.0, 0.5], [-1.0, 1.5], [0.3, 0.0]])
    t = np.array([[1.0, 0.0], [0.0, -1.0], [0.5, 0.5]])

    def loss(p):
        return 0.25 * jnp.sum(c * p["a"] ** 4) + 0.5 * jnp.sum((m @ p["b"] - t) ** 2)

    def hand_grad(p):  # by hand, not by jax.grad
        return {"a": c * p["a"] ** 3, "b": m.T @ (m @ p["b"] - t)}

    params = {"a": jnp.array([1.0, -0.5, 0.8]), "b": jnp.array([[0.2, -0.1], [0.4, 0.3]])}
    settings = dict(lr=0.05, rho=0.05, momentum=0.9, weight_decay=0.01, eps=1e-8)
    truth = _torch_sam_steps(params, hand_grad, steps=4, **settings)

    tx = make_optimizer("sam", 0.05, rho=0.05, weight_decay=0.01)  # momentum 0.9, eps 1e-8
    state, w = tx.init(params), params
    step = jax.jit(lambda w, s: tx.update(jax.grad(loss)(w), s, w, **oracles(loss, w)))
    for k in range(1, 5):
        u, state = step(w, state)
        w = optax.apply_updates(w, u)
        for name in w:
            np.testing.assert_allclose(w[name], truth[k][name], rtol=2e-5, atol=1e-7)
    # momentum matters: plain SGD outside would end elsewhere
    plain = _torch_sam_steps(params, hand_grad, steps=4, **{**settings, "momentum": 0.0})
    assert np.abs(plain[4]["a"] - truth[4]["a"]).max() > 1e-2


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
