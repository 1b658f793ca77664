"""Σ^p with Σ estimated from data: from the full training inputs, or online from minibatches.

The exact preconditioner of the paper uses the population covariance. In practice Σ is
estimated: once from the training inputs (:func:`empirical_covariance`, then
:func:`jaxprecond.optim.covariance_power.scale_by_covariance_power`), or online as an
exponential moving average of minibatch second moments, as K-FAC's input factor
(:func:`scale_by_online_covariance_power`).
Second moments are uncentred by default (K-FAC's convention, equal to the covariance for the
zero-mean inputs of the teacher–student tasks); ``centered=True`` subtracts the running mean.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxprecond.linalg import eigh_psd
from jaxprecond.optim.covariance_power import (
    LAYOUTS,
    NORMALIZATIONS,
    apply_neuronwise,
    preconditioner,
)


def empirical_covariance(x, *, centered: bool = False):
    """``xᵀx / N`` (uncentred second moment) or the centred covariance of the rows of ``x``.

    Args:
      x: ``(N, dx)`` inputs, one per row.
      centered: subtract the mean first.

    Returns:
      The ``(dx, dx)`` matrix.

    Example:
      >>> import jax.numpy as jnp
      >>> empirical_covariance(jnp.array([[1.0, 0.0], [-1.0, 2.0]]))
      Array([[ 1., -1.],
             [-1.,  2.]], dtype=float32)
    """
    x = jnp.asarray(x)
    if centered:
        x = x - jnp.mean(x, axis=0)
    return jnp.matmul(x.T, x, precision=jax.lax.Precision.HIGHEST) / x.shape[0]


class ScaleByOnlineCovariancePowerState(NamedTuple):
    """State of :func:`scale_by_online_covariance_power`.

    Attributes:
      count: updates seen.
      second_moment: EMA of ``xᵀx/B`` over minibatches.
      mean: EMA of the minibatch means (used when centred).
      preconditioner: the cached ``P = (Σ̂ + δI)^p``, refreshed every ``refresh_every`` steps.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = scale_by_online_covariance_power(2, -1.0, layout="out_in")
      >>> state = tx.init(jnp.zeros((3, 2)))
      >>> state.count, state.second_moment.shape, state.mean.shape
      (Array(0, dtype=int32), (2, 2), (2,))
      >>> state.preconditioner  # the identity until the first update
      Array([[1., 0.],
             [0., 1.]], dtype=float32)
      >>> x = jnp.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # Σ̂ = diag(2, 0.5)
      >>> _, state = tx.update(jnp.ones((3, 2)), state, inputs=x)
      >>> int(state.count), jnp.diag(state.preconditioner).round(4)  # P = Σ̂⁻¹
      (1, Array([0.5, 2. ], dtype=float32))
    """

    count: jax.Array
    second_moment: jax.Array
    mean: jax.Array
    preconditioner: jax.Array


def scale_by_online_covariance_power(
    dx: int,
    power=1.0,
    *,
    layout: str,
    decay: float = 0.99,
    damping: float = 0.0,
    centered: bool = False,
    refresh_every: int = 1,
    normalize: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """``g_j ← P g_j`` with ``P = (Σ̂ + δI)^p``, ``Σ̂`` an EMA of minibatch input moments.

    ``update`` takes the minibatch's first-layer inputs as the extra argument ``inputs``
    (``(B, dx)``). The first update sets ``Σ̂`` to that batch's moment; later ones blend with
    weight ``1 − decay``. ``P`` is recomputed (an eigendecomposition) when
    ``step % refresh_every == 0``, with ``step`` the extra argument of the same name — pass the
    scan's own, unbatched step index: a counter in vmapped state is batched and ``lax.cond``
    would then run both branches every step — or else the state's count.

    Args:
      dx: input dimension.
      power: the exponent ``p``.
      layout: ``"in_out"`` ``(dx, dh)`` or ``"out_in"`` ``(dh, dx)`` kernels.
      decay: EMA decay of the moments, in ``[0, 1)``.
      damping: ``δ ≥ 0``.
      centered: subtract the running mean (covariance) instead of the uncentred moment.
      refresh_every: steps between recomputations of ``P``.
      normalize: ``None``, ``"max"`` or ``"trace"`` (see
        :func:`jaxprecond.optim.covariance_power.preconditioner`).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = scale_by_online_covariance_power(2, 1.0, layout="out_in")
      >>> g = jnp.ones((3, 2))
      >>> x = jnp.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # Σ̂ = diag(2, 0.5)
      >>> tx.update(g, tx.init(g), inputs=x)[0][0]
      Array([2. , 0.5], dtype=float32)
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if not isinstance(dx, int) or dx < 1:
        raise ValueError(f"dx must be a positive integer, got {dx!r}")
    if not isinstance(decay, jax.core.Tracer) and not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay!r}")
    if not isinstance(damping, jax.core.Tracer) and damping < 0:
        raise ValueError(f"damping must be non-negative, got {damping!r}")
    if not isinstance(refresh_every, int) or refresh_every < 1:
        raise ValueError(f"refresh_every must be a positive integer, got {refresh_every!r}")

    def init_fn(params):
        del params
        return ScaleByOnlineCovariancePowerState(
            count=jnp.zeros([], jnp.int32),
            second_moment=jnp.zeros((dx, dx), jnp.float32),
            mean=jnp.zeros((dx,), jnp.float32),
            preconditioner=jnp.eye(dx, dtype=jnp.float32),
        )

    def update_fn(updates, state, params=None, *, inputs=None, step=None, **extra_args):
        del params, extra_args
        if inputs is None:
            raise ValueError("online covariance power needs the first-layer inputs (inputs=...)")
        x = jnp.asarray(inputs, jnp.float32)
        weight = jnp.where(state.count == 0, 1.0, 1.0 - decay)
        second = state.second_moment + weight * (empirical_covariance(x) - state.second_moment)
        mean = state.mean + weight * (jnp.mean(x, axis=0) - state.mean)
        moment = second - jnp.outer(mean, mean) if centered else second

        def refresh():
            p = preconditioner(eigh_psd(moment, damping=damping), power, normalize=normalize)
            return jnp.eye(dx, dtype=jnp.float32) if p is None else p.astype(jnp.float32)

        index = state.count if step is None else step
        if refresh_every == 1:
            matrix = refresh()
        else:
            matrix = jax.lax.cond(index % refresh_every == 0, refresh, lambda: state.preconditioner)
        updates = jax.tree.map(lambda g: apply_neuronwise(matrix, g, layout), updates)
        return updates, ScaleByOnlineCovariancePowerState(state.count + 1, second, mean, matrix)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
