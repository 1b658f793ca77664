"""Powers of symmetric positive semi-definite matrices.

The preconditioner of the paper is P = Σ^p, the p-th power of the input covariance. It is
computed from an eigendecomposition Σ = Q diag(λ) Qᵀ as P = Q diag(λ^p) Qᵀ. Splitting the two
steps lets the (expensive, recompiling) decomposition happen once while p stays a traced value
that can be swept with ``vmap``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np

#: Before a *negative* power, eigenvalues below ``floor · max(λ)`` are raised to that value, so
#: that negative powers of (numerically) singular matrices stay finite. ``None`` means
#: ``d · eps(dtype)``: the resolution of a ``d × d`` eigendecomposition in that dtype.
DEFAULT_EIGENVALUE_FLOOR = None


class Eigh(NamedTuple):
    """Eigendecomposition of a symmetric matrix: ``M = Q diag(eigenvalues) Qᵀ``.

    Attributes:
      eigenvalues: ``(d,)`` eigenvalues in ascending order.
      eigenvectors: ``(d, d)`` matrix ``Q`` whose columns are the eigenvectors.

    Example:
      >>> import jax.numpy as jnp
      >>> m = jnp.array([[2.0, 1.0], [1.0, 2.0]])
      >>> e = eigh_psd(m)
      >>> e.eigenvalues.round(4)
      Array([1., 3.], dtype=float32)
      >>> q = e.eigenvectors
      >>> bool(jnp.allclose(q @ jnp.diag(e.eigenvalues) @ q.T, m, atol=1e-5))
      True
    """

    eigenvalues: jax.Array
    eigenvectors: jax.Array


def _is_concrete(*values) -> bool:
    return not any(isinstance(v, jax.core.Tracer) for v in values)


def one_at_a_time_on_cpu(fn):
    """``fn`` (a LAPACK-backed decomposition) whose batched form runs one problem at a time on
    a CPU.

    XLA:CPU computes a batch of decompositions (LAPACK ``syevd``, ``potrf``) as a parallel map
    on the process's shared thread pool, and a thread waits there for its batch's tasks. Two
    such batches at once (K-FAC's factors, or one program on each of two host devices) can
    leave every pool thread waiting: seen as a hang with every thread idle, in a vmapped K-FAC
    sweep and in the transfer experiment's vmapped ridge solve on 2 host devices. Under
    ``vmap`` on a CPU the returned function runs ``lax.map`` over the batch instead (each
    problem single-threaded); elsewhere (GPU, TPU) it stays one batched call.

    Args:
      fn: a function of arrays returning a pytree of arrays.

    Returns:
      ``fn`` with that batching rule.

    Example:
      >>> import jax.numpy as jnp
      >>> det = one_at_a_time_on_cpu(jnp.linalg.det)
      >>> jax.vmap(det)(jnp.stack([jnp.eye(2), 2 * jnp.eye(2)])).tolist()
      [1.0, 4.0]
    """
    wrapped = jax.custom_batching.custom_vmap(fn)

    @wrapped.def_vmap
    def rule(axis_size, in_batched, *args):
        if not any(jax.tree.leaves(in_batched)):
            out = wrapped(*args)
            return out, jax.tree.map(lambda _: False, out)
        args = [
            jax.tree.map(lambda a, b: a if b else jnp.broadcast_to(a, (axis_size, *a.shape)), x, bx)
            for x, bx in zip(args, in_batched, strict=True)
        ]
        out = jax.lax.platform_dependent(
            *args,
            cpu=lambda *a: jax.lax.map(lambda xs: wrapped(*xs), a),
            default=jax.vmap(fn),
        )
        return out, jax.tree.map(lambda _: True, out)

    return wrapped


def _eigh(matrix):
    eigenvalues, eigenvectors = jnp.linalg.eigh(matrix)
    return eigenvalues, eigenvectors


#: ``jnp.linalg.eigh`` (ascending ``(eigenvalues, eigenvectors)``), one matrix at a time under
#: ``vmap`` on a CPU (:func:`one_at_a_time_on_cpu`).
symmetric_eigh = one_at_a_time_on_cpu(_eigh)


def _cholesky_solve(matrix, rhs):
    return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(matrix), rhs)


#: ``matrix⁻¹ rhs`` for an SPD ``matrix`` by Cholesky, one system at a time under ``vmap`` on
#: a CPU (:func:`one_at_a_time_on_cpu`).
cholesky_solve = one_at_a_time_on_cpu(_cholesky_solve)


def eigh_psd(matrix, *, damping: float = 0.0) -> Eigh:
    """Eigendecomposition of the damped PSD matrix ``matrix + damping·I``.

    Args:
      matrix: ``(d, d)`` symmetric positive semi-definite matrix.
      damping: non-negative value added to every eigenvalue.

    Returns:
      An :class:`Eigh` of ``matrix + damping·I``. Tiny negative eigenvalues from rounding are
      clipped to zero.

    Example:
      >>> import jax.numpy as jnp
      >>> eigh_psd(jnp.diag(jnp.array([4.0, 1.0])), damping=1.0).eigenvalues
      Array([2., 5.], dtype=float32)
    """
    matrix = jnp.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square (d, d), got shape {matrix.shape}")
    if _is_concrete(damping) and damping < 0:
        raise ValueError(f"damping must be non-negative, got {damping}")
    matrix = 0.5 * (matrix + matrix.T)
    eigenvalues, eigenvectors = symmetric_eigh(matrix)
    return Eigh(jnp.maximum(eigenvalues, 0.0) + damping, eigenvectors)


def eigenvalue_power(
    eigenvalues, power, *, eigenvalue_floor: float | None = DEFAULT_EIGENVALUE_FLOOR
):
    """``λ^p`` for PSD eigenvalues, finite for every ``p`` (see :data:`DEFAULT_EIGENVALUE_FLOOR`).

    For ``p < 0`` the eigenvalues are first raised to at least ``eigenvalue_floor · max(λ)`` (and
    to the smallest normal number of the dtype); the result is clipped to the largest finite
    value. For ``p ≥ 0`` the eigenvalues are used as they are (``0^0 = 1``).

    Args:
      eigenvalues: ``(d,)`` non-negative eigenvalues.
      power: the exponent ``p``; a Python number or a (possibly traced) scalar.
      eigenvalue_floor: relative floor on the eigenvalues for negative powers; ``None`` for
        ``d · eps(dtype)``.

    Returns:
      ``(d,)`` array of ``λ^p``.

    Example:
      >>> import jax.numpy as jnp
      >>> eigenvalue_power(jnp.array([4.0, 1.0]), -0.5)
      Array([0.5, 1. ], dtype=float32)
    """
    eigenvalues = jnp.asarray(eigenvalues)
    info = jnp.finfo(eigenvalues.dtype)
    if eigenvalue_floor is None:
        eigenvalue_floor = eigenvalues.shape[-1] * float(info.eps)
    floor = jnp.maximum(eigenvalue_floor * jnp.max(eigenvalues), info.tiny)
    base = jnp.where(jnp.asarray(power) < 0, jnp.maximum(eigenvalues, floor), eigenvalues)
    return jnp.minimum(jnp.power(base, power), info.max)


def power_from_eigh(
    eigh: Eigh, power, *, eigenvalue_floor: float | None = DEFAULT_EIGENVALUE_FLOOR
):
    """``Q diag(λ^p) Qᵀ`` from a precomputed eigendecomposition.

    ``power`` may be traced, so a sweep over ``p`` under ``vmap`` compiles once.

    Args:
      eigh: the decomposition of the PSD matrix.
      power: the exponent ``p``.
      eigenvalue_floor: relative eigenvalue floor, see :func:`eigenvalue_power`.

    Returns:
      The ``(d, d)`` matrix power.

    Example:
      >>> import jax.numpy as jnp
      >>> e = eigh_psd(jnp.diag(jnp.array([4.0, 9.0])))
      >>> power_from_eigh(e, 0.5)
      Array([[2., 0.],
             [0., 3.]], dtype=float32)
    """
    scaled = eigh.eigenvectors * eigenvalue_power(
        eigh.eigenvalues, power, eigenvalue_floor=eigenvalue_floor
    )
    return jnp.matmul(scaled, eigh.eigenvectors.T, precision=jax.lax.Precision.HIGHEST)


def matrix_power(
    matrix,
    power,
    *,
    damping: float = 0.0,
    eigenvalue_floor: float | None = DEFAULT_EIGENVALUE_FLOOR,
):
    """The ``p``-th power of a symmetric PSD matrix, ``(Σ + δI)^p``.

    A negative power of a singular matrix without damping is undefined: when the matrix and the
    power are concrete this raises a ``ValueError``; for traced inputs the eigenvalue floor keeps
    the result finite.

    Args:
      matrix: ``(d, d)`` symmetric PSD matrix.
      power: the exponent ``p``.
      damping: ``δ ≥ 0`` added to the eigenvalues before the power.
      eigenvalue_floor: relative eigenvalue floor, see :func:`eigenvalue_power`.

    Returns:
      The ``(d, d)`` matrix ``(matrix + damping·I)^power``.

    Raises:
      ValueError: the matrix is not square, ``damping < 0``, or ``power < 0`` on a concrete
        singular matrix without damping.

    Example:
      >>> import jax.numpy as jnp
      >>> matrix_power(jnp.array([[2.0, 0.0], [0.0, 8.0]]), -1.0)
      Array([[0.5  , 0.   ],
             [0.   , 0.125]], dtype=float32)
    """
    eigh = eigh_psd(matrix, damping=damping)
    if _is_concrete(power, eigh.eigenvalues) and np.ndim(power) == 0 and power < 0:
        eigenvalues = np.asarray(eigh.eigenvalues)
        resolution = eigenvalues.size * np.finfo(eigenvalues.dtype).eps * eigenvalues.max()
        if eigenvalues.min() <= resolution:
            raise ValueError(
                f"power={power} of a singular matrix (smallest eigenvalue "
                f"{eigenvalues.min():.3g}, largest {eigenvalues.max():.3g}) is undefined; "
                "pass damping > 0"
            )
    return power_from_eigh(eigh, power, eigenvalue_floor=eigenvalue_floor)
