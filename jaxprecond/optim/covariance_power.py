"""The Σ^p preconditioner as optax gradient transformations.

Each first-layer neuron's gradient ``g_j`` (a vector in input space) becomes ``P g_j`` with
``P = Σ^p``. With the kernel stored ``(dx, dh)`` (flax, haiku) neuron ``j`` is column ``j`` and the
update is ``P G``; stored ``(dh, dx)`` (torch, equinox) neuron ``j`` is row ``j`` and the update is
``G Pᵀ``.

The transform acts on every leaf it is given, so route it to the first-layer kernel with
:func:`route_to_kernel` (built on ``optax.partition``), ``optax.masked`` or your own partition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxprecond.linalg import DEFAULT_EIGENVALUE_FLOOR, Eigh, eigenvalue_power, eigh_psd

LAYOUTS = ("in_out", "out_in")
NORMALIZATIONS = (None, "max", "trace", "whitened")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _as_eigh(covariance, damping) -> Eigh:
    if isinstance(covariance, Eigh):
        if isinstance(damping, (int, float)) and damping == 0:
            return covariance
        return Eigh(covariance.eigenvalues + damping, covariance.eigenvectors)
    return eigh_psd(covariance, damping=damping)


def preconditioner_eigh(
    covariance,
    power,
    *,
    damping: float = 0.0,
    normalize: str | None = None,
    eigenvalue_floor: float | None = DEFAULT_EIGENVALUE_FLOOR,
) -> Eigh:
    """The eigendecomposition of ``P = Σ^p``, optionally normalised: ``P``'s eigenvalues, Σ's
    eigenvectors.

    The normalisations:

    * ``"max"``: divide by the largest eigenvalue of ``P`` (the same top step in input space);
    * ``"trace"``: scale so that ``tr P = dx``;
    * ``"whitened"``: divide by the largest eigenvalue of ``Σ^{p+1}``, the preconditioner in
      whitened coordinates (``u = Σ^{-1/2}x``), where the dynamics live. Every ``p`` then has
      the same largest stable step: the coordinate-free way to take the step size out of ``p``.

    ``"max"`` and ``"trace"`` leave ``p = 0`` the identity; ``"whitened"`` does not
    (``P = I/λ_max(Σ)``).

    Args:
      covariance: ``(dx, dx)`` PSD matrix ``Σ`` or its :class:`~jaxprecond.linalg.Eigh`.
      power: the exponent ``p`` (a Python number or a traced scalar).
      damping: ``δ ≥ 0``: ``P = (Σ + δI)^p``.
      normalize: ``None``, ``"max"``, ``"trace"`` or ``"whitened"``.
      eigenvalue_floor: relative eigenvalue floor, see :func:`~jaxprecond.linalg.eigenvalue_power`.

    Returns:
      An :class:`~jaxprecond.linalg.Eigh` of ``P``.

    Example:
      >>> import jax.numpy as jnp
      >>> sigma = jnp.diag(jnp.array([0.1, 10.0]))
      >>> preconditioner_eigh(sigma, -1.0, normalize="max").eigenvalues
      Array([1.  , 0.01], dtype=float32)
      >>> preconditioner_eigh(sigma, -1.0, normalize="whitened").eigenvalues  # Σ^{p+1} = I
      Array([10. ,  0.1], dtype=float32)
    """
    _check_choice("normalize", normalize, NORMALIZATIONS)
    eigh = _as_eigh(covariance, damping)
    weights = eigenvalue_power(eigh.eigenvalues, power, eigenvalue_floor=eigenvalue_floor)
    if normalize == "max":
        weights = weights / jnp.max(weights)
    elif normalize == "trace":
        weights = weights * (weights.shape[0] / jnp.sum(weights))
    elif normalize == "whitened":
        weights = weights / jnp.max(weights * eigh.eigenvalues)
    return Eigh(weights, eigh.eigenvectors)


def preconditioner(
    covariance,
    power,
    *,
    damping: float = 0.0,
    normalize: str | None = None,
    eigenvalue_floor: float | None = DEFAULT_EIGENVALUE_FLOOR,
):
    """``P = Σ^p``, optionally normalised; ``None`` when it is exactly the identity.

    Args:
      covariance: ``(dx, dx)`` PSD matrix ``Σ`` or its :class:`~jaxprecond.linalg.Eigh`.
      power: the exponent ``p`` (a Python number or a traced scalar).
      damping: ``δ ≥ 0``: ``P = (Σ + δI)^p``.
      normalize: ``None``, ``"max"``, ``"trace"`` or ``"whitened"``, see
        :func:`preconditioner_eigh`.
      eigenvalue_floor: relative eigenvalue floor, see :func:`~jaxprecond.linalg.eigenvalue_power`.

    Returns:
      The ``(dx, dx)`` matrix ``P``, or ``None`` for a Python-number ``power == 0`` without the
      ``"whitened"`` normalisation (the identity, so that the transform is exactly plain
      gradient descent).

    Example:
      >>> import jax.numpy as jnp
      >>> preconditioner(jnp.diag(jnp.array([10.0, 0.1])), 1.0, normalize="max")
      Array([[1.  , 0.  ],
             [0.  , 0.01]], dtype=float32)
    """
    _check_choice("normalize", normalize, NORMALIZATIONS)
    if isinstance(power, (int, float)) and power == 0 and normalize != "whitened":
        return None
    weights, q = preconditioner_eigh(
        covariance, power, damping=damping, normalize=normalize, eigenvalue_floor=eigenvalue_floor
    )
    return jnp.matmul(q * weights, q.T, precision=jax.lax.Precision.HIGHEST)


def apply_neuronwise(matrix, kernel_update, layout: str):
    """Multiply every neuron's gradient by ``matrix``: ``P G`` (in_out) or ``G Pᵀ`` (out_in).

    Args:
      matrix: ``(dx, dx)`` preconditioner ``P``.
      kernel_update: the kernel's gradient, ``(dx, dh)`` for ``"in_out"`` or ``(dh, dx)`` for
        ``"out_in"``.
      layout: ``"in_out"`` or ``"out_in"``.

    Returns:
      The preconditioned gradient, same shape and dtype as ``kernel_update``.

    Example:
      >>> import jax.numpy as jnp
      >>> apply_neuronwise(2 * jnp.eye(2), jnp.ones((3, 2)), "out_in")[0]
      Array([2., 2.], dtype=float32)
    """
    dx = matrix.shape[0]
    axis = 0 if layout == "in_out" else -1
    if kernel_update.ndim != 2 or kernel_update.shape[axis] != dx:
        raise ValueError(
            f"layout {layout!r} expects a 2-D kernel with {dx} inputs on axis {axis}, "
            f"got shape {kernel_update.shape}"
        )
    matrix = matrix.astype(kernel_update.dtype)
    precision = jax.lax.Precision.HIGHEST
    if layout == "in_out":
        return jnp.matmul(matrix, kernel_update, precision=precision)
    return jnp.matmul(kernel_update, matrix.T, precision=precision)


def scale_by_covariance_power(
    covariance,
    power=1.0,
    *,
    layout: str,
    damping: float = 0.0,
    normalize: str | None = None,
    eigenvalue_floor: float | None = DEFAULT_EIGENVALUE_FLOOR,
) -> optax.GradientTransformation:
    """Precondition each neuron's gradient by ``P = Σ^p``: ``g_j ← P g_j``.

    Every leaf the transform receives must be a first-layer kernel; route it with
    :func:`route_to_kernel`. The eigendecomposition of a concrete ``Σ`` happens once, here; ``P`` is
    rebuilt from it in every update (a ``dx × dx`` product), so ``power`` can be changed by
    ``optax.inject_hyperparams`` or batched with ``vmap``.

    Args:
      covariance: ``(dx, dx)`` PSD input covariance ``Σ`` or its
        :class:`~jaxprecond.linalg.Eigh`.
      power: the exponent ``p``. A Python ``0`` makes the transform the identity.
      layout: ``"in_out"`` for ``(dx, dh)`` kernels (flax, haiku), ``"out_in"`` for ``(dh, dx)``
        kernels (torch, equinox).
      damping: ``δ ≥ 0``: ``P = (Σ + δI)^p``.
      normalize: ``None``, ``"max"``, ``"trace"`` or ``"whitened"``; see
        :func:`preconditioner_eigh`.
      eigenvalue_floor: relative eigenvalue floor for negative powers.

    Returns:
      An ``optax.GradientTransformation`` with an empty state.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = scale_by_covariance_power(jnp.diag(jnp.array([4.0, 1.0])), 0.5, layout="in_out")
      >>> grad = jnp.ones((2, 3))  # (dx, dh)
      >>> tx.update(grad, tx.init(grad))[0][:, 0]
      Array([2., 1.], dtype=float32)
    """
    _check_choice("layout", layout, LAYOUTS)
    _check_choice("normalize", normalize, NORMALIZATIONS)
    if not isinstance(power, jax.core.Tracer) and np.ndim(power) != 0:
        raise ValueError(f"power must be a scalar, got shape {np.shape(power)}")
    if not isinstance(damping, jax.core.Tracer) and damping < 0:
        raise ValueError(f"damping must be non-negative, got {damping}")
    eigh = _as_eigh(covariance, damping)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        matrix = preconditioner(eigh, power, normalize=normalize, eigenvalue_floor=eigenvalue_floor)
        if matrix is None:
            return updates, state
        updates = jax.tree.map(lambda g: apply_neuronwise(matrix, g, layout), updates)
        return updates, state

    return optax.GradientTransformation(init_fn, update_fn)


def _last_key(path) -> Any:
    if not path:  # the parameters are a single array
        return None
    entry = path[-1]
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return getattr(entry, attr)
    return entry


def kernel_labels(kernel: str | Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A labelling function for ``optax.partition``: ``"kernel"`` for the first-layer kernel.

    Args:
      kernel: the key (dict key or attribute name) of the kernel leaf, e.g. ``"W1"``; or a
        function mapping the parameters to a pytree of booleans (``True`` marks the kernel).

    Returns:
      A function mapping parameters to a pytree of labels ``"kernel"`` / ``"rest"``.

    Example:
      >>> kernel_labels("W1")({"W1": 0.0, "b1": 0.0})
      {'W1': 'kernel', 'b1': 'rest'}
    """
    if callable(kernel):
        return lambda params: jax.tree.map(lambda m: "kernel" if m else "rest", kernel(params))
    if not isinstance(kernel, str):
        raise TypeError(f"kernel must be a key name or a callable, got {kernel!r}")

    def labels(params):
        tree = jax.tree_util.tree_map_with_path(
            lambda path, _: "kernel" if _last_key(path) == kernel else "rest", params
        )
        if "kernel" not in jax.tree.leaves(tree):
            raise ValueError(f"no parameter named {kernel!r} in the parameter tree")
        return tree

    return labels


def route_to_kernel(
    transform: optax.GradientTransformation,
    kernel: str | Callable[[Any], Any],
    rest: optax.GradientTransformation | None = None,
) -> optax.GradientTransformation:
    """Apply ``transform`` to the first-layer kernel and ``rest`` (default identity) elsewhere.

    Args:
      transform: the transformation for the kernel, e.g. :func:`scale_by_covariance_power`.
      kernel: see :func:`kernel_labels`.
      rest: the transformation for every other parameter (default ``optax.identity()``).

    Returns:
      An ``optax.partition`` of the two.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> tx = route_to_kernel(optax.scale(2.0), "W1")
      >>> tx.update({"W1": 1.0, "b1": 1.0}, tx.init({"W1": 1.0, "b1": 1.0}))[0]
      {'W1': 2.0, 'b1': 1.0}
    """
    return optax.partition(
        {"kernel": transform, "rest": rest if rest is not None else optax.identity()},
        kernel_labels(kernel),
    )


def covariance_power(
    learning_rate,
    covariance,
    power=1.0,
    *,
    layout: str,
    kernel: str | Callable[[Any], Any] = "W1",
    damping: float = 0.0,
    normalize: str | None = None,
    eigenvalue_floor: float | None = DEFAULT_EIGENVALUE_FLOOR,
) -> optax.GradientTransformation:
    """Gradient descent with the first-layer kernel preconditioned by ``Σ^p``.

    Every other parameter takes a plain gradient step; ``power=0`` is exactly ``optax.sgd``.

    Args:
      learning_rate: a float or an optax schedule.
      covariance: ``(dx, dx)`` PSD input covariance or its :class:`~jaxprecond.linalg.Eigh`.
      power: the exponent ``p``.
      layout: ``"in_out"`` ``(dx, dh)`` or ``"out_in"`` ``(dh, dx)``.
      kernel: which leaf is the first-layer kernel, see :func:`kernel_labels`.
      damping: ``δ ≥ 0`` added to Σ's eigenvalues.
      normalize: ``None``, ``"max"``, ``"trace"`` or ``"whitened"``, see
        :func:`preconditioner_eigh`.
      eigenvalue_floor: relative eigenvalue floor for negative powers.

    Returns:
      An ``optax.GradientTransformation``.

    Example:
      >>> import jax.numpy as jnp
      >>> params = {"W1": jnp.ones((3, 2)), "b1": jnp.zeros(3)}  # W1: (dh, dx)
      >>> tx = covariance_power(0.1, jnp.diag(jnp.array([4.0, 1.0])), 1.0, layout="out_in")
      >>> grads = {"W1": jnp.ones((3, 2)), "b1": jnp.ones(3)}
      >>> updates, _ = tx.update(grads, tx.init(params))
      >>> updates["W1"][0], updates["b1"]
      (Array([-0.4, -0.1], dtype=float32), Array([-0.1, -0.1, -0.1], dtype=float32))
    """
    return optax.chain(
        route_to_kernel(
            scale_by_covariance_power(
                covariance,
                power,
                layout=layout,
                damping=damping,
                normalize=normalize,
                eigenvalue_floor=eigenvalue_floor,
            ),
            kernel,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )
