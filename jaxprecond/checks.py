"""Eager validation shared by every layer: the user's errors and a range check for factories.

A :class:`UserError` is bad input from the user (a setting, a file, a folder) named by its
message: the command line prints it on one line and exits with status 2. Any other exception is
a programming error and keeps its traceback.
"""

from __future__ import annotations

import jax


class UserError(Exception):
    """Bad input from the user, named by the message (the command line exits 2)."""


class SettingError(UserError, ValueError):
    """A setting out of range, of the wrong type, or unknown.

    Example:
      >>> isinstance(SettingError("steps must be positive"), ValueError)
      True
    """


class MissingFile(UserError, FileNotFoundError):
    """A file or folder the command needs is not there (a data set, a run folder)."""


class FolderError(UserError, OSError):
    """A file or folder cannot be written: a full disk, a read-only mount, a file where a folder
    is expected (the message names the path)."""


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
