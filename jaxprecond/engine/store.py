"""Files of a run folder, written atomically, and the environment that wrote them.

Every file is written to a temporary name and renamed, so a crash never leaves a half-written
file (the run folder's layout is in :mod:`jaxprecond.engine.folder`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from jaxprecond.checks import FolderError


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside ``path`` that replaces ``path`` when the block succeeds.

    If the block raises, the temporary file is removed and ``path`` is left untouched. The file
    gets the permissions of the user's umask. An ``OSError`` (a full disk, a read-only folder, a
    file where a folder is expected) becomes a :class:`~jaxprecond.checks.FolderError` naming
    ``path``.

    Args:
      path: the final destination (its parent folder is created if needed).

    Yields:
      A temporary ``Path`` in the same folder; write to it inside the block.

    Example:
      >>> import tempfile
      >>> from pathlib import Path
      >>> with tempfile.TemporaryDirectory() as d:
      ...     target = Path(d) / "sub" / "out.txt"
      ...     with atomic_path(target) as tmp:
      ...         _ = tmp.write_text("done")
      ...         print(target.exists())
      ...     try:
      ...         with atomic_path(target) as tmp:
      ...             _ = tmp.write_text("half")
      ...             raise RuntimeError("crash")
      ...     except RuntimeError:
      ...         pass
      ...     print(target.read_text(), sorted(p.name for p in target.parent.iterdir()))
      False
      done ['out.txt']
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except OSError as error:
        raise FolderError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def umask() -> int:
    """The process's file-mode creation mask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically.

    Args:
      path: the destination file (its parent folder is created if needed).
      text: the content.

    Example:
      >>> import tempfile
      >>> from pathlib import Path
      >>> with tempfile.TemporaryDirectory() as d:
      ...     write_text(Path(d) / "notes" / "a.txt", "hello")
      ...     print((Path(d) / "notes" / "a.txt").read_text())
      hello
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_arrays(path: Path, arrays: dict) -> None:
    """Write a dict of numpy arrays to ``path`` (``.npz``) atomically.

    Args:
      path: the destination ``.npz`` file.
      arrays: name → array (anything ``np.asarray`` accepts, e.g. JAX arrays).

    Example:
      >>> import tempfile
      >>> import numpy as np
      >>> from pathlib import Path
      >>> with tempfile.TemporaryDirectory() as d:
      ...     write_arrays(Path(d) / "a.npz", {"x": np.arange(3), "y": [[1.5]]})
      ...     with np.load(Path(d) / "a.npz") as f:
      ...         print(sorted(f.files), f["x"].tolist(), f["y"].shape)
      ['x', 'y'] [0, 1, 2] (1, 1)
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def read_arrays(path: Path) -> dict:
    """Read every array of an ``.npz`` file into memory.

    Args:
      path: an ``.npz`` file.

    Returns:
      A dict name → numpy array (the file is closed on return).

    Example:
      >>> import tempfile
      >>> import numpy as np
      >>> from pathlib import Path
      >>> with tempfile.TemporaryDirectory() as d:
      ...     write_arrays(Path(d) / "a.npz", {"loss": np.array([1.0, 0.5])})
      ...     arrays = read_arrays(Path(d) / "a.npz")
      >>> arrays["loss"].tolist()
      [1.0, 0.5]
    """
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def git_revision() -> str | None:
    """The git revision of the package's checkout, or ``None`` outside a git checkout.

    Returns:
      The full hexadecimal ``HEAD`` commit hash, or ``None`` if ``git`` is missing or the
      package does not live in a git checkout.

    Example:
      >>> rev = git_revision()
      >>> rev is None or (len(rev) == 40 and set(rev) <= set("0123456789abcdef"))
      True
    """
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
    """Package versions, Python, platform, JAX devices and the git revision.

    Returns:
      A JSON-serialisable dict with keys ``versions`` (package → version or ``None``),
      ``python``, ``platform``, ``devices`` and ``git_revision``.

    Example:
      >>> import platform
      >>> env = environment()
      >>> sorted(env)
      ['devices', 'git_revision', 'platform', 'python', 'versions']
      >>> env["python"] == platform.python_version(), "numpy" in env["versions"]
      (True, True)
    """
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
