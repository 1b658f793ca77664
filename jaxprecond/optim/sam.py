"""Sharpness-aware minimisation (Foret et al., 2021) with momentum SGD outside, as the authors ran.

One step from ``w``, with ``g = ∇L(w)`` the gradient of the loss *without* its L2 term:

    e = ρ · g / (‖g‖ + ε)                      (ascent to the adversarial point; global norm)
    d = ∇L(w + e) + wd · w                     (torch SGD's coupled weight decay, at ``w``)
    b ← μ b + d,    w ← w − lr · b             (torch SGD: dampening 0, no Nesterov, b₀ = 0)

This is the SAM of the authors' OOD script: ``SAM(params, base_optimizer=torch.optim.SGD,
rho=0.05, eps=1e-8, lr, weight_decay=1e-4, momentum=0.9)``, the common PyTorch implementation
(davda54/sam, non-adaptive) with ``eps`` added to the gradient norm. The loss it sees carries no
L2 term: torch's ``weight_decay`` enters SGD's step, not the gradient that sets the ascent
direction, and it is taken at ``w``, not at ``w + e``.

References:
  Foret, Kleiner, Mobahi, Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving
  Generalization", ICLR 2021, arXiv 2010.01412.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxprecond.checks import check_range


def scale_by_sam(rho: float = 0.05, *, eps: float = 1e-8, weight_decay=0.0):
    """SAM's gradient ``∇L(w + ρ g/(‖g‖ + ε)) + wd · w`` (before momentum and learning rate).

    ``update(grads, state, params, grad_fn=...)`` needs the loss's gradient as the extra
    argument ``grad_fn(params, None)`` (the oracle of :func:`~jaxprecond.optim.registry.oracles`,
    as ``optax.contrib.sam``'s opaque mode) to evaluate it at the adversarial point; ``grads``
    is ``∇L(w)``.

    Args:
      rho: ``ρ``, the length of the ascent step.
      eps: ``ε``, added to the global gradient norm.
      weight_decay: ``wd``, coupled L2 added at ``w`` (may be traced).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (stateless).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> loss = lambda w: jnp.sum(w**4)
      >>> w = jnp.array([1.0, 0.0])
      >>> tx = scale_by_sam(rho=0.5)
      >>> grad_fn = lambda p, _: jax.grad(loss)(p)
      >>> tx.update(jax.grad(loss)(w), tx.init(w), w, grad_fn=grad_fn)[0]  # 4 (1 + 0.5)³
      Array([13.5,  0. ], dtype=float32)
    """
    check_range("rho", rho, 0.0)
    check_range("eps", eps, 0.0)
    check_range("weight_decay", weight_decay, 0.0)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, *, grad_fn=None, **extra_args):
        del extra_args
        if params is None or grad_fn is None:
            raise ValueError("sam needs params and the loss's gradient (grad_fn=...) to update")
        norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(updates)))
        scale = rho / (norm + eps)
        adversarial = jax.tree.map(lambda w, g: w + scale * g, params, updates)
        sharp = grad_fn(adversarial, None)
        return jax.tree.map(lambda g, w: g + weight_decay * w, sharp, params), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def sam(
    learning_rate,
    rho: float = 0.05,
    *,
    momentum: float = 0.9,
    weight_decay=0.0,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    """SAM with momentum SGD outside (the defaults are the authors' OOD settings).

    Args:
      learning_rate: a float or an optax schedule.
      rho, eps, weight_decay: see :func:`scale_by_sam`.
      momentum: ``μ`` of the outer SGD (0 for plain SGD).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; call ``update(grads, state, params,
      grad_fn=...)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> loss = lambda w: jnp.sum((w - 1.0) ** 2)
      >>> tx, w = sam(0.05), jnp.zeros(3)
      >>> state = tx.init(w)
      >>> step = jax.jit(lambda w, s: tx.update(
      ...     jax.grad(loss)(w), s, w, grad_fn=lambda p, _: jax.grad(loss)(p)))
      >>> for _ in range(200):
      ...     u, state = step(w, state)
      ...     w = w + u
      >>> bool(jnp.allclose(w, 1.0, atol=0.05))  # within ρ of the minimum
      True
    """
    check_range("momentum", momentum, 0.0, 1.0)
    return optax.chain(
        scale_by_sam(rho, eps=eps, weight_decay=weight_decay),
        optax.sgd(learning_rate, momentum=momentum or None),
    )
