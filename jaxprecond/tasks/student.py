"""The student: a two-layer ReLU network as a plain pytree, its loss and its features.

Parameters are ``{"W1": (dh, dx), "b1": (dh,), "W2": (dh,), "b2": ()}``: the first-layer kernel is
stored ``(dh, dx)`` as in torch (layout ``"out_in"``), so neuron ``j`` is row ``W1[j]``. Keeping
torch's layout keeps XLA's reductions in the reference's order: at the edge of stability the
float32 trajectories then follow the reference's (a ``(dx, dh)`` kernel drifts away by 3e-4 within
300 steps on the Case Low, p = 1 fixture, through rounding alone).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxprecond.linalg import Eigh, eigh_psd

Precision = jax.lax.Precision


def _check_sizes(dx, dh):
    for name, value in (("dx", dx), ("dh", dh)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def init_mlp(key, dx: int, dh: int, *, scale: float = 1e-3, dtype=jnp.float32) -> dict:
    """Kaiming-uniform weights times ``scale`` and zero biases, as the reference code.

    Each weight is ``U(−b, b)·scale`` with ``b = √(6/fan_in)`` (torch's ``kaiming_uniform_``
    with ``a = 0``).

    Args:
      key: a JAX PRNG key.
      dx: input dimension.
      dh: hidden width.
      scale: multiplier on the weights (1e-3 in the paper: a small, feature-learning init).
      dtype: floating dtype.

    Returns:
      The parameter dict.

    Example:
      >>> import jax
      >>> {k: v.shape for k, v in init_mlp(jax.random.key(0), 10, 500).items()}
      {'W1': (500, 10), 'b1': (500,), 'W2': (500,), 'b2': ()}
    """
    _check_sizes(dx, dh)
    key1, key2 = jax.random.split(key)
    bound1, bound2 = np.sqrt(6.0 / dx), np.sqrt(6.0 / dh)
    return {
        "W1": scale * jax.random.uniform(key1, (dh, dx), dtype, -bound1, bound1),
        "b1": jnp.zeros((dh,), dtype),
        "W2": scale * jax.random.uniform(key2, (dh,), dtype, -bound2, bound2),
        "b2": jnp.zeros((), dtype),
    }


def init_mlp_gaussian(key, preconditioner, dh: int, *, sigma: float = 1e-3) -> dict:
    """The theory's initialisation: neurons ``w_j ~ N(0, σ² P)``, head ``N(0, σ²)``, zero biases.

    The neurons are drawn in ``P``'s eigenbasis, ``w_j = σ V diag(√μ) z_j`` with
    ``z_j ~ N(0, I)``, so that two problems whose eigenbases are permutations of each other
    (the p ↔ −2−p duality of the two cases) can share the draws ``z``.

    Args:
      key: a JAX PRNG key.
      preconditioner: ``(dx, dx)`` PSD matrix ``P``, or its :class:`~jaxprecond.linalg.Eigh`
        (eigenvalues ``μ``, eigenvectors ``V``).
      dh: hidden width.
      sigma: standard deviation scale ``σ``.

    Returns:
      The parameter dict.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> init_mlp_gaussian(jax.random.key(0), jnp.eye(3), 4)["W1"].shape
      (4, 3)
    """
    if not isinstance(preconditioner, Eigh):
        matrix = jnp.asarray(preconditioner)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"preconditioner must be a square matrix, got shape {matrix.shape}")
        preconditioner = eigh_psd(matrix)
    eigenvalues, eigenvectors = preconditioner
    dtype = eigenvectors.dtype
    dx = eigenvectors.shape[0]
    _check_sizes(dx, dh)
    key1, key2 = jax.random.split(key)
    z = jax.random.normal(key1, (dh, dx), dtype)
    root = jnp.sqrt(jnp.maximum(eigenvalues, 0.0))
    return {
        "W1": sigma * jnp.matmul(z * root, eigenvectors.T, precision=Precision.HIGHEST),
        "b1": jnp.zeros((dh,), dtype),
        "W2": sigma * jax.random.normal(key2, (dh,), dtype),
        "b2": jnp.zeros((), dtype),
    }


def hidden(params, x, precision=jax.lax.Precision.HIGHEST):
    """First-layer activations ``relu(x W1ᵀ + b1)``, shape ``(N, dh)``.

    Args:
      params: the parameter dict (only ``W1`` and ``b1`` are used).
      x: ``(N, dx)`` inputs.
      precision: matmul precision.

    Returns:
      The ``(N, dh)`` activations.

    Example:
      >>> import jax.numpy as jnp
      >>> params = {"W1": jnp.array([[1.0, 1.0], [1.0, -1.0]]), "b1": jnp.array([0.0, -1.0])}
      >>> hidden(params, jnp.array([[1.0, 2.0], [3.0, 1.0]]))
      Array([[3., 0.],
             [4., 1.]], dtype=float32)
    """
    return jax.nn.relu(jnp.matmul(x, params["W1"].T, precision=precision) + params["b1"])


def mlp_apply(params, x, precision=jax.lax.Precision.HIGHEST):
    """The network's output ``relu(x W1ᵀ + b1) · W2 + b2``.

    Args:
      params: the parameter dict.
      x: ``(N, dx)`` inputs.
      precision: matmul precision (``HIGHEST`` keeps float32 exact on GPUs and TPUs).

    Returns:
      ``(N,)`` outputs.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> mlp_apply(init_mlp(jax.random.key(0), 2, 3), jnp.ones((4, 2))).shape
      (4,)
    """
    return (
        jnp.matmul(hidden(params, x, precision), params["W2"], precision=precision) + params["b2"]
    )


def weight_norm_sq(params):
    """``‖W1‖² + ‖W2‖²`` (biases excluded), the weight-decay term of the reference.

    Args:
      params: the parameter dict.

    Returns:
      The scalar squared norm.

    Example:
      >>> import jax.numpy as jnp
      >>> params = {"W1": jnp.ones((2, 3)), "b1": jnp.ones(2), "W2": jnp.array([3.0, 4.0]),
      ...           "b2": jnp.array(5.0)}
      >>> float(weight_norm_sq(params))  # 6 + 25; the biases do not count
      31.0
    """
    return jnp.sum(params["W1"] ** 2) + jnp.sum(params["W2"] ** 2)


def regression_loss(params, x, y, *, weight_decay, n_train, precision=Precision.HIGHEST):
    """``mean((f(x) − y)²) + 0.5·wd·(‖W1‖² + ‖W2‖²)/n_train``.

    Args:
      params: the MLP parameters.
      x: ``(B, dx)`` inputs.
      y: ``(B,)`` targets.
      weight_decay: ``wd``.
      n_train: the number of training points ``N`` normalising the weight-decay term.
      precision: matmul precision.

    Returns:
      The scalar loss.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxprecond.tasks.student import init_mlp
      >>> params = init_mlp(jax.random.key(0), 2, 3)
      >>> x, y = jnp.zeros((4, 2)), jnp.ones(4)
      >>> float(regression_loss(params, x, y, weight_decay=0.0, n_train=4))
      1.0
    """
    residual = mlp_apply(params, x, precision) - y
    penalty = 0.5 * weight_decay * weight_norm_sq(params) / n_train
    return jnp.mean(residual**2) + penalty


def blocked_mse(params, x, y, *, block_size: int, precision=Precision.HIGHEST):
    """Plain MSE on ``(x, y)`` evaluated ``block_size`` points at a time.

    Bounds memory at ``block_size × dh`` activations per model, whatever the test set's size.

    Args:
      params: the MLP parameters.
      x: ``(M, dx)`` inputs.
      y: ``(M,)`` targets.
      block_size: points per block (the last block is padded and masked).
      precision: matmul precision.

    Returns:
      The scalar mean squared error.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxprecond.tasks.student import init_mlp
      >>> params = init_mlp(jax.random.key(0), 2, 3)
      >>> float(blocked_mse(params, jnp.zeros((5, 2)), jnp.ones(5), block_size=2))
      1.0
    """
    m, dx = x.shape
    n_blocks = -(-m // block_size)
    pad = n_blocks * block_size - m
    xb = jnp.pad(x, ((0, pad), (0, 0))).reshape(n_blocks, block_size, dx)
    yb = jnp.pad(y, (0, pad)).reshape(n_blocks, block_size)
    mask = (jnp.arange(n_blocks * block_size) < m).reshape(n_blocks, block_size)

    def block_sum(block):
        xs, ys, keep = block
        residual = jnp.where(keep, mlp_apply(params, xs, precision) - ys, 0.0)
        return jnp.sum(residual**2)

    total = jnp.sum(jax.lax.map(block_sum, (xb, yb, mask)))
    return total / m


def first_layer_features(kernel, eigenvectors, direction):
    """Energy fractions of the ``(dh, dx)`` first-layer kernel along Σ's eigenvectors and ``β̂``.

    Args:
      kernel: ``(dh, dx)`` first-layer weights (one neuron per row).
      eigenvectors: ``(dx, dx)`` eigenvectors of Σ (columns).
      direction: ``(dx,)`` teacher direction (any norm).

    Returns:
      ``(alignment, energy)``: ``‖W β̂‖²/‖W‖²`` and the ``(dx,)`` vector ``‖W q_r‖²/‖W‖²``.

    Example:
      >>> import jax.numpy as jnp
      >>> a, e = first_layer_features(jnp.array([[3.0, 4.0]]), jnp.eye(2), jnp.array([1.0, 0.0]))
      >>> round(float(a), 4), [round(float(v), 4) for v in e]
      (0.36, [0.36, 0.64])
    """
    total = jnp.sum(kernel**2)
    unit = direction / jnp.linalg.norm(direction)
    alignment = jnp.sum(jnp.matmul(kernel, unit, precision=Precision.HIGHEST) ** 2) / total
    projected = jnp.matmul(kernel, eigenvectors, precision=Precision.HIGHEST)
    energy = jnp.sum(projected**2, axis=0) / total
    return alignment, energy


def whitened_features(kernel, eigenvalues, eigenvectors, direction):
    """The first layer's features in whitened coordinates (``u = Σ^{-1/2}x``,
    ``ṽ_j = Σ^{1/2}w_j``), where the preconditioned dynamics live.

    The whitened alignment is ``a_w = ‖W Σ^{1/2} û‖² / ‖W Σ^{1/2}‖²_F`` with
    ``û ∝ Σ^{1/2}β*`` (the teacher's direction in whitened coordinates); the whitened energy
    along eigenvector ``q_r`` is ``λ_r ‖W q_r‖² / Σ_s λ_s ‖W q_s‖²``. Unlike the input-space
    features of :func:`first_layer_features`, these are the same in the two cases of the
    p ↔ −2−p duality, so they compare Case High with Case Low without the eigenvalue ratio.

    Args:
      kernel: ``(dh, dx)`` first-layer weights (one neuron per row).
      eigenvalues, eigenvectors: ``(dx,)`` and ``(dx, dx)`` of Σ (eigenvectors as columns).
      direction: ``(dx,)`` teacher direction ``β*`` (any norm).

    Returns:
      ``(alignment, energy)``: ``a_w`` and the ``(dx,)`` whitened energy fractions (sum to one).

    Example:
      >>> import jax.numpy as jnp
      >>> w = jnp.array([[1.0, 1.0]])  # ṽ = Σ^{1/2} w = (2, 1)
      >>> a, e = whitened_features(w, jnp.array([4.0, 1.0]), jnp.eye(2), jnp.array([1.0, 0.0]))
      >>> round(float(a), 4), [round(float(v), 4) for v in e]
      (0.8, [0.8, 0.2])
    """
    projected = jnp.matmul(kernel, eigenvectors, precision=Precision.HIGHEST)  # W q_r
    per_direction = eigenvalues * jnp.sum(projected**2, axis=0)
    total = jnp.sum(per_direction)
    coefficients = jnp.matmul(direction, eigenvectors, precision=Precision.HIGHEST)  # q_rᵀβ
    unit = eigenvalues * coefficients / jnp.sqrt(jnp.sum(eigenvalues * coefficients**2))
    along = jnp.matmul(projected, unit, precision=Precision.HIGHEST)
    return jnp.sum(along**2) / total, per_direction / total


def from_torch(W1, b1, W2, b2) -> dict:
    """Convert torch ``nn.Linear`` weights (``W2`` of shape ``(1, dh)``) to this module's dict.

    Args:
      W1, b1: the first layer's ``(dh, dx)`` weight and ``(dh,)`` bias.
      W2, b2: the read-out's ``(1, dh)`` weight and ``(1,)`` bias.

    Returns:
      The parameter dict (``W2`` flattened to ``(dh,)``, ``b2`` to a scalar); arrays or
      tensors converted with ``jnp.asarray`` (pass ``tensor.detach().numpy()`` for torch).

    Example:
      >>> import numpy as np
      >>> rng = np.random.default_rng(0)
      >>> W1, b1 = rng.normal(size=(3, 2)), rng.normal(size=3)
      >>> W2, b2 = rng.normal(size=(1, 3)), rng.normal(size=1)
      >>> params = from_torch(W1, b1, W2, b2)
      >>> {k: v.shape for k, v in params.items()}
      {'W1': (3, 2), 'b1': (3,), 'W2': (3,), 'b2': ()}
      >>> x = rng.normal(size=(4, 2))
      >>> torch_out = (np.maximum(x @ W1.T + b1, 0) @ W2.T + b2)[:, 0]  # nn.Sequential's
      >>> bool(np.allclose(mlp_apply(params, x), torch_out, atol=1e-5))
      True
    """
    return {
        "W1": jnp.asarray(W1),
        "b1": jnp.asarray(b1),
        "W2": jnp.asarray(W2).reshape(-1),
        "b2": jnp.asarray(b2).reshape(()),
    }
