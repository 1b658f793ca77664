"""Run folders: arrays, the full config and the environment, written atomically.

A run folder holds ``arrays.npz`` (the results), ``config.json`` (every setting),
``environment.json`` (package versions, devices, git revision) and whatever reports the
experiment adds. Every file is written to a temporary name and renamed, so a crash never leaves
a half-written file, and an existing run is never overwritten unless asked.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

ARRAYS = "arrays.npz"
CONFIG = "config.json"
ENVIRONMENT = "environment.json"


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside ``path`` that replaces ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_arrays(path: Path, arrays: dict) -> None:
    """Write a dict of numpy arrays to ``path`` (``.npz``) atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def read_arrays(path: Path) -> dict:
    """Read every array of an ``.npz`` file into memory."""
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def git_revision() -> str | None:
    """The git revision of the package's checkout, or ``None`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment() -> dict:
    """Package versions, Python, platform, JAX devices and the git revision."""
    import jax

    versions = {}
    for name in ("jaxprecond", "jax", "jaxlib", "optax", "chex", "numpy", "scipy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "versions": versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "devices": [str(d) for d in jax.devices()],
        "git_revision": git_revision(),
    }


def prepare_run_dir(directory, *, overwrite: bool = False) -> Path:
    """Create ``directory``; refuse (``FileExistsError``) if it already holds results."""
    directory = Path(directory)
    if (directory / ARRAYS).exists() and not overwrite:
        raise FileExistsError(
            f"{directory} already holds results ({ARRAYS}); choose another folder or pass "
            "overwrite=True (--overwrite)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def save_run(directory, arrays: dict, config: dict, *, overwrite: bool = False) -> Path:
    """Write a run folder: arrays, config and environment.

    Args:
      directory: the folder (created if needed).
      arrays: name → numpy array.
      config: a JSON-serialisable dict of every setting.
      overwrite: replace existing results instead of refusing.

    Returns:
      The folder's path.
    """
    directory = prepare_run_dir(directory, overwrite=overwrite)
    write_text(directory / CONFIG, json.dumps(config, indent=2) + "\n")
    write_text(directory / ENVIRONMENT, json.dumps(environment(), indent=2) + "\n")
    write_arrays(directory / ARRAYS, arrays)
    return directory


def load_run(directory) -> tuple[dict, dict]:
    """Read a run folder written by :func:`save_run`: ``(arrays, config)``."""
    directory = Path(directory)
    if not (directory / ARRAYS).exists():
        raise FileNotFoundError(f"{directory} holds no results ({ARRAYS} is missing)")
    config = json.loads((directory / CONFIG).read_text())
    return read_arrays(directory / ARRAYS), config
