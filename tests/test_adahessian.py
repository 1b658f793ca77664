"""AdaHessian and the Hutchinson estimator against dense Hessians and the PyTorch update rule."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxprecond.experiments.noise import NOISE, NoiseConfig
from jaxprecond.optim.adahessian import adahessian, hutchinson_diagonal, scale_by_adahessian

H = np.array([[3.0, 1.0, -0.5], [1.0, 2.0, 0.25], [-0.5, 0.25, 1.0]])


def quadratic(w):
    return 0.5 * w @ jnp.asarray(H, w.dtype) @ w


def test_minus_ones_probe_gives_the_row_sums(x64):
    d = hutchinson_diagonal(quadratic, jnp.zeros(3), jax.random.key(0), probe="minus_ones")
    np.testing.assert_allclose(d, H.sum(1), rtol=1e-12)


def test_hutchinson_converges_to_the_diagonal_at_the_sqrt_n_rate(x64):
    """D_i = H_ii + Σ_{j≠i} H_ij z_i z_j: unbiased, variance Σ_{j≠i} H_ij²."""
    variance = (H**2).sum(1) - np.diag(H) ** 2
    rms = []
    for n in (64, 1024):
        keys = jax.random.split(jax.random.key(0), 20)
        estimate = jax.jit(
            jax.vmap(lambda k, n=n: hutchinson_diagonal(quadratic, jnp.zeros(3), k, samples=n))
        )
        errors = np.asarray(estimate(keys)) - np.diag(H)
        rms.append(np.sqrt(np.mean(np.square(errors), axis=0)))
        # the error shrinks as 1/sqrt(n) with the variance of one probe
        np.testing.assert_allclose(rms[-1], np.sqrt(variance / n), rtol=0.4)


def torch_adahessian(theta, grads, diagonals, lr, b1, b2, eps, k, wd):
    """The pytorch-optimizer rule, written out in numpy float64 (the independent truth)."""
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, (g, d) in enumerate(zip(grads, diagonals, strict=True), start=1):
        theta = theta * (1 - lr * wd)
        m = m + (1 - b1) * (g - m)
        v = b2 * v + (1 - b2) * d * d
        denom = (v / (1 - b2**t)) ** (k / 2) + eps
        theta = theta - lr / (1 - b1**t) * m / denom
    return theta


@pytest.mark.parametrize("k", [1.0, 0.5, -0.5, -1.0])
def test_update_rule_matches_the_pytorch_implementation(x64, k):
    """Fixed probes and gradients given from outside: five steps equal the numpy rule."""
    rng = np.random.default_rng(0)
    theta0 = rng.normal(size=3)
    grads = rng.normal(size=(5, 3))
    probes = rng.choice([-1.0, 1.0], size=(5, 3))
    lr, b1, b2, eps, wd = 0.1, 0.9, 0.999, 1e-8, 0.01
    diagonals = probes * (probes @ H.T)  # z ⊙ (H z) of the quadratic
    tx = adahessian(lr, b1, b2, eps, k, wd)
    theta = jnp.asarray(theta0)
    state = tx.init(theta)
    for g, z in zip(grads, probes, strict=True):
        u, state = tx.update(jnp.asarray(g), state, theta, obj_fn=quadratic, probes=jnp.asarray(z))
        theta = optax.apply_updates(theta, u)
    expected = torch_adahessian(theta0, grads, diagonals, lr, b1, b2, eps, k, wd)
    np.testing.assert_allclose(theta, expected, rtol=1e-10)


def test_negative_power_with_zero_curvature_is_finite():
    """A parameter the loss ignores has D = 0, v = 0: with k < 0 its update is 0, not NaN."""

    def loss(p):
        return jnp.sum((p["used"] - 1.0) ** 2)

    params = {"used": jnp.zeros(2), "unused": jnp.ones(2)}
    tx = adahessian(0.1, hessian_power=-1.0)
    state = tx.init(params)
    for _ in range(3):
        grads = jax.grad(loss)(params)
        u, state = tx.update(grads, state, params, obj_fn=loss)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u))
        params = optax.apply_updates(params, u)
    np.testing.assert_array_equal(params["unused"], 1.0)
    assert float(jnp.abs(params["used"] - 1.0).max()) < 1.0


def rosenbrock(w):
    return (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2


@pytest.mark.parametrize(
    ("fn", "start", "steps", "lr"),
    [
        (quadratic, [1.0, -2.0, 0.5], 300, 0.1),
        (rosenbrock, [0.0, 0.0], 5000, 1.0),
    ],
)
def test_converges(fn, start, steps, lr):
    tx = adahessian(lr, probe="rademacher")
    target = np.zeros(3) if fn is quadratic else np.ones(2)

    def step(carry, _):
        w, state = carry
        u, state = tx.update(jax.grad(fn)(w), state, w, obj_fn=fn)
        return (w + u, state), None

    w = jnp.asarray(start)
    (w, _), _ = jax.jit(lambda w: jax.lax.scan(step, (w, tx.init(w)), None, length=steps))(w)
    np.testing.assert_allclose(w, target, atol=0.05)


def test_bfloat16_parameters_keep_their_dtype():
    w = jnp.asarray([1.0, -2.0, 0.5], jnp.bfloat16)
    tx = adahessian(0.01, b2=0.9999)
    state = tx.init(w)
    assert state[0].nu.dtype == jnp.float32
    u, state = tx.update(jax.grad(quadratic)(w), state, w, obj_fn=quadratic)
    assert u.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(u)))
    assert float(jnp.abs(u.astype(jnp.float32)).max()) > 0


def test_vmap_over_seeds_equals_a_loop():
    tx = scale_by_adahessian()
    ws = jax.random.normal(jax.random.key(0), (8, 3))

    def one(w):
        return tx.update(jax.grad(quadratic)(w), tx.init(w), w, obj_fn=quadratic)[0]

    batched = jax.jit(jax.vmap(one))(ws)
    for i in range(8):
        np.testing.assert_allclose(batched[i], one(ws[i]), rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"b1": 1.0}, "b1 must be in"),
        ({"b2": -0.1}, "b2 must be in"),
        ({"eps": -1.0}, "eps must be"),
        ({"update_interval": 0}, "update_interval must be a positive integer"),
        ({"probe": "gaussian"}, "probe must be one of"),
    ],
)
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        scale_by_adahessian(**kwargs)


def test_needs_the_objective():
    tx = scale_by_adahessian()
    w = jnp.zeros(3)
    with pytest.raises(ValueError, match="obj_fn"):
        tx.update(w, tx.init(w), w)


def test_noise_experiment_adahessian_arm():
    """hessian_power = -p, p swept inside one program; the arm differs from exact Σ^p."""
    cfg = NoiseConfig(
        cases=("high",),
        powers=(-1.0, 1.0),
        snrs=(4.0,),
        seeds=2,
        steps=100,
        log_every=50,
        dh=16,
        n=400,
        n_train=100,
        preconditioner="adahessian",
    )
    ada = NOISE.sweep(cfg, progress=False).data["test_mse"]  # (case, p, snr, seed, record)
    exact = NOISE.sweep(
        dataclasses.replace(cfg, preconditioner="covariance_power"), progress=False
    ).data["test_mse"]
    assert np.all(np.isfinite(ada))
    assert not np.allclose(ada, exact)
    assert not np.allclose(ada[:, 0], ada[:, 1])  # p changes the run
    with pytest.raises(ValueError, match="preconditioner must be one of"):
        dataclasses.replace(cfg, preconditioner="lbfgs")
