"""The experiments, one module each: settings, a per-seed function, a table and a figure.

Each module's ``EXPERIMENT`` is an :class:`~jaxprecond.engine.experiment.Experiment`; the engine
sweeps, resumes, reports and builds the command of every one alike. :func:`find` gives one by
name (importing only its module), or a user's own from ``"module:NAME"`` or ``"file.py:NAME"``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from pathlib import Path

from jaxprecond.checks import SettingError

#: The experiments of this package, by name.
NAMES = ("noise", "transfer", "ood", "rotated")


def find(name: str, *, folder=None):
    """The experiment called ``name``: one of :data:`NAMES`, ``"package.module:NAME"``, or
    ``"path/to/file.py:NAME"`` (relative to ``folder``).

    Raises:
      SettingError: no such experiment.

    Example:
      >>> find("noise").name, find("jaxprecond.experiments.ood:EXPERIMENT").name
      ('noise', 'ood')
    """
    if name in NAMES:
        return importlib.import_module(f"jaxprecond.experiments.{name}").EXPERIMENT
    where, _, attribute = str(name).rpartition(":")
    try:
        if where.endswith(".py"):
            path = Path(folder or ".", where).resolve()
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            where = str(path)
        else:
            module = importlib.import_module(where)
        experiment = getattr(module, attribute)
    except (ImportError, OSError, AttributeError, ValueError) as error:
        raise SettingError(
            f"experiment must be one of {NAMES}, 'module:NAME' or 'file.py:NAME'; "
            f"{name!r} cannot be loaded ({error})"
        ) from None
    return dataclasses.replace(experiment, source=f"{where}:{attribute}")
