"""Training a student with any optax transformation, as one ``lax.scan``.

The loss is the reference's: ``mean((f(X) − y)²) + 0.5·wd·(‖W1‖² + ‖W2‖²)/N`` (biases
excluded). Metrics are recorded every ``log_every`` steps through nested scans: the train loss
at the last step of a block (before its update, as the reference logs it), the test MSE after
that update, and the features of the first layer.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxprecond.model import mlp_apply, weight_norm_sq
from jaxprecond.registry import oracles

Precision = jax.lax.Precision


class Trajectory(NamedTuple):
    """Metrics recorded every ``log_every`` steps; each field has a leading record axis ``R``.

    Attributes:
      train_loss: ``(R,)`` training loss (with the weight-decay term) before the recorded step.
      test_mse: ``(R,)`` plain test MSE after the recorded step.
      alignment: ``(R,)`` fraction of the first layer's energy along the teacher direction,
        ``‖W1 β̂‖² / ‖W1‖²``.
      energy: ``(R, dx)`` fraction of the first layer's energy along each eigenvector ``q_r``
        of Σ, ``‖W1 q_r‖² / ‖W1‖²`` (sums to one).

    Example:
      The trajectory of 4 steps recorded every 2, for ``dx = 3``, by shape only (no compiling):

      >>> import jax, optax
      >>> from jaxprecond.data import case_spectrum, sample_task
      >>> from jaxprecond.model import init_mlp
      >>> def trajectory(key):
      ...     spec = case_spectrum("high", dx=3)
      ...     task = sample_task(key, spec, 1.0, n=16, n_train=8)
      ...     return train(init_mlp(key, 3, 4), optax.sgd(0.1), task, steps=4, log_every=2,
      ...                  weight_decay=0.0, eigenvectors=spec.eigenvectors)[1]
      >>> traj = jax.eval_shape(trajectory, jax.random.key(0))
      >>> {name: field.shape for name, field in traj._asdict().items()}
      {'train_loss': (2,), 'test_mse': (2,), 'alignment': (2,), 'energy': (2, 3)}
    """

    train_loss: jax.Array
    test_mse: jax.Array
    alignment: jax.Array
    energy: jax.Array


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
      >>> from jaxprecond.model import init_mlp
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
      >>> from jaxprecond.model import init_mlp
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


def train(
    params,
    optimizer: optax.GradientTransformation,
    task,
    *,
    steps: int,
    log_every: int,
    weight_decay: float,
    eigenvectors,
    batch_size: int | None = None,
    key=None,
    eval_block_size: int = 1000,
    precision=Precision.HIGHEST,
    opt_state=None,
):
    """Train ``params`` on ``task`` for ``steps`` steps, recording metrics every ``log_every``.

    Full-batch gradient descent by default; with ``batch_size`` each step draws a minibatch
    (with replacement) from ``key`` folded with the step index. The optimizer's ``update`` also
    receives the oracles of :func:`jaxprecond.registry.oracles` as extra arguments (the step's
    objective ``obj_fn``, the scan's step index ``step``, the batch ``inputs``, ...), which
    transforms that do not use them ignore.

    Args:
      params: initial MLP parameters.
      optimizer: any optax transformation (updates are added to the parameters).
      task: a :class:`~jaxprecond.data.Task`.
      steps: number of optimisation steps (a multiple of ``log_every``).
      log_every: record metrics at steps ``log_every − 1, 2·log_every − 1, …``.
      weight_decay: ``wd`` of the loss.
      eigenvectors: ``(dx, dx)`` eigenvectors of Σ, for the energy metric.
      batch_size: minibatch size, or ``None`` for full batch.
      key: PRNG key for minibatches (required with ``batch_size``).
      eval_block_size: test points evaluated at once.
      precision: matmul precision.
      opt_state: the optimizer's state to start from (default: ``optimizer.init(params)``).

    Returns:
      ``(final_params, trajectory)`` with a :class:`Trajectory` of ``steps // log_every`` records.

    Example:
      >>> import jax, optax
      >>> from jaxprecond.data import case_spectrum, sample_task
      >>> from jaxprecond.model import init_mlp
      >>> spec = case_spectrum("high")
      >>> task = sample_task(jax.random.key(0), spec, 1.0, n=300, n_train=100)
      >>> _, traj = train(init_mlp(jax.random.key(1), 10, 20), optax.sgd(0.01), task,
      ...                 steps=20, log_every=10, weight_decay=1e-6,
      ...                 eigenvectors=spec.eigenvectors)
      >>> traj.test_mse.shape
      (2,)
    """
    if steps % log_every:
        raise ValueError(f"steps={steps} must be a multiple of log_every={log_every}")
    n_train = task.x_train.shape[0]
    if batch_size is not None and key is None:
        raise ValueError("batch_size needs a key for drawing minibatches")

    def loss_fn(p, x, y):
        return regression_loss(
            p, x, y, weight_decay=weight_decay, n_train=n_train, precision=precision
        )

    optimizer = optax.with_extra_args_support(optimizer)

    def step(carry, t):
        params, opt_state = carry
        x, y = task.x_train, task.y_train
        if batch_size is not None:
            index = jax.random.randint(jax.random.fold_in(key, t), (batch_size,), 0, n_train)
            x, y = x[index], y[index]
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        # Optimizers that need oracles (Hessian-vector products, line searches, SAM's
        # adversarial gradient, refresh periods) get them; the others ignore them.
        extra = oracles(
            lambda p: loss_fn(p, x, y), params, value=loss, grad=grads, step=t, inputs=x, targets=y
        )
        updates, opt_state = optimizer.update(grads, opt_state, params, **extra)
        return (optax.apply_updates(params, updates), opt_state), loss

    def block(carry, first_step):
        carry, losses = jax.lax.scan(step, carry, first_step + jnp.arange(log_every))
        params = carry[0]
        test_mse = blocked_mse(
            params, task.x_test, task.y_test, block_size=eval_block_size, precision=precision
        )
        alignment, energy = first_layer_features(params["W1"], eigenvectors, task.beta)
        return carry, Trajectory(losses[-1], test_mse, alignment, energy)

    if opt_state is None:
        opt_state = optimizer.init(params)
    starts = jnp.arange(0, steps, log_every)
    (params, _), trajectory = jax.lax.scan(block, (params, opt_state), starts)
    return params, trajectory
