"""JAX's persistent compilation cache, on by default for jaxprecond's runs.

Compiling a sweep's programs takes most of a short run's time (on a 2-core CPU, about 125 of
the 200 s of a cold ``jaxprecond reproduce --quick``, issue 14). With the cache, a program
compiled once is written to disk and read back by the next run that builds the same program,
in this process or any later one.

:func:`enable` turns it on: the command line calls it before anything is compiled, and so does
every run function (:func:`jaxprecond.engine.sweep.run`, hence ``Experiment.sweep``,
``jaxprecond.reproduce.reproduce`` and ``jaxprecond.report.run_sweep_file``). Importing
jaxprecond changes no JAX setting. The cache lives in the user's cache folder,
``$XDG_CACHE_HOME/jaxprecond/xla`` (``~/.cache/jaxprecond/xla``), never in a run folder.

Choosing:

- ``JAXPRECOND_COMPILE_CACHE=0`` (or ``false``, ``no``, ``off``) turns it off;
  ``JAXPRECOND_COMPILE_CACHE=/some/folder`` puts it there.
- ``jaxprecond --no-compile-cache ...`` turns it off for one command; from Python,
  :func:`disable` turns it off for the rest of the process.
- A cache folder of your own (``JAX_COMPILATION_CACHE_DIR``, or
  ``jax.config.update("jax_compilation_cache_dir", ...)`` before the run) is used as it is,
  with your other cache settings: jaxprecond changes nothing then.

Every program is written, however quickly it compiled (JAX's
``jax_persistent_cache_min_compile_time_secs`` is set to 0 unless
``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` says otherwise), so that a warm run compiles
nothing; the folder is not size-limited (delete it at any time). As JAX warns,
the cache is trusted code: do not point it at a folder others may write to.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The environment variable: ``0`` (off), a folder, or unset/``1`` (the default folder).
ENV = "JAXPRECOND_COMPILE_CACHE"
OFF = frozenset({"0", "false", "no", "off"})
ON = frozenset({"", "1", "true", "yes", "on"})

#: This process's state: turned off by :func:`disable`; the folder :func:`enable` set.
_state: dict = {"disabled": False, "ours": None, "min_compile_time": None}


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/jaxprecond/xla`` (``XDG_CACHE_HOME`` defaults to ``~/.cache``).

    Example:
      >>> default_folder().parts[-2:]
      ('jaxprecond', 'xla')
    """
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "jaxprecond" / "xla"


def chosen_folder() -> Path | None:
    """The folder ``$JAXPRECOND_COMPILE_CACHE`` chooses (unset: :func:`default_folder`);
    ``None`` when it turns the cache off.

    Example:
      >>> from unittest import mock
      >>> with mock.patch.dict("os.environ", {ENV: "off"}):
      ...     print(chosen_folder())
      None
      >>> with mock.patch.dict("os.environ", {ENV: "/tmp/my-cache"}):
      ...     print(chosen_folder())
      /tmp/my-cache
    """
    value = os.environ.get(ENV, "").strip()
    if value.lower() in OFF:
        return None
    if value.lower() in ON:
        return default_folder()
    return Path(value).expanduser().absolute()


def _theirs() -> str | None:
    """A cache folder the user chose through JAX itself (its setting or its variable)."""
    import jax

    return jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR")


def enable() -> str | None:
    """Turn the persistent compilation cache on for this process (once; later calls do nothing).

    Returns:
      The cache folder in use: the one set here, or the user's own (left as it is); ``None``
      when turned off (``JAXPRECOND_COMPILE_CACHE=0`` or :func:`disable`).
    """
    import jax

    if _state["disabled"]:
        return None
    if _state["ours"] is not None or _theirs():
        return _theirs()
    path = chosen_folder()
    if path is None:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        _state["min_compile_time"] = jax.config.jax_persistent_cache_min_compile_time_secs
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    _state["ours"] = str(path)
    return str(path)


def disable() -> None:
    """Turn the cache off for the rest of this process: :func:`enable` does nothing any more,
    and a cache it had turned on is turned off (the folder stays on disk). A cache folder of
    the user's own is left alone.
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    _state["disabled"] = True
    if _state["ours"] is None:
        return
    if jax.config.jax_compilation_cache_dir == _state["ours"]:
        jax.config.update("jax_compilation_cache_dir", None)
        if _state["min_compile_time"] is not None:
            jax.config.update(
                "jax_persistent_cache_min_compile_time_secs", _state["min_compile_time"]
            )
        compilation_cache.reset_cache()
    _state["ours"] = _state["min_compile_time"] = None
