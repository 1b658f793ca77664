"""AdaHessian (Yao et al., 2021) and the Hutchinson estimate of the Hessian diagonal it uses.

AdaHessian scales the first moment of the gradient by a power of the second moment of a
Hessian-diagonal estimate ``D = z ⊙ (H z)`` (Hutchinson; ``z`` a Rademacher probe):

    m ← β1 m + (1 − β1) g,    v ← β2 v + (1 − β2) D²,
    θ ← θ − lr / (1 − β1ᵗ) · m / ((v / (1 − β2ᵗ))^(k/2) + ε),

with ``k`` the ``hessian_power`` (the paper's AdaHessian arm uses ``k = −p``). This is the update
rule of the common PyTorch implementation (pytorch-optimizer), checked against runs of it.

The authors ran pytorch-optimizer 3.x, whose "Rademacher" draw is ``randint(0, 1)·2 − 1``,
always −1: their ``D`` is ``(−1) ⊙ H(−1) = H·1``, the Hessian's row sums, not its diagonal.
``probe="minus_ones"`` reproduces that; ``probe="rademacher"`` is the estimator of the paper.

References:
  Yao, Gholami, Shen, Mustafa, Keutzer, Mahoney, "ADAHESSIAN: An Adaptive Second Order
  Optimizer for Machine Learning", AAAI 2021, arXiv 2006.00719.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxprecond.checks import check_range

PROBES = ("rademacher", "minus_ones")


def _probe_like(key, params, probe: str):
    if probe == "minus_ones":
        return jax.tree.map(lambda p: -jnp.ones_like(p), params)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    signs = [jax.random.rademacher(k, p.shape, p.dtype) for k, p in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(tree, signs)


def hessian_vector_product(obj_fn, params, vector):
    """``H v`` of ``obj_fn`` at ``params`` by forward-over-reverse differentiation.

    Args:
      obj_fn: scalar objective of the parameters.
      params: where to evaluate the Hessian ``H``.
      vector: a pytree like ``params``, the ``v`` to multiply.

    Returns:
      ``H v``, a pytree like ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> a = jnp.array([[2.0, 1.0], [1.0, 3.0]])
      >>> f = lambda w: 0.5 * w @ a @ w + jnp.sum(w)
      >>> hessian_vector_product(f, jnp.zeros(2), jnp.array([1.0, 0.0]))
      Array([2., 1.], dtype=float32)
    """
    return jax.jvp(jax.grad(obj_fn), (params,), (vector,))[1]


def hutchinson_diagonal(obj_fn, params, key, *, samples: int = 1, probe: str = "rademacher"):
    """Hutchinson's estimate of the Hessian diagonal, ``mean_s z_s ⊙ (H z_s)``.

    Args:
      obj_fn: scalar objective of the parameters.
      params: where to evaluate the Hessian.
      key: PRNG key for the probes.
      samples: number of probes averaged.
      probe: ``"rademacher"`` (unbiased for diag H) or ``"minus_ones"`` (``z = −1``, which gives
        the row sums ``H·1``: what the authors' code computed).

    Returns:
      A pytree like ``params``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> f = lambda w: 0.5 * w @ jnp.array([[2.0, 1.0], [1.0, 3.0]]) @ w
      >>> hutchinson_diagonal(f, jnp.zeros(2), jax.random.key(0), probe="minus_ones")
      Array([3., 4.], dtype=float32)
    """
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")

    def one(k):
        z = _probe_like(k, params, probe)
        hz = hessian_vector_product(obj_fn, params, z)
        return jax.tree.map(jnp.multiply, z, hz)

    estimates = jax.lax.map(one, jax.random.split(key, samples))
    return jax.tree.map(lambda e: jnp.mean(e, axis=0), estimates)


class ScaleByAdaHessianState(NamedTuple):
    """State of :func:`scale_by_adahessian`.

    Attributes:
      count: steps taken (int32).
      mu: first moment of the gradient.
      nu: second moment of the Hessian-diagonal estimate (kept in float32 at least).
      diagonal: the last estimate ``D`` (reused between refreshes).
      key: PRNG key for the probes.

    Example:
      >>> import jax.numpy as jnp
      >>> state = scale_by_adahessian().init({"w": jnp.ones((2, 3), jnp.bfloat16)})
      >>> state.count, state.mu["w"].shape, state.nu["w"].dtype
      (Array(0, dtype=int32), (2, 3), dtype('float32'))
    """

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    diagonal: optax.Updates
    key: jax.Array


def scale_by_adahessian(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    hessian_power: float = 1.0,
    *,
    update_interval: int = 1,
    samples: int = 1,
    probe: str = "rademacher",
    seed: int = 0,
) -> optax.GradientTransformationExtraArgs:
    """AdaHessian's direction ``m̂ / (v̂^(k/2) + ε)`` (without the learning rate).

    ``update`` needs the objective as the extra argument ``obj_fn`` (as ``optax.contrib.sophia``)
    to compute Hessian-vector products; ``probes=`` (a pytree like the parameters) replaces the
    random probe, e.g. to replay a stored run. With ``update_interval > 1`` the estimate is
    refreshed when ``step % update_interval == 0``, where ``step`` is an extra argument (pass
    the scan's own, unbatched step index: a counter kept in vmapped state is batched and makes
    ``lax.cond`` run both branches) or else the state's count.

    For ``k < 0`` a coordinate whose ``v`` is still 0 gets a zero update (no inf or NaN).

    It cannot be routed by ``optax.partition`` or ``optax.masked``: the Hessian-vector products
    need the objective as a function of the parameters the transform receives, and those hand
    it a masked subset. Precondition every parameter (as the paper does), or pass an
    ``obj_fn`` of the subset yourself.

    Args:
      b1, b2: decay rates of the first and second moments.
      eps: added to the denominator.
      hessian_power: ``k``; 1 is the paper's AdaHessian, the noise experiment uses ``−p``.
      update_interval: steps between Hessian-diagonal refreshes.
      samples: Hutchinson probes per refresh.
      probe: ``"rademacher"`` or ``"minus_ones"`` (see the module docstring).
      seed: seed of the probes' key: an int or a JAX PRNG key.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda w: jnp.sum(w ** 2)
      >>> tx = scale_by_adahessian(probe="minus_ones")
      >>> w = jnp.array([1.0, -2.0])
      >>> direction, _ = tx.update(jax.grad(loss)(w), tx.init(w), w, obj_fn=loss)
      >>> direction.round(3)  # m̂ / |D̂| = 2w / 2 on the first step
      Array([ 1., -2.], dtype=float32)
    """
    check_range("b1", b1, 0.0, 1.0)
    check_range("b2", b2, 0.0, 1.0)
    check_range("eps", eps, 0.0)
    for name, value in (("update_interval", update_interval), ("samples", samples)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")

    def init_fn(params):
        def stat(p):  # statistics in float32 at least, so 1 − β2ᵗ never rounds to 0
            return jnp.zeros_like(p, jnp.promote_types(p.dtype, jnp.float32))

        return ScaleByAdaHessianState(
            count=jnp.zeros([], jnp.int32),
            mu=jax.tree.map(stat, params),
            nu=jax.tree.map(stat, params),
            diagonal=jax.tree.map(stat, params),
            key=jax.random.key(seed) if isinstance(seed, int) else seed,
        )

    def update_fn(
        updates, state, params=None, *, obj_fn=None, probes=None, step=None, **extra_args
    ):
        del extra_args
        if params is None or obj_fn is None:
            raise ValueError("adahessian needs params and the objective (obj_fn=...) to update")
        key, subkey = jax.random.split(state.key)

        def estimate():
            if probes is not None:
                z = jax.tree.map(lambda z, p: z.astype(p.dtype), probes, params)
                hz = hessian_vector_product(obj_fn, params, z)
                d = jax.tree.map(jnp.multiply, z, hz)
            else:
                d = hutchinson_diagonal(obj_fn, params, subkey, samples=samples, probe=probe)
            return jax.tree.map(lambda d, old: d.astype(old.dtype), d, state.diagonal)

        if update_interval == 1:
            diagonal = estimate()
        else:
            index = state.count if step is None else step
            diagonal = jax.lax.cond(index % update_interval == 0, estimate, lambda: state.diagonal)
        count = state.count + 1
        mu = jax.tree.map(lambda m, g: m + (1 - b1) * (g.astype(m.dtype) - m), state.mu, updates)
        nu = jax.tree.map(lambda v, d: b2 * v + (1 - b2) * d * d, state.nu, diagonal)

        def direction(m, v, g):
            t = count.astype(m.dtype)  # statistics' dtype: float32 at least, float64 with x64
            bias1, bias2 = 1 - b1**t, 1 - b2**t
            v_hat = v / bias2
            positive = v_hat > 0
            powered = jnp.power(jnp.where(positive, v_hat, 1.0), hessian_power / 2)
            # v̂^(k/2) at v̂ = 0: 0 for k > 0, 1 for k = 0; for k < 0 it is infinite and the
            # update is 0, which the last `where` sets without forming inf or NaN.
            at_zero = jnp.where(jnp.asarray(hessian_power) > 0, 0.0, 1.0)
            denominator = jnp.where(positive, powered, at_zero) + eps
            ratio = jnp.where(positive | (jnp.asarray(hessian_power) >= 0), m / denominator, 0.0)
            return (ratio / bias1).astype(g.dtype)

        out = jax.tree.map(direction, mu, nu, updates)
        return out, ScaleByAdaHessianState(count, mu, nu, diagonal, key)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adahessian(
    learning_rate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    hessian_power: float = 1.0,
    weight_decay: float = 0.0,
    *,
    update_interval: int = 1,
    samples: int = 1,
    probe: str = "rademacher",
    seed: int = 0,
) -> optax.GradientTransformationExtraArgs:
    """AdaHessian with decoupled weight decay: ``θ ← θ(1 − lr·wd) − lr · m̂ / (v̂^(k/2) + ε)``.

    Args:
      learning_rate: a float or an optax schedule.
      b1, b2, eps, hessian_power, update_interval, samples, probe, seed: see
        :func:`scale_by_adahessian`.
      weight_decay: decoupled weight decay ``wd`` (applied to every parameter).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; call ``update(grads, state, params,
      obj_fn=loss)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> loss = lambda w: jnp.sum((w - 1.0) ** 2)
      >>> tx, w = adahessian(0.1), jnp.zeros(3)
      >>> state = tx.init(w)
      >>> step = jax.jit(lambda w, s: tx.update(jax.grad(loss)(w), s, w, obj_fn=loss))
      >>> for _ in range(100):
      ...     u, state = step(w, state)
      ...     w = w + u
      >>> bool(jnp.allclose(w, 1.0, atol=1e-2))
      True
    """
    check_range("weight_decay", weight_decay, 0.0)
    return optax.chain(
        scale_by_adahessian(
            b1,
            b2,
            eps,
            hessian_power,
            update_interval=update_interval,
            samples=samples,
            probe=probe,
            seed=seed,
        ),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(learning_rate),
    )
