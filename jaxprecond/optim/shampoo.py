"""Shampoo (Gupta, Koren & Singer, 2018): Kronecker-factored preconditioning of matrix parameters.

For a matrix parameter with gradient ``G_t`` (``m × n``) Shampoo keeps a left and a right
statistic and preconditions the gradient from both sides (Algorithm 1 of the paper):

    L_t = L_{t−1} + G_t G_tᵀ,    R_t = R_{t−1} + G_tᵀ G_t,    L_0 = R_0 = εI,
    update_t = L_t^(−1/4) G_t R_t^(−1/4).

The exponent ``−1/4`` is the paper's for order-2 tensors (``−1/(2k)`` for order ``k``). With
``decay = β`` the sums become exponential moving averages, ``L_t = β L_{t−1} + (1 − β) G_t G_tᵀ``.
The damping ``εI`` is added when the roots are taken, ``(εI + L_t)^(−1/4)``: for the sum this is
exactly the paper's ``L_0 = εI``, and for the moving average it keeps the damping from decaying
away as ``β^t ε``.

Vectors and scalars (biases) get the diagonal form, i.e. AdaGrad with the same exponent per
factor: ``g ⊙ (ε + Σ g²)^(2·exponent)``, which is ``g / √(ε + Σ g²)`` for the default ``−1/4``.
(A vector is a Kronecker product of a ``d × d`` factor with a ``1 × 1`` one, so both exponents
land on the one diagonal factor; the full ``d × d`` left factor alone would be rank one.)

The matrix roots come from an eigendecomposition with a relative eigenvalue floor
(:mod:`jaxprecond.linalg`) and are cached in the state: they are recomputed when
``step % refresh_every == 0``, as in the paper's practical version, while the statistics are
accumulated every step. Statistics and roots are kept in float32 at least; updates keep the
dtype of the gradients.

Grafting (Agarwal et al., 2020; used by the paper's successors) keeps Shampoo's direction but takes
each parameter's step length from another optimizer: ``d · ‖d_graft‖ / ‖d‖``.

Parameters of more than two dimensions are not supported (the paper's general tensor form is not
implemented): reshape them or route Shampoo to the matrices with ``optax.partition``.

References:
  Gupta, Koren, Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization", ICML 2018,
  arXiv 1802.09568.
  Agarwal, Anil, Hazan, Koren, Zhang, "Disentangling Adaptive Gradient Methods from Learning
  Rates", arXiv 2002.11803 (grafting).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxprecond.linalg import eigh_psd, power_from_eigh

GRAFTS = (None, "sgd", "adam")
HIGHEST = jax.lax.Precision.HIGHEST


class KroneckerFactors(NamedTuple):
    """The two factors of one matrix parameter's preconditioner.

    Attributes:
      left: ``(m, m)`` matrix acting on the rows' side (``L`` or its root).
      right: ``(n, n)`` matrix acting on the columns' side (``R`` or its root).

    Example:
      >>> import jax.numpy as jnp
      >>> state = scale_by_shampoo(eps=1e-4).init(jnp.zeros((2, 3)))
      >>> stats, roots = state.statistics, state.roots  # Σ G Gᵀ, Σ Gᵀ G and their roots
      >>> isinstance(stats, KroneckerFactors), stats.left.shape, stats.right.shape
      (True, (2, 2), (3, 3))
      >>> bool(jnp.allclose(roots.left, 10.0 * jnp.eye(2)))  # ε^(−1/4) I = (1e-4)^(−1/4) I
      True
    """

    left: jax.Array
    right: jax.Array


class ScaleByShampooState(NamedTuple):
    """State of :func:`scale_by_shampoo`.

    Attributes:
      count: updates taken (int32).
      statistics: per parameter, :class:`KroneckerFactors` ``(Σ G Gᵀ, Σ Gᵀ G)`` for a matrix,
        or the array ``Σ g²`` for a vector or scalar (without the damping ``ε``).
      roots: per parameter, the cached :class:`KroneckerFactors`
        ``((εI + L)^exponent, (εI + R)^exponent)`` for a matrix, ``None`` for the others.
      graft_state: the grafted optimizer's state (``optax.EmptyState()`` without grafting).

    Example:
      >>> import jax.numpy as jnp
      >>> state = scale_by_shampoo().init({"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)})
      >>> state._fields
      ('count', 'statistics', 'roots', 'graft_state')
      >>> int(state.count), state.statistics["w"].right.shape, state.statistics["b"].shape
      (0, (3, 3), (3,))
      >>> state.roots["b"] is None, state.graft_state
      (True, EmptyState())
    """

    count: jax.Array
    statistics: Any
    roots: Any
    graft_state: Any


def _is_traced(value) -> bool:
    return isinstance(value, jax.core.Tracer)


def _validate(exponent, eps, decay, refresh_every, graft) -> None:
    if not _is_traced(exponent) and not exponent < 0:
        raise ValueError(f"exponent must be negative, got {exponent!r}")
    if not _is_traced(eps) and not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    if decay is not None and not _is_traced(decay) and not 0 <= decay < 1:
        raise ValueError(f"decay must be None or in [0, 1), got {decay!r}")
    if isinstance(refresh_every, bool) or not isinstance(refresh_every, int) or refresh_every < 1:
        raise ValueError(f"refresh_every must be a positive integer, got {refresh_every!r}")
    if not isinstance(graft, optax.GradientTransformation) and graft not in GRAFTS:
        raise ValueError(f"graft must be one of {GRAFTS} or an optax transformation, got {graft!r}")


def _graft_transform(graft) -> optax.GradientTransformation | None:
    if graft == "sgd":
        return optax.identity()
    if graft == "adam":
        return optax.scale_by_adam()
    return graft  # None or a user-given transformation


def _statistics_dtype(x):
    return jnp.promote_types(x.dtype, jnp.float32)


def _check_rank(p) -> None:
    if p.ndim > 2:
        raise ValueError(
            f"shampoo handles parameters of at most 2 dimensions, got shape {p.shape}; "
            "reshape it or route shampoo elsewhere with optax.partition"
        )


def _init_statistics(p):
    _check_rank(p)
    dtype = _statistics_dtype(p)
    if p.ndim < 2:
        return jnp.zeros(p.shape, dtype)
    m, n = p.shape
    return KroneckerFactors(jnp.zeros((m, m), dtype), jnp.zeros((n, n), dtype))


def _init_roots(p, exponent, eps):
    """The roots of the initial statistics ``εI``: ``ε^exponent · I``."""
    if p.ndim < 2:
        return None
    dtype = _statistics_dtype(p)
    m, n = p.shape
    scale = jnp.power(jnp.asarray(eps, dtype), exponent).astype(dtype)
    return KroneckerFactors(scale * jnp.eye(m, dtype=dtype), scale * jnp.eye(n, dtype=dtype))


def _accumulate(old, new, decay):
    """``old + new`` (the paper's sum) or ``decay·old + (1 − decay)·new``."""
    if decay is None:
        return old + new
    return decay * old + (1 - decay) * new


def _update_statistics(g, stats, decay):
    g = g.astype(_statistics_dtype(g))
    if g.ndim < 2:
        return _accumulate(stats, g * g, decay)
    gram_left = jnp.matmul(g, g.T, precision=HIGHEST)  # G Gᵀ
    gram_right = jnp.matmul(g.T, g, precision=HIGHEST)  # Gᵀ G
    return KroneckerFactors(
        _accumulate(stats.left, gram_left, decay), _accumulate(stats.right, gram_right, decay)
    )


def _matrix_root(statistic, exponent, eps):
    """``(εI + statistic)^exponent`` through an eigendecomposition (with an eigenvalue floor)."""
    return power_from_eigh(eigh_psd(statistic, damping=eps), exponent).astype(statistic.dtype)


def _roots(stats, exponent, eps):
    if not isinstance(stats, KroneckerFactors):
        return None
    return KroneckerFactors(
        _matrix_root(stats.left, exponent, eps), _matrix_root(stats.right, exponent, eps)
    )


def _precondition(g, stats, roots, exponent, eps):
    """Shampoo's direction in the statistics' dtype: ``L^e G R^e`` or ``g ⊙ (ε + v)^(2e)``."""
    g = g.astype(_statistics_dtype(g))
    if roots is None:
        return g * jnp.power(stats + eps, 2 * exponent)
    left = jnp.matmul(roots.left, g, precision=HIGHEST)
    return jnp.matmul(left, roots.right, precision=HIGHEST)


def _graft(direction, reference):
    """``direction · ‖reference‖ / ‖direction‖`` (zero where ``direction`` is zero)."""
    norm = jnp.linalg.norm(direction)
    reference_norm = jnp.linalg.norm(reference.astype(direction.dtype))
    scale = jnp.where(norm > 0, reference_norm / jnp.where(norm > 0, norm, 1), 0)
    return direction * scale


def scale_by_shampoo(
    *,
    exponent: float = -0.25,
    eps: float = 1e-6,
    decay: float | None = None,
    refresh_every: int = 1,
    graft: str | optax.GradientTransformation | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Shampoo's direction ``(εI + L)^e G (εI + R)^e`` (without the learning rate).

    Matrices get the Kronecker-factored preconditioner, vectors and scalars the diagonal one
    (see the module docstring). The roots are recomputed when ``step % refresh_every == 0``,
    where ``step`` is an extra argument of ``update`` (pass the scan's own, unbatched step
    index, as :func:`~jaxprecond.train.train` does: a counter kept in vmapped state is batched
    and makes ``lax.cond`` run both branches) or else the state's count.

    Args:
      exponent: ``e < 0``, the power of each factor; ``−1/4`` is the paper's for matrices.
        Vectors use ``2e`` (``−1/2``: AdaGrad).
      eps: damping ``ε > 0`` of the statistics (the paper's ``L_0 = R_0 = εI``).
      decay: ``None`` for the paper's sums, or ``β ∈ [0, 1)`` for exponential moving averages.
      refresh_every: steps between recomputations of the matrix roots.
      graft: ``None``; ``"sgd"`` to give each parameter's update the norm of its gradient;
        ``"adam"`` for the norm of ``optax.scale_by_adam()``'s direction (kept in the state);
        or any optax transformation whose direction's norm to use.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Raises:
      ValueError: a hyper-parameter is out of range, or (in ``init``) a parameter has more
        than two dimensions.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = scale_by_shampoo()
      >>> grad = jnp.array([[2.0, 0.0], [0.0, 2.0]])  # L = R = 4I: the update is G / 2
      >>> tx.update(grad, tx.init(grad))[0].round(4)
      Array([[1., 0.],
             [0., 1.]], dtype=float32)
      >>> bias = jnp.array([3.0, -4.0])  # the diagonal form: g / √(ε + g²)
      >>> tx.update(bias, tx.init(bias))[0].round(4)
      Array([ 1., -1.], dtype=float32)
    """
    _validate(exponent, eps, decay, refresh_every, graft)
    graft_tx = _graft_transform(graft)

    def init_fn(params):
        statistics = jax.tree.map(_init_statistics, params)
        roots = jax.tree.map(lambda p: _init_roots(p, exponent, eps), params)
        graft_state = optax.EmptyState() if graft_tx is None else graft_tx.init(params)
        return ScaleByShampooState(jnp.zeros([], jnp.int32), statistics, roots, graft_state)

    def update_fn(updates, state, params=None, *, step=None, **extra_args):
        del extra_args
        statistics = jax.tree.map(
            lambda g, s: _update_statistics(g, s, decay), updates, state.statistics
        )

        def refresh():
            return jax.tree.map(lambda g, s: _roots(s, exponent, eps), updates, statistics)

        if refresh_every == 1:
            roots = refresh()
        else:
            index = state.count if step is None else step
            roots = jax.lax.cond(index % refresh_every == 0, refresh, lambda: state.roots)
        directions = jax.tree.map(
            lambda g, s, r: _precondition(g, s, r, exponent, eps), updates, statistics, roots
        )
        graft_state = state.graft_state
        if graft_tx is not None:
            reference, graft_state = graft_tx.update(updates, graft_state, params)
            directions = jax.tree.map(_graft, directions, reference)
        out = jax.tree.map(lambda d, g: d.astype(g.dtype), directions, updates)
        count = optax.safe_increment(state.count)
        return out, ScaleByShampooState(count, statistics, roots, graft_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def shampoo(
    learning_rate,
    *,
    exponent: float = -0.25,
    eps: float = 1e-6,
    decay: float | None = None,
    refresh_every: int = 1,
    graft: str | optax.GradientTransformation | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Shampoo: ``θ ← θ − lr · (εI + L)^e G (εI + R)^e``.

    Args:
      learning_rate: a float or an optax schedule.
      exponent, eps, decay, refresh_every, graft: see :func:`scale_by_shampoo`.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; ``update`` accepts ``step=`` (the step
      index deciding when the roots are refreshed).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> loss = lambda w: 0.5 * jnp.sum((w - 1.0) ** 2)
      >>> tx, w = shampoo(0.5), jnp.zeros((2, 3))
      >>> state = tx.init(w)
      >>> for t in range(100):
      ...     u, state = tx.update(jax.grad(loss)(w), state, w, step=t)
      ...     w = w + u
      >>> bool(jnp.allclose(w, 1.0, atol=1e-2))
      True
    """
    return optax.chain(
        scale_by_shampoo(
            exponent=exponent, eps=eps, decay=decay, refresh_every=refresh_every, graft=graft
        ),
        optax.scale_by_learning_rate(learning_rate),
    )
