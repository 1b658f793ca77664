"""The report of any sweep: its table, its figure and ``report.md``, finished or partial.

An experiment may give its own table and figure; otherwise (or when its own cannot draw the
grid it is given, and returns ``None``) the generic ones here are used. Figures are
``matplotlib.figure.Figure`` objects, made without ``pyplot``: importing this module does not
touch matplotlib's backend.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from jaxprecond.engine.stats import DivergenceWarning
from jaxprecond.engine.store import atomic_path, write_text


def label(value) -> str:
    """An axis value as a table shows it (``0.5``, ``1``, ``high``)."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"{value:g}" if numeric else str(value)


def interval(summary, index, digits: int = 4) -> str:
    """``mean [low, high]`` of a :class:`~jaxprecond.engine.stats.SeedSummary` at ``index``.

    Example:
      >>> from jaxprecond.engine.stats import summarize_seeds
      >>> interval(summarize_seeds(np.array([[1.0, 1.0]])), (0,), digits=2)
      '1.00 [1.00, 1.00]'
    """
    return (
        f"{summary.mean[index]:.{digits}f} "
        f"[{summary.ci_low[index]:.{digits}f}, {summary.ci_high[index]:.{digits}f}]"
    )


def quiet(function, *args, **kwargs):
    """``function(*args, **kwargs)`` without the divergence warning (tables count diverged seeds).

    Example:
      >>> from jaxprecond.engine.stats import summarize_seeds
      >>> int(quiet(summarize_seeds, np.array([1.0, np.nan, 3.0])).n_diverged)
      1
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        return function(*args, **kwargs)


def sweep_table(results, metrics=None) -> str:
    """Markdown: every grid point's final metrics (mean and 95% interval) and seed counts.

    Args:
      results: a :class:`~jaxprecond.engine.results.SweepResults`.
      metrics: the metrics to show (default: the experiment's, else every scalar one).

    Returns:
      The table, one row per grid point.

    Example:
      >>> from jaxprecond.engine.results import SweepResults
      >>> loss = np.array([[[4.0, 1.0], [4.0, 3.0]], [[2.0, 2.0], [2.0, np.nan]]])
      >>> res = SweepResults(None, None, (("lr", (0.1, 0.2)),), np.arange(2),
      ...                    np.array([0, 10]), {"loss": loss}, 2)  # (lr, seed, record)
      >>> print(sweep_table(res))
      | lr | loss (95% CI) | seeds | diverged |
      |---|---|---|---|
      | 0.1 | 2.0000 [-10.7062, 14.7062] | 2 | 0 |
      | 0.2 | 2.0000 [nan, nan] | 1 | 1 |
    """
    if metrics is None:
        metrics = getattr(results.experiment, "metrics", ()) or [
            m for m, v in results.data.items() if v.ndim == len(results.dims)
        ]
    names = [n for n, _ in results.axes]
    summaries = [quiet(results.summary, m) for m in metrics]
    header = "| " + " | ".join(names + [f"{m} (95% CI)" for m in metrics])
    lines = [header + " | seeds | diverged |", "|" + "---|" * (len(names) + len(metrics) + 2)]
    for index in itertools.product(*(range(len(v)) for _, v in results.axes)):
        cells = [label(values[i]) for (_, values), i in zip(results.axes, index, strict=True)]
        cells += [interval(s, index) for s in summaries]
        counts = f"{summaries[0].n_valid[index]} | {summaries[0].n_diverged[index]}"
        lines.append("| " + " | ".join(cells) + f" | {counts} |")
    return "\n".join(lines)


def table(results) -> str:
    """The experiment's own table of ``results``, or :func:`sweep_table`."""
    own = getattr(results.experiment, "table", None)
    text = own(results) if own is not None else None
    return sweep_table(results) if text is None else text


def sweep_figure(results, metric: str | None = None, *, max_lines: int = 12) -> Figure:
    """Final ``metric`` (mean and 95% band over seeds) against the grid's last axis.

    One line per combination of the other axes (at most ``max_lines``); a categorical last
    axis is placed at equal spacing.

    Example:
      >>> from jaxprecond.engine.results import SweepResults
      >>> res = SweepResults(None, None, (("opt", ("gd", "adam")), ("lr", (0.1, 0.2, 0.4))),
      ...                    np.arange(2), np.array([0, 10]),
      ...                    {"test_mse": np.ones((2, 3, 2, 2))}, 2)
      >>> ax = sweep_figure(res).axes[0]
      >>> [line.get_label() for line in ax.lines], ax.lines[0].get_xdata().tolist()
      (['opt=gd', 'opt=adam'], [0.1, 0.2, 0.4])
    """
    if metric is None:
        metrics = getattr(results.experiment, "metrics", ()) or [
            m for m, v in results.data.items() if v.ndim == len(results.dims)
        ]
        metric = metrics[0]
    summary = quiet(results.summary, metric)
    fig = Figure(figsize=(7, 4.5), layout="tight")
    ax = fig.subplots()
    if not results.axes:
        ax.bar([0], [summary.mean], yerr=[[summary.mean - summary.ci_low]], capsize=3)
        ax.set(xticks=[], ylabel=f"final {metric}")
        return fig
    *others, (last_name, last_values) = results.axes
    numeric = all(isinstance(v, (int, float)) for v in last_values)
    x = np.asarray(last_values, float) if numeric else np.arange(len(last_values))
    for count, index in enumerate(np.ndindex(*(len(v) for _, v in others))):
        if count == max_lines:
            break
        name = ", ".join(f"{n}={v[i]}" for (n, v), i in zip(others, index, strict=True))
        ax.plot(x, summary.mean[index], "o-", label=name or metric)
        ax.fill_between(x, summary.ci_low[index], summary.ci_high[index], alpha=0.2)
    if not numeric:
        ax.set_xticks(x, [str(v) for v in last_values])
    ax.set(xlabel=last_name, ylabel=f"final {metric}")
    ax.set_title(f"{len(results.seeds)} seeds per point (bands: 95% CI)")
    ax.legend(fontsize="small")
    return fig


def figure(results) -> Figure:
    """The experiment's own figure of ``results``, or :func:`sweep_figure`."""
    own = getattr(results.experiment, "figure", None)
    fig = own(results) if own is not None else None
    return sweep_figure(results) if fig is None else fig


def save_figure(fig: Figure, path) -> None:
    """Write ``fig`` as a PNG, atomically."""
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=110)


def report(results, name: str = "") -> str:
    """The Markdown of ``report.md``: status (finished or partial), the table, divergences."""
    finished = not len(results.missing_seeds)
    status = (
        f"all {results.total_seeds} seeds finished"
        if finished
        else f"{len(results.seeds)} of {results.total_seeds} seeds finished (partial run)"
    )
    title = getattr(results.experiment, "name", "sweep")
    text = f"# {title} report: {name}\n\n{status}\n\n{table(results)}\n"
    cells = divergence(results)
    if cells:
        text += (
            f"\n{int(diverged(results).sum())} diverged seed runs (NaN/inf) are excluded above:\n"
        )
        text += "".join(f"- {cell}: {bad} of {seeds} seeds\n" for cell, bad, seeds in cells)
    return text


def diverged(results) -> np.ndarray:
    """``(*grid, seed)``: whether each seed's run holds a NaN or inf in any metric.

    Example:
      >>> from jaxprecond.engine.results import SweepResults
      >>> loss = np.array([[[1.0], [np.nan]], [[2.0], [3.0]]])  # (lr, seed, record)
      >>> res = SweepResults(None, None, (("lr", (0.1, 0.2)),), np.arange(2), np.array([0]),
      ...                    {"loss": loss}, 2)
      >>> diverged(res).tolist(), divergence(res)
      ([[False, True], [False, False]], [('lr=0.1', 1, 2)])
    """
    n = len(results.axes) + 1  # the grid and the seed axis
    bad = np.zeros(results.data[next(iter(results.data))].shape[:n], bool)
    for values in results.data.values():
        bad |= ~np.isfinite(values.reshape(values.shape[:n] + (-1,))).all(axis=-1)
    return bad


def divergence(results) -> list[tuple[str, int, int]]:
    """``(cell, diverged seeds, seeds)`` for every grid point where a seed diverged."""
    bad = diverged(results)
    cells = []
    for index in np.ndindex(*bad.shape[:-1]):
        if bad[index].any():
            names = zip(results.axes, index, strict=True)
            cell = ", ".join(f"{n}={label(values[i])}" for (n, values), i in names) or "all"
            cells.append((cell, int(bad[index].sum()), bad.shape[-1]))
    return cells


def write_report(results, directory) -> str:
    """Write ``report.md`` and ``figure.png`` into ``directory``; return the Markdown."""
    directory = Path(directory)
    text = report(results, directory.name)
    write_text(directory / "report.md", text)
    save_figure(figure(results), directory / "figure.png")
    return text
