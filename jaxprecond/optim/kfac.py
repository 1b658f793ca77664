"""K-FAC: Kronecker-factored approximate curvature for dense layers (Martens & Grosse, 2015).

For a dense layer ``s = W a (+ b)`` with inputs ``a`` and pre-activation gradients ``g``, K-FAC
approximates the layer's block of the Fisher by a Kronecker product (paper, §3):

    F̃ = A ⊗ G,    A = E[ā āᵀ],    G = E[g gᵀ],

where ``ā = [a, 1]`` carries the bias as a homogeneous coordinate, and ``vec`` stacks columns.
As ``(A ⊗ G)⁻¹ vec(∇) = vec(G⁻¹ ∇ A⁻¹)``, the natural-gradient direction for the layer's
``d_out × (d_in + 1)`` matrix ``∇ = [∇W | ∇b]`` is ``G⁻¹ ∇ A⁻¹``; this module computes the
general ``G^q ∇ A^p`` (``p = input_power``, ``q = output_power``, both −1 by default).

The statistics are supplied, not traced: ``update`` takes the extra arguments
``layer_inputs={name: a (N, d_in)}`` and ``output_grads={name: g (N, d_out)}``, with ``g`` scaled
so that ``E[g gᵀ]`` is the usual factor (for a loss that is a mean over N examples,
``g = N · ∂L/∂s``: per-example gradients). :func:`mlp_kfac_statistics` supplies them for
jaxprecond's MLP. Both factors are exponential moving averages with weight ``decay`` (paper §5;
the first update sets them to the batch's statistics).

Which gradients ``g`` are used decides which curvature is approximated: the paper samples the
targets from the model's predictive distribution (the Fisher); the observed targets, as in
:func:`mlp_kfac_statistics`, give the empirical Fisher.

Damping is the factored Tikhonov damping of §6.3 with ``π = 1``: the powers are taken of
``A + √γ I`` and ``G + √γ I`` (``γ = damping``), so ``F̃ + γI`` is approximated by
``(A + √γ I) ⊗ (G + √γ I)``. Every ``refresh_every`` steps the damped powers
``(A + √γ I)^p`` and ``(G + √γ I)^q`` are formed and kept in the state (the paper, too, recomputes
its inverses only periodically), so a step costs two products. The inverse (``p = −1``, the
default) is taken by Cholesky, which is about three times faster than an eigendecomposition and
more accurate in float32; other powers from the eigendecomposition. Damping and powers changed
through ``optax.inject_hyperparams`` take effect at the next refresh.

References:
  Martens, Grosse, "Optimizing Neural Networks with Kronecker-factored Approximate Curvature",
  ICML 2015, arXiv 1503.05671.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxprecond.checks import check_range
from jaxprecond.linalg import Eigh, cholesky_solve, eigh_psd, power_from_eigh
from jaxprecond.optim.covariance_power import LAYOUTS

Precision = jax.lax.Precision

#: The layers of jaxprecond's MLP: the hidden layer and the (single-output) read-out.
MLP_LAYERS = {"layer1": ("W1", "b1"), "layer2": ("W2", "b2")}


class LayerFactors(NamedTuple):
    """One layer's Kronecker factors and their damped powers at the last refresh.

    Attributes:
      input_factor: ``A = E[ā āᵀ]``, ``(d_in + 1, d_in + 1)`` with the bias column, else
        ``(d_in, d_in)`` (float32 at least).
      output_factor: ``G = E[g gᵀ]``, ``(d_out, d_out)``.
      input_preconditioner: ``(A + √γ I)^p`` of ``A`` at the last refresh.
      output_preconditioner: ``(G + √γ I)^q`` of ``G`` at the last refresh.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = scale_by_kfac({"dense": ("W", "b")})
      >>> f = tx.init({"W": jnp.zeros((2, 3)), "b": jnp.zeros(2)}).factors["dense"]
      >>> f.input_factor.shape, f.output_factor.shape  # d_in + 1 = 4 with the bias column
      ((4, 4), (2, 2))
      >>> f.output_preconditioner  # the identity until the first refresh
      Array([[1., 0.],
             [0., 1.]], dtype=float32)
    """

    input_factor: jax.Array
    output_factor: jax.Array
    input_preconditioner: jax.Array
    output_preconditioner: jax.Array


class ScaleByKFACState(NamedTuple):
    """State of :func:`scale_by_kfac`.

    Attributes:
      count: updates taken (int32); the first one initialises the factors.
      factors: ``{layer name: LayerFactors}``.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = scale_by_kfac({"dense": ("W", None)}, damping=0.0)
      >>> params = {"W": jnp.ones((1, 2))}
      >>> state = tx.init(params)
      >>> state.count, list(state.factors)
      (Array(0, dtype=int32), ['dense'])
      >>> a, g = jnp.array([[2.0, 0.0], [0.0, 1.0]]), jnp.array([[1.0], [3.0]])
      >>> _, state = tx.update(params, state, layer_inputs={"dense": a},
      ...                      output_grads={"dense": g})
      >>> int(state.count), state.factors["dense"].output_factor  # G = mean(g²) = 5
      (1, Array([[5.]], dtype=float32))
    """

    count: jax.Array
    factors: dict


def _check_layers(layers) -> dict:
    if not isinstance(layers, Mapping) or not layers:
        raise ValueError(
            f"layers must be a non-empty mapping name -> (kernel, bias), got {layers!r}"
        )
    kernels = set()
    for name, spec in layers.items():
        if not (isinstance(spec, (tuple, list)) and len(spec) == 2) or spec[0] is None:
            raise ValueError(
                f"layer {name!r} must map to (kernel key, bias key or None), got {spec!r}"
            )
        if spec[0] in kernels:
            raise ValueError(f"kernel {spec[0]!r} appears in more than one layer")
        kernels.add(spec[0])
    return {name: tuple(spec) for name, spec in layers.items()}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_zero(power) -> bool:
    return _is_number(power) and power == 0


def _stats_dtype(dtype):
    return jnp.promote_types(dtype, jnp.float32)


def _kernel_dims(shape, layout: str) -> tuple[int, int]:
    """``(d_out, d_in)`` of a kernel: ``(d_in,)`` is a single output, else by ``layout``."""
    if len(shape) == 1:
        return 1, shape[0]
    if len(shape) == 2:
        return shape if layout == "out_in" else shape[::-1]
    raise ValueError(f"a dense kernel must be 1-D or 2-D, got shape {shape}")


def _to_matrix(kernel, layout: str):
    """The kernel (or its gradient) as a ``(d_out, d_in)`` matrix."""
    if kernel.ndim == 1:
        return kernel[None, :]
    return kernel if layout == "out_in" else kernel.T


def _from_matrix(matrix, like, layout: str):
    if like.ndim == 1:
        return matrix[0].astype(like.dtype)
    return (matrix if layout == "out_in" else matrix.T).astype(like.dtype)


def input_factor(a, *, include_bias: bool = True, dtype=jnp.float32):
    """``A = E[ā āᵀ]`` over the batch, ``ā = [a, 1]`` with the bias column, else ``a``.

    Example:
      >>> import jax.numpy as jnp
      >>> input_factor(jnp.array([[1.0], [3.0]]))
      Array([[5., 2.],
             [2., 1.]], dtype=float32)
    """
    a = jnp.asarray(a, dtype)
    if include_bias:
        a = jnp.concatenate([a, jnp.ones((a.shape[0], 1), dtype)], axis=1)
    return jnp.matmul(a.T, a, precision=Precision.HIGHEST) / a.shape[0]


def output_factor(g, *, dtype=jnp.float32):
    """``G = E[g gᵀ]`` over the batch of pre-activation gradients ``g`` ``(N, d_out)``.

    Args:
      g: ``(N, d_out)`` pre-activation gradients, one row per example.
      dtype: the factor's dtype.

    Returns:
      The ``(d_out, d_out)`` factor ``gᵀg / N``.

    Example:
      >>> import jax.numpy as jnp
      >>> output_factor(jnp.array([[1.0, 0.0], [1.0, 2.0]]))
      Array([[1., 1.],
             [1., 2.]], dtype=float32)
    """
    g = jnp.asarray(g, dtype)
    return jnp.matmul(g.T, g, precision=Precision.HIGHEST) / g.shape[0]


def damped_power(factor, power, damping):
    """``(F + √γ I)^power`` of a PSD Kronecker factor ``F``.

    The inverse (``power`` the number −1, ``damping`` a positive number) is taken by Cholesky;
    any other power (or a traced one) from the eigendecomposition of ``F``, with the eigenvalue
    floor of :func:`~jaxprecond.linalg.eigenvalue_power`.

    Args:
      factor: ``(d, d)`` symmetric PSD factor ``F``.
      power: the exponent (a number or a traced scalar).
      damping: ``γ ≥ 0``.

    Returns:
      The ``(d, d)`` matrix ``(F + √γ I)^power``.

    Example:
      >>> import jax.numpy as jnp
      >>> f = jnp.array([[2.0, 1.0], [1.0, 2.0]])
      >>> damped_power(f, -1.0, 1e-12).round(4)  # [[2, −1], [−1, 2]] / 3
      Array([[ 0.6667, -0.3333],
             [-0.3333,  0.6667]], dtype=float32)
      >>> bool(jnp.allclose(damped_power(f, -1.0, 1e-12), damped_power(f, -1.0, 0.0), atol=1e-5))
      True
    """
    factor = 0.5 * (factor + factor.T)
    identity = jnp.eye(factor.shape[0], dtype=factor.dtype)
    root = jnp.sqrt(jnp.asarray(damping, factor.dtype))
    if _is_number(power) and power == -1 and _is_number(damping) and damping > 0:
        return cholesky_solve(factor + root * identity, identity)
    eigh = eigh_psd(factor)
    return power_from_eigh(Eigh(eigh.eigenvalues + root, eigh.eigenvectors), power)


def kronecker_precondition(grad, factors: LayerFactors, input_power, output_power):
    """``G^q ∇ A^p`` for the ``(d_out, d_in [+1])`` matrix ``∇``, i.e. ``(A^p ⊗ G^q) vec ∇``.

    The damped powers are those stored in ``factors`` at the last refresh; a power 0 leaves
    that side unchanged.

    Args:
      grad: the ``(d_out, d_in)`` matrix ``∇`` (``d_in`` counting the bias column, if any).
      factors: the layer's :class:`LayerFactors` (only the stored powers are used).
      input_power: ``p``, the power of ``A``.
      output_power: ``q``, the power of ``G``.

    Returns:
      ``G^q ∇ A^p``, shape ``(d_out, d_in)``.

    Example:
      >>> import jax.numpy as jnp
      >>> a, g = jnp.array([[2.0, 1.0], [1.0, 2.0]]), jnp.array([[2.0, 0.0], [0.0, 1.0]])
      >>> inverse = lambda f: damped_power(f, -1.0, 0.0)
      >>> factors = LayerFactors(a, g, inverse(a), inverse(g))
      >>> grad = jnp.array([[3.0, 0.0], [0.0, 3.0]])
      >>> out = kronecker_precondition(grad, factors, -1.0, -1.0)
      >>> out.round(4)  # G⁻¹ ∇ A⁻¹ with A⁻¹ = [[2, −1], [−1, 2]] / 3
      Array([[ 1. , -0.5],
             [-1. ,  2. ]], dtype=float32)
      >>> a_inv, g_inv = jnp.array([[2.0, -1.0], [-1.0, 2.0]]) / 3, jnp.diag(jnp.array([0.5, 1.0]))
      >>> vec = lambda m: m.T.reshape(-1)  # stack the columns
      >>> bool(jnp.allclose(vec(out), jnp.kron(a_inv, g_inv) @ vec(grad), atol=1e-5))
      True
    """
    matmul = functools.partial(jnp.matmul, precision=Precision.HIGHEST)
    if not _is_zero(output_power):
        grad = matmul(factors.output_preconditioner, grad)
    if not _is_zero(input_power):
        grad = matmul(grad, factors.input_preconditioner)
    return grad


def scale_by_kfac(
    layers,
    *,
    decay: float = 0.95,
    damping: float = 1e-3,
    input_power: float = -1.0,
    output_power: float = -1.0,
    include_bias: bool = True,
    refresh_every: int = 1,
    layout: str = "out_in",
) -> optax.GradientTransformationExtraArgs:
    """K-FAC's direction ``G^q ∇ A^p`` per dense layer (without the learning rate).

    ``update`` needs the extra arguments ``layer_inputs`` and ``output_grads`` (dicts keyed by
    layer name, see the module docstring). The damped powers of the factors are refreshed
    when ``step % refresh_every == 0``, where ``step`` is an extra argument (pass the scan's own,
    unbatched step index, so that ``lax.cond`` stays a branch under ``vmap``) or else the
    state's count. Before the first refresh the stored powers are the identity.

    Args:
      layers: ``{name: (kernel key, bias key or None)}`` in a flat parameter dict. A kernel is
        ``(d_out, d_in)`` (``layout="out_in"``, torch), ``(d_in, d_out)`` (``"in_out"``, flax)
        or ``(d_in,)`` (one output). Parameters in no layer pass through unchanged.
      decay: EMA weight of the old factors, in ``[0, 1)``.
      damping: ``γ ≥ 0``; the powers are taken of ``A + √γ I`` and ``G + √γ I``.
      input_power: ``p``, the power of ``A``.
      output_power: ``q``, the power of ``G``.
      include_bias: append the homogeneous coordinate to the inputs and precondition
        ``[∇W | ∇b]`` jointly; with ``False`` the bias passes through unchanged.
      refresh_every: steps between refreshes of the damped powers.
      layout: ``"out_in"`` or ``"in_out"`` for 2-D kernels.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp
      >>> params = {"W": jnp.ones((1, 2))}
      >>> tx = scale_by_kfac({"dense": ("W", None)}, damping=0.0)
      >>> a = jnp.array([[2.0, 0.0], [0.0, 1.0]])  # A = diag(2, 0.5)
      >>> g = jnp.array([[1.0], [1.0]])            # G = 1
      >>> grads = {"W": jnp.array([[1.0, 1.0]])}
      >>> u, _ = tx.update(grads, tx.init(params), layer_inputs={"dense": a},
      ...                  output_grads={"dense": g})
      >>> u["W"]
      Array([[0.5, 2. ]], dtype=float32)
    """
    layers = _check_layers(layers)
    check_range("decay", decay, 0.0, 1.0)
    check_range("damping", damping, 0.0)
    for name, power in (("input_power", input_power), ("output_power", output_power)):
        if not isinstance(power, jax.core.Tracer) and np.ndim(power) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {np.shape(power)}")
    if isinstance(refresh_every, bool) or not isinstance(refresh_every, int) or refresh_every < 1:
        raise ValueError(f"refresh_every must be a positive integer, got {refresh_every!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not isinstance(include_bias, bool):
        raise ValueError(f"include_bias must be a bool, got {include_bias!r}")

    def has_bias(name):
        return include_bias and layers[name][1] is not None

    def kernel_of(tree, name):
        kernel_key = layers[name][0]
        if not isinstance(tree, Mapping) or kernel_key not in tree:
            raise ValueError(f"layer {name!r}: no parameter {kernel_key!r} in a flat dict")
        return tree[kernel_key]

    def init_fn(params):
        factors = {}
        for name in layers:
            kernel = kernel_of(params, name)
            d_out, d_in = _kernel_dims(kernel.shape, layout)
            bias_key = layers[name][1]
            if has_bias(name) and np.size(params.get(bias_key)) != d_out:
                raise ValueError(
                    f"layer {name!r}: bias {bias_key!r} must have {d_out} entries, "
                    f"got {np.shape(params.get(bias_key))}"
                )
            d_in += has_bias(name)
            dtype = _stats_dtype(kernel.dtype)
            factors[name] = LayerFactors(
                jnp.zeros((d_in, d_in), dtype),
                jnp.zeros((d_out, d_out), dtype),
                jnp.eye(d_in, dtype=dtype),
                jnp.eye(d_out, dtype=dtype),
            )
        return ScaleByKFACState(jnp.zeros([], jnp.int32), factors)

    def update_factors(state, layer_inputs, output_grads):
        """The EMA of §5; the first update (count 0) takes the batch statistics as they are."""
        weight = jnp.where(state.count == 0, 1.0, 1.0 - decay)
        factors = {}
        for name, old in state.factors.items():
            dtype = old.input_factor.dtype
            for arg, value in (("layer_inputs", layer_inputs), ("output_grads", output_grads)):
                if np.ndim(value[name]) != 2:
                    raise ValueError(
                        f"{arg}[{name!r}] must be (N, d), got shape {np.shape(value[name])}"
                    )
            a_new = input_factor(layer_inputs[name], include_bias=has_bias(name), dtype=dtype)
            g_new = output_factor(output_grads[name], dtype=dtype)
            if a_new.shape != old.input_factor.shape or g_new.shape != old.output_factor.shape:
                raise ValueError(
                    f"layer {name!r}: layer_inputs/output_grads give factors of shapes "
                    f"{a_new.shape}, {g_new.shape}; the kernel needs "
                    f"{old.input_factor.shape}, {old.output_factor.shape}"
                )
            w = weight.astype(dtype)
            factors[name] = old._replace(
                input_factor=old.input_factor + w * (a_new - old.input_factor),
                output_factor=old.output_factor + w * (g_new - old.output_factor),
            )
        return factors

    def power_of(factor, power, stored):
        return stored if _is_zero(power) else damped_power(factor, power, damping)

    def refresh(factors):
        return {
            name: f._replace(
                input_preconditioner=power_of(f.input_factor, input_power, f.input_preconditioner),
                output_preconditioner=power_of(
                    f.output_factor, output_power, f.output_preconditioner
                ),
            )
            for name, f in factors.items()
        }

    def precondition_layer(updates, name, factors):
        """``[∇W | ∇b] ← G^q [∇W | ∇b] A^p``, back in the updates' shapes and dtypes."""
        kernel_key, bias_key = layers[name]
        kernel = kernel_of(updates, name)
        matrix = _to_matrix(kernel, layout).astype(factors.input_factor.dtype)
        d_in = matrix.shape[1]
        if has_bias(name):
            bias = updates[bias_key]
            matrix = jnp.concatenate([matrix, bias.reshape(-1, 1).astype(matrix.dtype)], axis=1)
        matrix = kronecker_precondition(matrix, factors, input_power, output_power)
        out = {kernel_key: _from_matrix(matrix[:, :d_in], kernel, layout)}
        if has_bias(name):
            out[bias_key] = matrix[:, d_in].reshape(bias.shape).astype(bias.dtype)
        return out

    def update_fn(
        updates, state, params=None, *, layer_inputs=None, output_grads=None, step=None, **extra
    ):
        del params, extra
        missing = [
            arg
            for arg, value in (("layer_inputs", layer_inputs), ("output_grads", output_grads))
            if value is None
        ]
        if missing:
            raise ValueError(f"kfac needs the extra arguments {missing} in update(...)")
        for arg, value in (("layer_inputs", layer_inputs), ("output_grads", output_grads)):
            absent = [name for name in layers if name not in value]
            if absent:
                raise ValueError(f"{arg} lacks the layers {absent}")

        factors = update_factors(state, layer_inputs, output_grads)
        if refresh_every == 1:
            factors = refresh(factors)
        else:
            index = state.count if step is None else step
            factors = jax.lax.cond(index % refresh_every == 0, refresh, lambda f: f, factors)

        new_updates = dict(updates)
        for name in layers:
            new_updates.update(precondition_layer(updates, name, factors[name]))
        return new_updates, ScaleByKFACState(state.count + 1, factors)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def kfac(
    learning_rate,
    layers,
    *,
    decay: float = 0.95,
    damping: float = 1e-3,
    input_power: float = -1.0,
    output_power: float = -1.0,
    include_bias: bool = True,
    refresh_every: int = 1,
    layout: str = "out_in",
    momentum: float | None = 0.9,
) -> optax.GradientTransformationExtraArgs:
    """K-FAC with heavy-ball momentum: ``θ ← θ − lr · trace(G^q ∇ A^p)``.

    Args:
      learning_rate: a float or an optax schedule.
      layers, decay, damping, input_power, output_power, include_bias, refresh_every, layout:
        see :func:`scale_by_kfac`.
      momentum: ``optax.trace`` decay; ``0`` or ``None`` for none.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; call ``update(grads, state, params,
      layer_inputs=..., output_grads=...)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxprecond.tasks.student import init_mlp
      >>> from jaxprecond.tasks.student import regression_loss
      >>> params = init_mlp(jax.random.key(0), 3, 4, scale=0.1)
      >>> x = jax.random.normal(jax.random.key(1), (16, 3))
      >>> y = x[:, 0]
      >>> loss = lambda p: regression_loss(p, x, y, weight_decay=0.0, n_train=16)
      >>> tx = kfac(0.1, MLP_LAYERS, damping=1e-2, momentum=None)
      >>> @jax.jit
      ... def step(params, state):
      ...     inputs, out_grads = mlp_kfac_statistics(params, x, y)
      ...     u, state = tx.update(jax.grad(loss)(params), state, params,
      ...                          layer_inputs=inputs, output_grads=out_grads)
      ...     return optax.apply_updates(params, u), state
      >>> state, start = tx.init(params), loss(params)
      >>> for _ in range(20):
      ...     params, state = step(params, state)
      >>> bool(loss(params) < 0.05 * start)
      True
    """
    if momentum is not None:
        check_range("momentum", momentum, 0.0, 1.0)
    return optax.chain(
        scale_by_kfac(
            layers,
            decay=decay,
            damping=damping,
            input_power=input_power,
            output_power=output_power,
            include_bias=include_bias,
            refresh_every=refresh_every,
            layout=layout,
        ),
        optax.trace(momentum) if momentum else optax.identity(),
        optax.scale_by_learning_rate(learning_rate),
    )


def mlp_kfac_statistics(params, x, y, *, n_train=None, precision=Precision.HIGHEST):
    """K-FAC's statistics for jaxprecond's MLP under the loss ``L = mean((f(x) − y)²)``.

    The pre-activations ``s1 = x W1ᵀ + b1`` and ``s2 = relu(s1) W2 + b2`` get zero "taps" whose
    gradients are ``∂L/∂s`` (one reverse pass); they are scaled by ``N`` so that
    ``g_i = N ∂L/∂s_i`` is example i's own gradient, ``2(f(x_i) − y_i)`` at the output. These
    are gradients at the observed targets, so ``G`` is the empirical Fisher's factor.

    Args:
      params: the MLP parameters ``{"W1": (dh, dx), "b1", "W2": (dh,), "b2"}``.
      x: ``(N, dx)`` inputs.
      y: ``(N,)`` targets.
      n_train: the ``N`` multiplying ``∂L/∂s`` (default ``len(x)``).
      precision: matmul precision.

    Returns:
      ``(layer_inputs, output_grads)`` for :data:`MLP_LAYERS`: inputs ``x`` and ``relu(s1)``,
      output grads ``(N, dh)`` and ``(N, 1)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxprecond.tasks.student import init_mlp
      >>> params = init_mlp(jax.random.key(0), 2, 3)
      >>> inputs, grads = mlp_kfac_statistics(params, jnp.zeros((4, 2)), jnp.ones(4))
      >>> inputs["layer2"].shape, grads["layer2"][:, 0]  # 2 (f − y) with f = 0
      ((4, 3), Array([-2., -2., -2., -2.], dtype=float32))
    """
    n = x.shape[0] if n_train is None else n_train

    def loss(taps):
        s1 = jnp.matmul(x, params["W1"].T, precision=precision) + params["b1"] + taps[0]
        h = jax.nn.relu(s1)
        s2 = jnp.matmul(h, params["W2"], precision=precision) + params["b2"] + taps[1]
        return jnp.mean((s2 - y) ** 2), h

    dtype = params["W1"].dtype
    taps = (jnp.zeros((x.shape[0], params["W1"].shape[0]), dtype), jnp.zeros(x.shape[:1], dtype))
    (g1, g2), h = jax.grad(loss, has_aux=True)(taps)
    inputs = {"layer1": x, "layer2": h}
    return inputs, {"layer1": n * g1, "layer2": n * g2[:, None]}
