"""Sweeps from TOML files, and the report of any run folder, finished or partial.

A sweep file names an experiment, its settings and any axes::

    experiment = "noise"        # or "transfer", "ood", "rotated", "my_experiment.py:EXPERIMENT"
    seeds = 8                   # and chunk_size, memory_budget, group_size (or under [config])
    out = "runs/lr-sweep"

    [config]                    # a preset, then any setting of the experiment
    preset = "cpu"
    steps = 1000
    snrs = [1.0]

    [axes]                      # the experiment's own axes (case, p, snr, ...) or any setting
    p = [-1.0, 0.0, 1.0]
    learning_rate = [0.005, 0.01]

Every value passes the settings' own checks; an error names the file, the key and the value.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from jaxprecond.checks import FolderError, MissingFile, SettingError
from jaxprecond.engine.config import RUN_SETTINGS, from_mapping
from jaxprecond.engine.experiment import grid_axes
from jaxprecond.engine.folder import MANIFEST, RunFolderWarning, load, read_manifest
from jaxprecond.engine.store import write_text
from jaxprecond.engine.sweep import run
from jaxprecond.engine.views import report, write_report
from jaxprecond.experiments import NAMES, find

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FILE_KEYS = {"experiment", "out", "config", "axes", *RUN_SETTINGS}


def load_sweep_file(path):
    """Read a sweep file: ``(experiment, config, axes, out or None)``, every value checked.

    Raises:
      SettingError: a bad file, key or value (the message names the file and the key).

    Example:
      >>> import tempfile
      >>> toml = 'experiment = "noise"\\nseeds = 8\\n[config]\\nsteps = 200\\n'
      >>> toml += '[axes]\\np = [-1, 1]\\n'
      >>> with tempfile.TemporaryDirectory() as d:
      ...     _ = (Path(d) / "sweep.toml").write_text(toml)
      ...     experiment, config, axes, out = load_sweep_file(Path(d) / "sweep.toml")
      ...     _ = (Path(d) / "bad.toml").write_text(toml.replace("200", "0"))
      ...     try:
      ...         load_sweep_file(Path(d) / "bad.toml")
      ...     except SettingError as error:
      ...         print(str(error).split("/")[-1])
      bad.toml: config.steps must be a positive integer, got 0
      >>> experiment.name, config.seeds, config.steps, axes, out
      ('noise', 8, 200, {'p': [-1, 1]}, None)
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingError(f"{path}: cannot be read as TOML: {error}") from None
    unknown = sorted(set(doc) - FILE_KEYS)
    if unknown:
        raise SettingError(f"{path}: unknown keys {unknown}; allowed: {sorted(FILE_KEYS)}")
    if not isinstance(doc.get("experiment"), str):
        raise SettingError(f"{path}: experiment must be one of {NAMES} (or 'file.py:NAME')")
    try:
        experiment = find(doc["experiment"], folder=path.parent)
    except SettingError as error:
        raise SettingError(f"{path}: {error}") from None
    settings = dict(doc.get("config", {}))
    preset = settings.pop("preset", next(iter(experiment.presets)))
    if preset not in experiment.presets:
        raise SettingError(
            f"{path}: config.preset must be one of {list(experiment.presets)}, got {preset!r}"
        )
    for key in set(doc) & set(RUN_SETTINGS):
        if key in settings:
            raise SettingError(f"{path}: {key} is given twice (at the top and in [config])")
        settings[key] = doc[key]
    config = from_mapping(experiment.presets[preset], settings, where=f"{path}: config.")
    axes = doc.get("axes", {})
    if not isinstance(axes, dict):
        raise SettingError(f"{path}: axes must be a table of lists")
    try:
        grid_axes(experiment, config, axes)
    except SettingError as error:
        raise SettingError(f"{path}: {error}") from None
    out = doc.get("out")
    if out is not None and (not isinstance(out, str) or not out):
        raise SettingError(f"{path}: out must be a folder name, got {out!r}")
    return experiment, config, axes, out


def run_sweep_file(path, *, out=None, progress: bool = True):
    """Run (or resume) the sweep of a file into ``out`` (default: the file's ``out``).

    Returns:
      The :class:`~jaxprecond.engine.results.SweepResults` (``None`` on processes other than 0);
      the run folder gets ``report.md`` and ``figure.png``.
    """
    experiment, config, axes, file_out = load_sweep_file(path)
    out = out or file_out
    if not out:
        raise SettingError(f"{path}: give a run folder (out = ... in the file, or --out)")
    return run(experiment, config, axes=axes, out=out, progress=progress)


def load_run(directory):
    """The :class:`~jaxprecond.engine.results.SweepResults` of a run folder of any experiment.

    Raises:
      MissingFile: not a run folder, or no chunk finished yet.
    """
    directory = Path(directory)
    manifest = read_manifest(directory) if directory.is_dir() else None
    if manifest is None:
        raise MissingFile(f"{directory} is not a run folder ({MANIFEST} missing)")
    name = manifest.get("experiment", "")
    return load(directory, find(manifest.get("source") or name))


def arm_folders(directory) -> list[Path]:
    """The run folders of ``directory``: itself, or (for a command that ran several arms) each
    subfolder holding a run."""
    directory = Path(directory)
    if not (directory / MANIFEST).exists() and directory.is_dir():
        arms = sorted(p for p in directory.iterdir() if (p / MANIFEST).exists())
        if arms:
            return arms
    return [directory]


def save_reports(directory) -> tuple[str, list[Path]]:
    """Write ``report.md`` and ``figure.png`` of a run folder (of each of its arms, and their
    reports together).

    Returns:
      The Markdown, and the files written. A folder that cannot be written (read-only, full) is
      reported, not saved: nothing is written there, and a
      :class:`~jaxprecond.engine.folder.RunFolderWarning` names the file and the cause.
    """
    directory = Path(directory)
    arms = arm_folders(directory)
    texts, saved = [], []
    for arm in arms:
        results = load_run(arm)
        try:
            texts.append(write_report(results, arm))
            saved += [arm / "report.md", arm / "figure.png"]
        except FolderError as error:
            _not_saved(error)
            texts.append(report(results, arm.name))
    text = "\n".join(texts)
    if arms != [directory]:
        try:
            write_text(directory / "report.md", text)
            saved.append(directory / "report.md")
        except FolderError as error:
            _not_saved(error)
    return text, saved


def _not_saved(error: FolderError) -> None:
    warnings.warn(f"the report is not saved: {error}", RunFolderWarning, stacklevel=3)


def write_reports(directory) -> str:
    """:func:`save_reports`' Markdown (a folder that cannot be written is reported, not saved).

    Example:
      >>> write_reports("no/such/run")
      Traceback (most recent call last):
      ...
      jaxprecond.checks.MissingFile: no/such/run is not a run folder (manifest.json missing)
    """
    return save_reports(directory)[0]
