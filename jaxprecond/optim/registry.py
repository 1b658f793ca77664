"""The optimizers of the paper's comparison by name, configured as optax transforms.

``make_optimizer(name, learning_rate, **options)`` returns an
``optax.GradientTransformationExtraArgs``. Its ``update`` accepts every oracle any of them needs,
so one training step serves all (see :func:`oracles`): ``obj_fn`` (the objective, for
Hessian-vector products: AdaHessian, Sophia-H), ``grad_fn`` (SAM's adversarial gradient),
``value``/``grad``/``value_fn`` (L-BFGS's line search), ``step`` (the scan's step index, for
refresh periods), ``inputs`` and ``targets`` (the batch: the online Σ^p, K-FAC's layer
statistics). Transforms ignore the oracles they do not use.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax

from jaxprecond.optim.adahessian import adahessian
from jaxprecond.optim.sam import sam


def only_oracles(transform, names) -> optax.GradientTransformationExtraArgs:
    """``transform`` receiving just the extra arguments in ``names`` (for transforms, such as
    optax's L-BFGS, that reject or forward the others).

    Args:
      transform: an optax transform.
      names: the extra (keyword) arguments to forward to ``transform.update``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with ``transform``'s ``init`` whose
      ``update`` drops every other extra argument.

    Example:
      >>> import jax.numpy as jnp
      >>> w = jnp.ones(2)
      >>> tx = only_oracles(optax.sgd(0.5), ())  # plain sgd rejects extra arguments
      >>> tx.update(jnp.ones(2), tx.init(w), w, **oracles(lambda p: p.sum(), w))[0]
      Array([-0.5, -0.5], dtype=float32)
      >>> spy = optax.GradientTransformationExtraArgs(
      ...     lambda p: (), lambda u, s, p=None, **extra: (u, sorted(extra)))
      >>> only_oracles(spy, ("grad", "value")).update(w, (), w, **oracles(jnp.sum, w))[1]
      ['grad', 'value']
    """

    def update_fn(updates, state, params=None, **extra_args):
        kept = {k: v for k, v in extra_args.items() if k in names}
        return transform.update(updates, state, params, **kept)

    return optax.GradientTransformationExtraArgs(transform.init, update_fn)


def _gd(learning_rate, **options):
    return optax.sgd(learning_rate, **options)


def _momentum(learning_rate, momentum: float = 0.9, **options):
    return optax.sgd(learning_rate, momentum=momentum, **options)


def _lbfgs(learning_rate, **options):
    return only_oracles(optax.lbfgs(learning_rate, **options), ("value", "grad", "value_fn"))


def _sophia_h(learning_rate, **options):
    return optax.contrib.sophia(learning_rate, **options)


def _covariance_power(learning_rate, covariance, power, **options):
    from jaxprecond.optim.covariance_power import covariance_power

    options.setdefault("layout", "out_in")
    return covariance_power(learning_rate, covariance, power, **options)


def _shampoo(learning_rate, **options):
    from jaxprecond.optim.shampoo import shampoo

    return shampoo(learning_rate, **options)


def _kfac(learning_rate, *, layers=None, statistics=None, **options):
    """K-FAC whose layer statistics come from the batch oracles: ``statistics(params, inputs,
    targets) -> (layer_inputs, output_grads)`` for ``layers`` (default: jaxprecond's
    regression MLP, :func:`~jaxprecond.optim.kfac.mlp_kfac_statistics`)."""
    from jaxprecond.optim.kfac import MLP_LAYERS, kfac, mlp_kfac_statistics

    if (layers is None) != (statistics is None):
        raise ValueError("kfac: give both layers=... and statistics=..., or neither")
    if layers is None:
        layers, statistics = MLP_LAYERS, mlp_kfac_statistics
    inner = kfac(learning_rate, layers, **options)

    def update_fn(updates, state, params=None, *, inputs=None, targets=None, **extra_args):
        if inputs is None or targets is None:
            raise ValueError("kfac needs the batch: inputs=... and targets=...")
        layer_inputs, output_grads = statistics(params, inputs, targets)
        return inner.update(
            updates,
            state,
            params,
            layer_inputs=layer_inputs,
            output_grads=output_grads,
            **extra_args,
        )

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


OPTIMIZERS: dict[str, Callable] = {
    "gd": _gd,
    "momentum": _momentum,
    "adam": optax.adam,
    "sam": sam,  # momentum SGD outside, as the authors ran it
    "lbfgs": _lbfgs,
    "sophia_h": _sophia_h,
    "adahessian": adahessian,
    "covariance_power": _covariance_power,
    "shampoo": _shampoo,
    "kfac": _kfac,
}


def weight_decay_coupling(name: str, weight_decay) -> tuple[dict, float]:
    """Where optimizer ``name`` takes weight decay ``wd``: the one rule, for every experiment.

    AdaHessian decays the weights itself, decoupled (``θ ← θ(1 − lr·wd) − …``), with a plain
    loss, as the paper's AdaHessian arm and the authors' pytorch-optimizer do. SAM adds
    ``wd · w`` in its outer SGD step, with a plain loss, as torch's SGD inside the authors' SAM
    does (so the ascent direction and the adversarial gradient carry no L2 term). Every other
    optimizer sees ``wd`` as the loss's coupled L2 term; Sophia-H's own decoupled decay
    (optax's default 1e-4) is switched off so that the term counts once.

    Args:
      name: a name of :data:`OPTIMIZERS` (``covariance_power`` for Σ^p).
      weight_decay: ``wd`` (may be traced).

    Returns:
      ``(options, loss_weight_decay)``: keywords for :func:`make_optimizer` and the loss's
      coupled coefficient.

    Example:
      >>> weight_decay_coupling("sam", 1e-4), weight_decay_coupling("gd", 1e-4)
      (({'weight_decay': 0.0001}, 0.0), ({}, 0.0001))
    """
    if name in ("adahessian", "sam"):
        return {"weight_decay": weight_decay}, 0.0
    if name == "sophia_h":
        return {"weight_decay": 0.0}, weight_decay
    return {}, weight_decay


def make_optimizer(name: str, learning_rate, **options) -> optax.GradientTransformationExtraArgs:
    """The optimizer called ``name`` in the paper's comparison, accepting every oracle.

    Args:
      name: one of :data:`OPTIMIZERS`.
      learning_rate: a float or an optax schedule (``None`` lets L-BFGS use its line search's
        step alone).
      **options: passed to the optimizer's factory (e.g. ``momentum``, ``rho`` for SAM,
        ``hessian_power`` for AdaHessian, ``covariance`` and ``power`` for Σ^p).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = make_optimizer("momentum", 0.1)
      >>> w = jnp.zeros(2)
      >>> tx.update(jnp.ones(2), tx.init(w), w, **oracles(lambda p: p.sum(), w))[0]
      Array([-0.1, -0.1], dtype=float32)
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return optax.with_extra_args_support(OPTIMIZERS[name](learning_rate, **options))


def oracles(obj_fn, params, *, value=None, grad=None, step=None, inputs=None, targets=None) -> dict:
    """Every extra argument the registry's optimizers may ask for, for one step.

    Args:
      obj_fn: the step's objective as a function of the parameters.
      params: the current parameters.
      value, grad: the objective's value and gradient there, if already computed.
      step: the scan's own (unbatched) step index.
      inputs: the batch's first-layer inputs.
      targets: the batch's targets (K-FAC computes its layer statistics from the batch).

    Returns:
      A dict of keyword arguments for ``update``.

    Example:
      >>> import jax.numpy as jnp
      >>> extra = oracles(lambda p: (p**2).sum(), jnp.array([1.0, 2.0]), step=0)
      >>> sorted(extra)
      ['grad', 'grad_fn', 'obj_fn', 'step', 'value', 'value_fn']
      >>> float(extra["value"]), extra["grad"].tolist()
      (5.0, [2.0, 4.0])
    """
    if value is None or grad is None:
        value, grad = jax.value_and_grad(obj_fn)(params)
    extra = {
        "obj_fn": obj_fn,
        "grad_fn": lambda p, _: jax.grad(obj_fn)(p),
        "value": value,
        "grad": grad,
        "value_fn": obj_fn,
    }
    if step is not None:
        extra["step"] = step
    if inputs is not None:
        extra["inputs"] = inputs
    if targets is not None:
        extra["targets"] = targets
    return extra
