"""Closed-form ridge regression of a linear head on fixed features (the transfer experiment's
second stage).

Features and targets are centred by their means, the weights solve
``argmin ‖H_c w − y_c‖² + λ·N·‖w‖²`` and the intercept is ``ȳ − h̄·w``, as the authors'
``solve_head_ridge_closed_form``. The primal form solves the ``d × d`` system
``(H_cᵀH_c + λN I) w = H_cᵀ y_c``, the dual form the ``N × N`` system
``(H_c H_cᵀ + λN I) α = y_c`` with ``w = H_cᵀ α``; both are the same minimiser, and the smaller
system is the better conditioned and cheaper one. The SPD system is solved by Cholesky.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxprecond.linalg import cholesky_solve

FORMS = ("auto", "primal", "dual")


def ridge_head(
    features,
    targets,
    *,
    ridge: float = 1e-3,
    form: str = "auto",
    precision=jax.lax.Precision.HIGHEST,
):
    """Fit ``y ≈ H w + b`` by ridge regression with the penalty ``λ·N·‖w‖²`` and a free intercept.

    Pure JAX: jit- and vmap-able (the form is chosen from the static shapes).

    Args:
      features: ``(N, d)`` features ``H`` of the training points.
      targets: ``(N,)`` targets ``y``.
      ridge: ``λ`` (positive); the penalty is ``λ·N·‖w‖²``, as the authors'.
      form: ``"primal"`` (solve ``d × d``), ``"dual"`` (solve ``N × N``) or ``"auto"``: primal
        when ``d ≤ N``, else dual (the authors' rule).
      precision: matmul precision.

    Returns:
      ``(w, b)``: ``(d,)`` weights and the scalar intercept ``ȳ − h̄·w``.

    Example:
      >>> import jax.numpy as jnp
      >>> h = jnp.array([[0.0], [1.0], [2.0], [3.0]])
      >>> w, b = ridge_head(h, 2.0 * h[:, 0] + 1.0, ridge=1e-6)
      >>> round(float(w[0]), 3), round(float(b), 3)
      (2.0, 1.0)
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if not isinstance(ridge, jax.core.Tracer) and not ridge > 0:
        raise ValueError(f"ridge must be positive, got {ridge!r}")
    features, targets = jnp.asarray(features), jnp.asarray(targets)
    if features.ndim != 2 or targets.shape != features.shape[:1]:
        raise ValueError(
            f"need features (N, d) and targets (N,), got {features.shape} and {targets.shape}"
        )
    n, d = features.shape
    if form == "auto":
        form = "primal" if d <= n else "dual"
    h_mean = jnp.mean(features, axis=0)
    y_mean = jnp.mean(targets)
    centred, y_centred = features - h_mean, targets - y_mean
    penalty = ridge * n

    def solve(gram, rhs):
        gram = gram + penalty * jnp.eye(gram.shape[0], dtype=gram.dtype)
        return cholesky_solve(gram, rhs)

    if form == "primal":
        gram = jnp.matmul(centred.T, centred, precision=precision)
        w = solve(gram, jnp.matmul(centred.T, y_centred, precision=precision))
    else:
        gram = jnp.matmul(centred, centred.T, precision=precision)
        w = jnp.matmul(centred.T, solve(gram, y_centred), precision=precision)
    b = y_mean - jnp.matmul(h_mean, w, precision=precision)
    return w, b


__all__ = ["FORMS", "ridge_head"]
