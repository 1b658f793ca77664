"""The run folder: the only copy of a sweep's compute, the same for every experiment.

::

    manifest.json        the run: experiment, settings, axes (which are traced), chunk size,
                         where a user's definition lives, the environment that created it
    chunks/seeds-A-B.npz seeds A..B-1 of every grid point, and the run that wrote them
    environment-K.json   package versions and devices of process K
    arrays.npz           every seed once finished (the chunks merged)
    report.md, figure.png  the experiment's table and figure (finished or partial)

Every file is written atomically (a crash leaves no half-written file) with the user's umask.
Every chunk records the run that wrote it, so a folder never mixes runs: a chunk of another run
(other settings, axes or chunk size) is refused, naming what differs, whether or not the
manifest is there; a missing manifest is rebuilt from the chunks; the manifest is created
exclusively, so two processes starting other runs into one folder cannot both win. A corrupt
or truncated chunk is moved aside (named, never deleted) and computed again.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

from jaxprecond.checks import FolderError, MissingFile, SettingError
from jaxprecond.engine.config import checked_fields, from_mapping, to_json
from jaxprecond.engine.results import SweepResults
from jaxprecond.engine.store import environment, read_arrays, umask, write_arrays

MANIFEST = "manifest.json"
CHUNKS = "chunks"
ARRAYS = "arrays.npz"
#: Settings that may differ between the chunks of one run (the chunk size is checked apart).
UNCHECKED = ("chunk_size", "memory_budget")


class RunFolderWarning(UserWarning):
    """A run folder was repaired: a corrupt chunk moved aside, a missing manifest rebuilt."""


def folder(out) -> Path | None:
    """``out`` as a run folder's path (``None`` stays ``None``).

    Raises:
      SettingError: ``out`` is empty.
      FolderError: ``out`` is a file.

    Example:
      >>> folder(None), folder("runs/x")
      (None, PosixPath('runs/x'))
    """
    if out is None:
        return None
    if not str(out).strip():
        raise SettingError(f"out must name a folder, got {str(out)!r}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise FolderError(f"{path} is a file, not a run folder")
    return path


def record(experiment, config, axes, chunk_size: int | None = None) -> dict:
    """The run as its manifest and each of its chunks record it (JSON values).

    Example:
      >>> from jaxprecond.experiments.noise import NOISE, NoiseConfig
      >>> from jaxprecond.engine.experiment import grid_axes
      >>> config, axes = grid_axes(NOISE, NoiseConfig())
      >>> run = record(NOISE, config, axes, chunk_size=4)
      >>> run["experiment"], run["axes"][1], run["traced"], run["config"]["chunk_size"]
      ('noise', ['p', [-1.0, -0.5, 0.0, 0.5, 1.0]], ['case', 'p', 'snr'], 4)
    """
    settings = dict(to_json(config), chunk_size=chunk_size)
    run = {
        "experiment": experiment.name,
        "config": settings,
        "axes": [[a.name, list(a.values)] for a in axes],
        "traced": [a.name for a in axes if a.traced],
        "source": experiment.source,
        "chunk_size": chunk_size,
    }
    return json.loads(json.dumps(run))


def differences(old: dict, new: dict, config) -> list[str]:
    """What differs between two runs' records: ``experiment``, ``axes``, ``config.<name>``.

    Settings that are not part of a run's identity (and the chunk size) are not compared.

    Example:
      >>> from jaxprecond.engine.config import Config
      >>> differences({"config": {"seeds": 2}}, {"config": {"seeds": 3}}, Config())
      ['config.seeds']
    """
    changed = [k for k in ("experiment", "axes") if old.get(k) != new.get(k)]
    old_config, fields = old.get("config", {}), checked_fields(config)
    for name, value in new["config"].items():
        if name not in UNCHECKED and fields[name].metadata["identity"]:
            changed += [f"config.{name}"] if old_config.get(name) != value else []
    return changed


def read_manifest(directory) -> dict | None:
    """The manifest of a run folder, or ``None`` if it has none.

    Raises:
      SettingError: the manifest is not valid JSON (the message names it).
      FolderError: it is a folder.
    """
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    if not path.is_file():
        raise FolderError(f"{path} is a folder, not a run's manifest")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SettingError(f"{path} cannot be read: {error}") from None


def chunk_path(directory: Path, start: int, stop: int) -> Path:
    """Where the chunk of seeds ``start … stop − 1`` is written."""
    return Path(directory) / CHUNKS / f"seeds-{start:08d}-{stop:08d}.npz"


def read_chunk(path) -> dict | None:
    """A chunk's arrays and its ``run`` record, or ``None`` if it is corrupt or truncated."""
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.testzip() is not None:
                return None
        arrays = read_arrays(path)
        arrays["run"] = json.loads(str(arrays["run"]))
        return arrays
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def write_chunk(directory: Path, start: int, stop: int, arrays: dict, run: dict) -> None:
    """Write one chunk, atomically, with the record of the run that computed it."""
    arrays = dict(arrays, run=np.array(json.dumps(run)))
    write_arrays(chunk_path(directory, start, stop), arrays)


def _chunks(directory: Path) -> list[Path]:
    """The chunk files of a run folder, in seed order.

    Raises:
      FolderError: ``chunks`` is there but is not a folder (the message names it).
    """
    chunks = Path(directory) / CHUNKS
    if chunks.exists() and not chunks.is_dir():
        raise FolderError(f"{chunks} is a file, not the run's folder of chunks")
    return sorted(chunks.glob("seeds-*.npz"))


def _first_run(directory: Path) -> dict | None:
    """The run recorded by the first readable chunk of ``directory``, or ``None``."""
    chunks = (read_chunk(path) for path in _chunks(directory))
    return next((chunk["run"] for chunk in chunks if chunk is not None), None)


def _refuse(path, changed, directory):
    raise SettingError(
        f"{path} was written by a run with other settings (differs in: {', '.join(changed)}); "
        f"move it out of {directory} or use another folder"
    )


def existing_run(directory: Path | None, run: dict, config) -> dict | None:
    """The run already in ``directory``: its manifest, or (missing) the record of its chunks.

    It writes nothing: a missing manifest is rebuilt by :func:`create`, once the run is known
    to be the folder's (its chunk size included).

    Raises:
      SettingError: the folder holds a run with other settings (the message names them).
      FolderError: ``chunks`` is a file.
    """
    if directory is None:
        return None
    existing, what = read_manifest(directory), "a run"
    if existing is None:
        existing, what = _first_run(directory), f"no {MANIFEST} but chunks of a run"
    if existing is not None:
        changed = differences(existing, run, config)
        if changed:
            raise SettingError(
                f"{directory} holds {what} with other settings (differs in: "
                f"{', '.join(changed)}); use another folder"
            )
    return existing


def create(directory: Path, run: dict, config) -> dict:
    """Write the manifest of ``run`` unless one is there; return the manifest in force.

    The manifest is created exclusively (a hard link of a finished temporary file): of two
    processes starting into one folder at once, one writes it and the other reads it; a process
    of another run is then refused.

    A manifest written into a folder that already holds chunks of the run is a rebuilt one:
    a :class:`RunFolderWarning` says so, once it is written.

    Raises:
      SettingError: another run's manifest got there first.
      FolderError: the folder cannot be written, or ``chunks`` is a file.
    """
    path = directory / MANIFEST
    rebuilt = False
    if not path.exists():
        manifest = dict(run, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        manifest["environment"] = environment()  # of the creating process
        found = _first_run(directory)
        written = _create_exclusively(path, json.dumps(manifest, indent=2) + "\n")
        rebuilt = written and found is not None
    manifest = read_manifest(directory)
    changed = differences(manifest, run, config)
    if changed:
        _refuse(path, changed, directory)
    if rebuilt:
        message = f"{path} was missing: rebuilt from the run's chunks"
        warnings.warn(message, RunFolderWarning, stacklevel=2)
    return manifest


def _create_exclusively(path: Path, text: str) -> bool:
    """Write ``path`` unless it is there (then leave it as it is); whether this call wrote it."""
    _chunks(path.parent)  # a file named chunks is named as the fault, not the manifest
    tmp = None
    try:
        (path.parent / CHUNKS).mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~umask())
        try:
            os.link(tmp, path)  # exclusive: never replaces another process's manifest
            return True
        except FileExistsError:
            return False
        except OSError as error:  # a file system without hard links
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as f:
            f.write(text)
        return True
    except OSError as error:
        raise FolderError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def check_chunks(directory: Path, manifest: dict, config) -> None:
    """Every chunk in the folder is this run's: a corrupt one is moved aside (and computed
    again), one of another run refused.

    Raises:
      SettingError: a chunk of another run (settings, axes or chunk size), naming what differs.
    """
    for path in _chunks(directory):
        chunk = read_chunk(path)
        if chunk is None:
            moved = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                path.rename(moved)
            except FileNotFoundError:  # another process of the run moved it first
                continue
            except OSError as error:
                raise FolderError(f"cannot move aside {path}: {error.strerror}") from None
            warnings.warn(
                f"{path} is corrupt or truncated: moved to {moved.name}; its seeds are computed "
                "again",
                RunFolderWarning,
                stacklevel=2,
            )
            continue
        _same_run(path, chunk, manifest, config)


def _same_run(path: Path, chunk: dict, manifest: dict, config) -> None:
    """Refuse a chunk written by a run other than ``manifest``'s (its settings or chunk size)."""
    changed = differences(chunk["run"], manifest, config)
    if chunk["run"].get("chunk_size") != manifest["chunk_size"]:
        changed.append("config.chunk_size")
    if changed:
        _refuse(path, changed, path.parent.parent)


def merge(chunks: list[dict], n_axes: int, where="") -> tuple:
    """Chunks (``seed_index``, ``steps``, metrics) → seeds, steps and metrics in seed order.

    Raises:
      SettingError: two chunks hold the same seed.
    """
    seeds = np.concatenate([c["seed_index"] for c in chunks])
    values, counts = np.unique(seeds, return_counts=True)
    repeated = values[counts > 1]
    if repeated.size:
        raise SettingError(f"{where}: chunks overlap (seeds {repeated[:5].tolist()} twice)")
    order = np.argsort(seeds, kind="stable")
    names = [k for k in chunks[0] if k not in ("seed_index", "steps", "run")]
    data = {
        k: np.take(np.concatenate([c[k] for c in chunks], axis=n_axes), order, axis=n_axes)
        for k in names
    }
    return seeds[order], chunks[0]["steps"], data


def load(directory, experiment) -> SweepResults:
    """Read a run folder, finished or partial, into :class:`SweepResults`; it writes nothing
    (a read-only folder loads).

    A corrupt chunk is skipped with a :class:`RunFolderWarning` naming it (the results are then
    partial); a chunk of another run is refused.

    Raises:
      MissingFile: no manifest, or no finished chunk yet.
      SettingError: the folder holds another experiment's run, or a chunk of another run.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        raise MissingFile(f"{directory} is not a run folder ({MANIFEST} missing)")
    if manifest.get("experiment") != experiment.name:
        raise SettingError(f"{directory} holds a {manifest.get('experiment')!r} run")
    config = from_mapping(
        experiment.config(), manifest["config"], where=f"{directory / MANIFEST}: config."
    )
    chunks = []
    for path in _chunks(directory):
        chunk = read_chunk(path)
        if chunk is None:
            _skipping(path)
            continue
        _same_run(path, chunk, manifest, config)
        chunks.append(chunk)
    if not chunks:
        raise MissingFile(f"{directory} holds no finished chunk yet")
    axes = tuple((n, tuple(v)) for n, v in manifest["axes"])
    seeds, steps, data = merge(chunks, len(axes), directory)
    return SweepResults(experiment, config, axes, seeds, steps, data, config.seeds)


#: The corrupt chunks :func:`load` has named in this process: (path, size, modification time).
_SKIPPED: set[tuple[str, int, int]] = set()


def _skipping(path: Path) -> None:
    """Warn that a corrupt chunk is skipped, once per process for each state of the file.

    A command that loads a folder twice (a report, then its results) names it once; Python's
    own once-per-place rule does not hold, as every table resets it (``warnings.catch_warnings``).
    """
    try:
        stat = path.stat()
    except OSError:
        return
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SKIPPED:
        _SKIPPED.add(key)
        warnings.warn(f"skipping {path}: corrupt or truncated", RunFolderWarning, stacklevel=3)


def finish(directory: Path, experiment) -> SweepResults:
    """Load the folder; write ``arrays.npz`` once every seed is there, and the report."""
    from jaxprecond.engine.views import write_report

    results = load(directory, experiment)
    if not len(results.missing_seeds):
        arrays = dict(results.data, seed_index=results.seeds, steps=results.steps)
        write_arrays(directory / ARRAYS, arrays)
    write_report(results, directory)
    return results
