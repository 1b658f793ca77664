"""Sweeps from TOML files, and reports (tables and figures) of finished or partial runs."""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from pathlib import Path

import numpy as np

from jaxprecond.noise import PRESETS, NoiseConfig, NoiseResults, noise_experiment
from jaxprecond.plotting import plot_noise, plot_sweep
from jaxprecond.stats import DivergenceWarning
from jaxprecond.store import write_text
from jaxprecond.sweep import SweepResults, SweepSpec, load_sweep, run_sweep

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

EXPERIMENTS = {"noise": (NoiseConfig, PRESETS, noise_experiment)}
SWEEP_KEYS = {
    "experiment",
    "seeds",
    "chunk_size",
    "memory_budget",
    "group_size",
    "out",
    "config",
    "axes",
}


def load_sweep_file(path):
    """Read a sweep TOML file into ``(spec, experiment, out)``.

    The file names the experiment, the seeds and chunking, a ``[config]`` table (an optional
    ``preset`` and any settings of the experiment's config) and an ``[axes]`` table::

        experiment = "noise"
        seeds = 64
        chunk_size = 16
        out = "runs/lr-sweep"

        [config]
        preset = "cpu"
        steps = 2000

        [axes]
        case = ["high", "low"]
        p = [-1.0, 0.0, 1.0]
        learning_rate = [0.005, 0.01, 0.02]

    Args:
      path: the TOML file.

    Returns:
      ``(SweepSpec, Experiment, out or None)``.

    Raises:
      ValueError: unknown keys, experiment or config settings, or a bad grid.

    Example:
      >>> import tempfile
      >>> toml = '''
      ... experiment = "noise"
      ... seeds = 8
      ... out = "runs/p-sweep"
      ... [config]
      ... steps = 200
      ... [axes]
      ... p = [-1.0, 1.0]
      ... '''
      >>> with tempfile.TemporaryDirectory() as d:
      ...     _ = (Path(d) / "sweep.toml").write_text(toml)
      ...     spec, experiment, out = load_sweep_file(Path(d) / "sweep.toml")
      ...     _ = (Path(d) / "bad.toml").write_text("lr = 0.1\\n" + toml)
      ...     try:
      ...         load_sweep_file(Path(d) / "bad.toml")
      ...     except ValueError as e:
      ...         print(str(e).split(": ", 1)[1].split(";")[0])
      unknown keys ['lr']
      >>> spec.axes, spec.seeds, out
      ((('p', (-1.0, 1.0)),), 8, 'runs/p-sweep')
      >>> experiment.name, experiment.config["steps"], experiment.config["log_every"]  # cpu preset
      ('noise', 200, 100)
    """
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    unknown = set(doc) - SWEEP_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(SWEEP_KEYS)}")
    name = doc.get("experiment")
    if name not in EXPERIMENTS:
        raise ValueError(f"{path}: experiment must be one of {sorted(EXPERIMENTS)}, got {name!r}")
    config_cls, presets, make_experiment = EXPERIMENTS[name]
    settings = dict(doc.get("config", {}))
    preset = settings.pop("preset", "cpu")
    if preset not in presets:
        raise ValueError(f"{path}: preset must be one of {sorted(presets)}, got {preset!r}")
    fields = {f.name for f in dataclasses.fields(config_cls)}
    bad = set(settings) - fields
    if bad:
        raise ValueError(f"{path}: unknown config settings {sorted(bad)}")
    config = dataclasses.replace(presets[preset], **settings)
    if "axes" not in doc or not doc["axes"]:
        raise ValueError(f"{path}: the [axes] table is missing or empty")
    spec = SweepSpec(
        axes=tuple(doc["axes"].items()),
        seeds=doc.get("seeds", config.seeds),
        chunk_size=doc.get("chunk_size"),
        memory_budget=doc.get("memory_budget"),
        group_size=doc.get("group_size"),
    )
    return spec, make_experiment(config), doc.get("out")


def run_sweep_file(path, *, out=None, progress: bool = True) -> SweepResults:
    """Run (or resume) the sweep of a TOML file; ``out`` overrides the file's folder.

    Writes the run folder's chunks and its report (:func:`write_report`).

    Args:
      path: the TOML file (see :func:`load_sweep_file`).
      out: the run folder; ``None``: the file's ``out``.
      progress: show a progress bar.

    Returns:
      The :class:`~jaxprecond.sweep.SweepResults` of every seed.

    Raises:
      ValueError: the file is invalid, or neither it nor ``out`` names a run folder.

    Example:
      Running a sweep compiles the experiment (seconds); this shows the check made before:

      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as d:
      ...     _ = (Path(d) / "s.toml").write_text('experiment = "noise"\\n[axes]\\np = [0.0]\\n')
      ...     try:
      ...         run_sweep_file(Path(d) / "s.toml", progress=False)
      ...     except ValueError as e:
      ...         print(str(e).split(": ", 1)[1])
      give a run folder (out = ... in the file, or --out)
    """
    spec, experiment, file_out = load_sweep_file(path)
    out = out or file_out
    if out is None:
        raise ValueError(f"{path}: give a run folder (out = ... in the file, or --out)")
    results = run_sweep(spec, experiment, out=out, progress=progress)
    if results is not None:
        write_report(out, results)
    return results


def sweep_table(results: SweepResults, metrics=("test_mse", "train_loss")) -> str:
    """Markdown table: every grid point's final metrics (mean and 95% CI) and seed counts.

    Args:
      results: the sweep's results.
      metrics: keys of ``results.data`` to tabulate (final records).

    Returns:
      The Markdown table, one row per grid point.

    Example:
      >>> loss = np.array([[[4.0, 1.0], [4.0, 3.0]], [[2.0, 2.0], [2.0, np.nan]]])
      >>> res = SweepResults(axes=(("lr", (0.1, 0.2)),), seeds=np.arange(2),
      ...                    steps=np.array([0, 10]), data={"loss": loss}, config={},
      ...                    total_seeds=2)  # data: (lr, seed, record)
      >>> print(sweep_table(res, metrics=("loss",)))
      | lr | loss (95% CI) | seeds | diverged |
      |---|---|---|---|
      | 0.1 | 2.0000 [-10.7062, 14.7062] | 2 | 0 |
      | 0.2 | 2.0000 [nan, nan] | 1 | 1 |
    """
    names = [n for n, _ in results.axes]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        summaries = {m: results.summary(m) for m in metrics}
    header = "| " + " | ".join(names + [f"{m} (95% CI)" for m in metrics]) + " | seeds | diverged |"
    lines = [header, "|" + "---|" * (len(names) + len(metrics) + 2)]
    for index in itertools.product(*(range(len(v)) for _, v in results.axes)):
        labels = [
            f"{values[i]:g}" if isinstance(values[i], float) else str(values[i])
            for (_, values), i in zip(results.axes, index, strict=True)
        ]
        cells = [
            f"{s.mean[index]:.4f} [{s.ci_low[index]:.4f}, {s.ci_high[index]:.4f}]"
            for s in summaries.values()
        ]
        first = next(iter(summaries.values()))
        lines.append(
            "| "
            + " | ".join(labels + cells)
            + f" | {first.n_valid[index]} | {first.n_diverged[index]} |"
        )
    return "\n".join(lines)


def write_report(directory, results: SweepResults | None = None) -> str:
    """Write ``report.md`` and ``report.png`` into a run folder (finished or partial).

    The figure is :func:`~jaxprecond.plotting.plot_noise`'s for a ``(case, p, snr)`` grid of
    the noise experiment, else :func:`~jaxprecond.plotting.plot_sweep`'s.

    Args:
      directory: the run folder.
      results: the sweep's results (``None``: read them from ``directory``).

    Returns:
      The report's Markdown text.

    Example:
      >>> import tempfile
      >>> mse = np.array([[[1.0, 1.0], [1.0, 3.0]], [[2.0, 2.0], [np.nan, 2.0]]])
      >>> res = SweepResults(axes=(("lr", (0.1, 0.2)),), seeds=np.array([0, 2]),
      ...                    steps=np.array([0, 10]), data={"test_mse": mse, "train_loss": mse},
      ...                    config={}, total_seeds=3)  # seed 1 is not finished
      >>> with tempfile.TemporaryDirectory() as d:
      ...     text = write_report(Path(d) / "run", res)
      ...     print(sorted(p.name for p in (Path(d) / "run").iterdir()))
      ['report.md', 'report.png']
      >>> print(text)
      # Sweep report: run
      <BLANKLINE>
      2 of 3 seeds finished (partial run)
      <BLANKLINE>
      | lr | test_mse (95% CI) | train_loss (95% CI) | seeds | diverged |
      |---|---|---|---|---|
      | 0.1 | 2.0000 [-10.7062, 14.7062] | 2.0000 [-10.7062, 14.7062] | 2 | 0 |
      | 0.2 | 2.0000 [nan, nan] | 2.0000 [nan, nan] | 1 | 1 |
      <BLANKLINE>
      1 diverged seed runs (NaN/inf) are excluded above.
      <BLANKLINE>
    """
    directory = Path(directory)
    results = results if results is not None else load_sweep(directory)
    missing = results.missing_seeds
    status = (
        f"{len(results.seeds)} of {results.total_seeds} seeds finished (partial run)"
        if len(missing)
        else f"all {results.total_seeds} seeds finished"
    )
    text = f"# Sweep report: {directory.name}\n\n{status}\n\n{sweep_table(results)}\n"
    diverged = ~np.isfinite(results.data["test_mse"]).all(axis=-1)
    if diverged.any():
        text += f"\n{int(diverged.sum())} diverged seed runs (NaN/inf) are excluded above.\n"
    write_text(directory / "report.md", text)
    names = tuple(n for n, _ in results.axes)
    if names == ("case", "p", "snr"):
        noise = NoiseResults.from_sweep(results, NoiseConfig(**results.config))
        plot_noise(noise, directory / "report.png")
    else:
        plot_sweep(results, directory / "report.png")
    return text
