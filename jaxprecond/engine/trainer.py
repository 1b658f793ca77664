"""The one training loop: any optax transformation, any loss, any records, as one ``lax.scan``.

Metrics are recorded every ``log_every`` steps through nested scans: ``record(params, losses)``
sees the parameters after the block's last update and the block's losses (each computed before
its step's update). The loop imports no optimizer: an optimizer that needs more than the
gradient (a Hessian-vector product, a line search, the batch) gets it from the ``oracles``
function its own layer supplies (:func:`jaxprecond.optim.registry.oracles`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax


def train(
    params,
    optimizer: optax.GradientTransformation,
    loss: Callable,
    *,
    steps: int,
    log_every: int,
    record: Callable,
    batch: Callable,
    oracles: Callable | None = None,
    opt_state=None,
):
    """Train ``params`` for ``steps`` steps, recording every ``log_every``.

    Args:
      params: the initial parameters.
      optimizer: an optax transformation (its updates are added to the parameters).
      loss: ``loss(params, batch) -> scalar``.
      steps: optimisation steps (a multiple of ``log_every``).
      log_every: record after steps ``log_every − 1, 2·log_every − 1, …``.
      record: ``record(params, losses) -> pytree`` of one block's metrics.
      batch: ``batch(step) -> (inputs, targets)``, the batch of a step (``step`` is the
        scan's own index, never a counter in vmapped state).
      oracles: ``oracles(objective, params, value=, grad=, step=, inputs=, targets=) -> dict``
        of extra arguments for ``optimizer.update`` (``None``: none).
      opt_state: the optimizer's state to start from (default: ``optimizer.init(params)``).

    Returns:
      ``(final_params, records)``, every leaf of ``records`` with a leading axis of
      ``steps // log_every``.

    Example:
      Gradient descent on ``(w − 3)²``, recording ``w`` and the last loss of each block:

      >>> final, records = train(
      ...     jnp.zeros(()), optax.sgd(0.25), lambda w, batch: (w - batch[1]) ** 2,
      ...     steps=4, log_every=2, batch=lambda t: (None, 3.0),
      ...     record=lambda w, losses: {"w": w, "loss": losses[-1]})
      >>> records["w"].tolist(), records["loss"].tolist()
      ([2.25, 2.8125], [2.25, 0.140625])
    """
    if steps % log_every:
        raise ValueError(f"steps={steps} must be a multiple of log_every={log_every}")
    optimizer = optax.with_extra_args_support(optimizer)

    def step(carry, t):
        params, opt_state = carry
        inputs, targets = batch(t)
        value, grads = jax.value_and_grad(loss)(params, (inputs, targets))
        extra = {}
        if oracles is not None:
            extra = oracles(
                lambda p: loss(p, (inputs, targets)),
                params,
                value=value,
                grad=grads,
                step=t,
                inputs=inputs,
                targets=targets,
            )
        updates, opt_state = optimizer.update(grads, opt_state, params, **extra)
        return (optax.apply_updates(params, updates), opt_state), value

    def block(carry, first_step):
        carry, losses = jax.lax.scan(step, carry, first_step + jnp.arange(log_every))
        return carry, record(carry[0], losses)

    if opt_state is None:
        opt_state = optimizer.init(params)
    starts = jnp.arange(0, steps, log_every)
    (params, _), records = jax.lax.scan(block, (params, opt_state), starts)
    return params, records
