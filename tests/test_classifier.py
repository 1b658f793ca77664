"""The OOD classifier: torch's default init, cross-entropy with coupled L2, K-FAC statistics."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprecond.optim.registry import make_optimizer, oracles
from jaxprecond.tasks.classifier import (
    CLASSIFIER_LAYERS,
    accuracy,
    classification_loss,
    classifier_kfac_statistics,
    init_classifier,
    logits,
)


def test_init_is_torch_default_uniform():
    p = init_classifier(jax.random.key(0), 784, 256, 10)
    for name, fan_in in (("W1", 784), ("b1", 784), ("W2", 256), ("b2", 256)):
        bound = 1 / math.sqrt(fan_in)
        values = np.asarray(p[name])
        assert np.abs(values).max() <= bound
        # uniform on [-b, b]: variance b²/3
        np.testing.assert_allclose(
            values.var(), bound**2 / 3, rtol=4 * math.sqrt(0.8 / values.size)
        )
    with pytest.raises(ValueError, match="dh"):
        init_classifier(jax.random.key(0), 3, 0, 2)


def test_loss_is_cross_entropy_plus_l2_on_every_parameter(x64, rng):
    p = init_classifier(jax.random.key(1), 5, 4, 3, dtype=jnp.float64)
    x = jnp.asarray(rng.normal(size=(7, 5)))
    y = jnp.asarray(rng.integers(0, 3, size=7))
    z = np.maximum(np.asarray(x) @ np.asarray(p["W1"]).T + np.asarray(p["b1"]), 0)
    z = z @ np.asarray(p["W2"]).T + np.asarray(p["b2"])
    log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    ce = -log_softmax[np.arange(7), np.asarray(y)].mean()
    l2 = sum(float(np.sum(np.asarray(v) ** 2)) for v in p.values())
    loss = classification_loss(p, x, y, weight_decay=0.3)
    np.testing.assert_allclose(loss, ce + 0.15 * l2, rtol=1e-12)
    np.testing.assert_allclose(accuracy(p, x, y), np.mean(z.argmax(1) == np.asarray(y)))


def test_kfac_statistics_reproduce_the_autodiff_gradient(x64, rng):
    """``∇W = (1/N) Σ_i g_i a_iᵀ`` and ``∇b = (1/N) Σ_i g_i`` for both layers."""
    p = init_classifier(jax.random.key(2), 6, 5, 4, dtype=jnp.float64)
    x = jnp.asarray(rng.normal(size=(9, 6)))
    y = jnp.asarray(rng.integers(0, 4, size=9))
    grads = jax.grad(lambda q: classification_loss(q, x, y, weight_decay=0.0))(p)
    inputs, out = classifier_kfac_statistics(p, x, y)
    for name, (kernel, bias) in CLASSIFIER_LAYERS.items():
        np.testing.assert_allclose(out[name].T @ inputs[name] / 9, grads[kernel], atol=1e-12)
        np.testing.assert_allclose(out[name].mean(0), grads[bias], atol=1e-12)
    # at the output, each example's gradient is softmax − one-hot
    probs = jax.nn.softmax(logits(p, x))
    np.testing.assert_allclose(out["layer2"], probs - jax.nn.one_hot(y, 4), atol=1e-12)


def test_registry_kfac_takes_the_classifier_statistics(rng):
    x = jnp.asarray(rng.normal(size=(64, 6)), jnp.float32)
    y = jnp.asarray((x[:, 0] > 0).astype(np.int32) + 2 * (x[:, 1] > 0))
    p = init_classifier(jax.random.key(3), 6, 16, 4)
    tx = make_optimizer(
        "kfac",
        0.1,
        layers=CLASSIFIER_LAYERS,
        statistics=classifier_kfac_statistics,
        damping=1e-2,
        momentum=None,
    )

    def objective(q):
        return classification_loss(q, x, y, weight_decay=0.0)

    @jax.jit
    def step(q, state):
        u, state = tx.update(
            jax.grad(objective)(q), state, q, **oracles(objective, q, inputs=x, targets=y)
        )
        return jax.tree.map(jnp.add, q, u), state

    state, start = tx.init(p), objective(p)
    for _ in range(30):
        p, state = step(p, state)
    assert objective(p) < 0.3 * start
    with pytest.raises(ValueError, match="both layers"):
        make_optimizer("kfac", 0.1, layers=CLASSIFIER_LAYERS)
