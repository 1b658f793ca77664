"""Eager validation of hyper-parameters, shared by the transforms' factories."""

from __future__ import annotations

import jax


def check_range(name: str, value, low, high=None) -> None:
    """Raise ``ValueError`` naming ``value`` unless ``low <= value`` (and ``value < high``).

    Traced values (inside ``optax.inject_hyperparams`` or ``vmap``) are not checked.

    Example:
      >>> check_range("b1", 0.9, 0.0, 1.0)
      >>> check_range("eps", -1.0, 0.0)
      Traceback (most recent call last):
      ...
      ValueError: eps must be in >= 0.0, got -1.0
    """
    if isinstance(value, jax.core.Tracer):
        return
    if not (low <= value and (high is None or value < high)):
        bound = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {bound}, got {value!r}")
