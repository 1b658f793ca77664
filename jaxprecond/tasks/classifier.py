"""A one-hidden-layer ReLU classifier (the OOD experiment's 784→256→10 MLP).

Parameters are a flat dict in torch layout, ``{"W1": (dh, d), "b1": (dh,), "W2": (K, dh),
"b2": (K,)}``, so the first-layer kernel is routed to the Σ^p transforms with
``layout="out_in"`` exactly as the regression MLP's. The loss is the mean cross-entropy plus the
coupled L2 term ``½·wd·Σ‖θ‖²`` over every parameter, biases included (what torch's optimizers do
with ``weight_decay``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

Precision = jax.lax.Precision

#: The classifier's dense layers, for K-FAC.
CLASSIFIER_LAYERS = {"layer1": ("W1", "b1"), "layer2": ("W2", "b2")}


def init_classifier(key, d_in: int, dh: int, n_classes: int, *, dtype=jnp.float32) -> dict:
    """PyTorch's default ``nn.Linear`` initialisation: weights and biases ``U(−1/√fan_in,
    1/√fan_in)`` (``kaiming_uniform_`` with ``a = √5``).

    Args:
      key: PRNG key.
      d_in, dh, n_classes: input dimension, hidden width, number of classes.
      dtype: parameter dtype.

    Returns:
      The parameter dict.

    Example:
      >>> import jax
      >>> p = init_classifier(jax.random.key(0), 784, 256, 10)
      >>> p["W1"].shape, p["W2"].shape, bool(abs(p["W1"]).max() <= 1 / 28)
      ((256, 784), (10, 256), True)
    """
    for name, value in (("d_in", d_in), ("dh", dh), ("n_classes", n_classes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    keys = jax.random.split(key, 4)

    def uniform(k, shape, fan_in):
        bound = 1.0 / math.sqrt(fan_in)
        return jax.random.uniform(k, shape, dtype, -bound, bound)

    return {
        "W1": uniform(keys[0], (dh, d_in), d_in),
        "b1": uniform(keys[1], (dh,), d_in),
        "W2": uniform(keys[2], (n_classes, dh), dh),
        "b2": uniform(keys[3], (n_classes,), dh),
    }


def hidden_layer(params, x, precision=Precision.HIGHEST):
    """``relu(x W1ᵀ + b1)``, shape ``(N, dh)``.

    Args:
      params: the classifier's parameters (only ``W1`` and ``b1`` are used).
      x: ``(N, d)`` inputs.
      precision: matmul precision.

    Returns:
      The ``(N, dh)`` hidden activations.

    Example:
      >>> import jax.numpy as jnp
      >>> p = {"W1": jnp.array([[1.0, 0.0], [0.0, -1.0]]), "b1": jnp.array([0.0, 0.5])}
      >>> hidden_layer(p, jnp.array([[2.0, 1.0], [-1.0, -3.0]]))
      Array([[2. , 0. ],
             [0. , 3.5]], dtype=float32)
    """
    return jax.nn.relu(jnp.matmul(x, params["W1"].T, precision=precision) + params["b1"])


def logits(params, x, precision=Precision.HIGHEST):
    """``relu(x W1ᵀ + b1) W2ᵀ + b2``, shape ``(N, K)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> logits(init_classifier(jax.random.key(0), 4, 3, 2), jnp.ones((5, 4))).shape
      (5, 2)
    """
    return (
        jnp.matmul(hidden_layer(params, x, precision), params["W2"].T, precision=precision)
        + (params["b2"])
    )


def classification_loss(params, x, labels, *, weight_decay, precision=Precision.HIGHEST):
    """Mean cross-entropy plus ``½·weight_decay·Σ‖θ‖²`` (every parameter).

    Args:
      params: the classifier's parameters.
      x: ``(N, d)`` inputs.
      labels: ``(N,)`` integer labels.
      weight_decay: the coupled L2 coefficient (0 for none).
      precision: matmul precision.

    Returns:
      The scalar loss.

    Example:
      >>> import jax.numpy as jnp
      >>> p = {"W1": jnp.zeros((2, 3)), "b1": jnp.zeros(2), "W2": jnp.zeros((4, 2)),
      ...      "b2": jnp.zeros(4)}
      >>> round(float(classification_loss(p, jnp.ones((5, 3)), jnp.zeros(5, int),
      ...                                 weight_decay=0.0)), 4)  # log 4
      1.3863
    """
    ce = optax.softmax_cross_entropy_with_integer_labels(logits(params, x, precision), labels)
    l2 = sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(params))
    return jnp.mean(ce) + 0.5 * weight_decay * l2


def accuracy(params, x, labels, precision=Precision.HIGHEST):
    """Fraction of ``x`` whose arg-max logit is its label.

    Args:
      params: the classifier's parameters.
      x: ``(N, d)`` inputs.
      labels: ``(N,)`` integer labels.
      precision: matmul precision.

    Returns:
      The scalar accuracy in ``[0, 1]``.

    Example:
      >>> import jax.numpy as jnp
      >>> p = {"W1": jnp.eye(2), "b1": jnp.zeros(2), "W2": jnp.eye(2), "b2": jnp.zeros(2)}
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
      >>> float(accuracy(p, x, jnp.array([0, 1, 1, 1])))  # the third point is misclassified
      0.75
    """
    return jnp.mean(jnp.argmax(logits(params, x, precision), axis=-1) == labels)


def classifier_kfac_statistics(params, x, labels, *, precision=Precision.HIGHEST):
    """K-FAC's statistics for the classifier under the mean cross-entropy (empirical Fisher).

    The pre-activations get zero "taps" whose gradients are ``∂L/∂s``, scaled by ``N`` to be
    each example's own gradient (at the observed labels: ``softmax(s2) − onehot(y)`` at the
    output), as :func:`jaxprecond.optim.kfac.mlp_kfac_statistics` does for the regression MLP.

    Args:
      params: the classifier's parameters.
      x: ``(N, d)`` inputs.
      labels: ``(N,)`` integer labels.
      precision: matmul precision.

    Returns:
      ``(layer_inputs, output_grads)`` keyed by :data:`CLASSIFIER_LAYERS`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> p = init_classifier(jax.random.key(0), 3, 4, 2)
      >>> inputs, grads = classifier_kfac_statistics(p, jnp.ones((5, 3)), jnp.zeros(5, int))
      >>> grads["layer2"].shape, bool(jnp.allclose(grads["layer2"].sum(axis=1), 0, atol=1e-6))
      ((5, 2), True)
    """
    n = x.shape[0]

    def loss(taps):
        s1 = jnp.matmul(x, params["W1"].T, precision=precision) + params["b1"] + taps[0]
        h = jax.nn.relu(s1)
        s2 = jnp.matmul(h, params["W2"].T, precision=precision) + params["b2"] + taps[1]
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(s2, labels)), h

    dtype = params["W1"].dtype
    taps = (
        jnp.zeros((n, params["W1"].shape[0]), dtype),
        jnp.zeros((n, params["W2"].shape[0]), dtype),
    )
    (g1, g2), h = jax.grad(loss, has_aux=True)(taps)
    return {"layer1": x, "layer2": h}, {"layer1": n * g1, "layer2": n * g2}
