"""Figures in the style of the paper's Fig. 1."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxprecond.stats import DivergenceWarning  # noqa: E402


def plot_noise(results, path=None, *, trajectory_snr: float = 1.0):
    """Fig. 1 (a, b): final test MSE against SNR, and trajectories at one SNR.

    Top row: final test MSE against SNR, one line per ``p`` with its 95% interval as a band,
    one column per case. Bottom row: seed-averaged train loss (dashed) and test MSE (solid)
    against the step at the SNR closest to ``trajectory_snr``.

    Args:
      results: a :class:`~jaxprecond.noise.NoiseResults`.
      path: where to save the PNG (``None``: do not save).
      trajectory_snr: the SNR whose trajectories the bottom row shows.

    Returns:
      The matplotlib figure.
    """
    config = results.config
    snrs = np.asarray(config.snrs)
    k = int(np.argmin(np.abs(snrs - trajectory_snr)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        final = results.summary("test_mse")
        test = results.summary("test_mse", final=False)
        train = results.summary("train_loss", final=False)
    colors = plt.cm.coolwarm(np.linspace(0, 1, len(config.powers)))
    n_cases = len(config.cases)
    fig, axes = plt.subplots(2, n_cases, figsize=(5 * n_cases, 8), squeeze=False)
    for i, case in enumerate(config.cases):
        top, bottom = axes[0, i], axes[1, i]
        for j, (p, color) in enumerate(zip(config.powers, colors, strict=True)):
            top.plot(snrs, final.mean[i, j], "o-", color=color, label=f"p = {p:g}")
            top.fill_between(snrs, final.ci_low[i, j], final.ci_high[i, j], color=color, alpha=0.2)
            bottom.plot(results.steps, test.mean[i, j, k], "-", color=color, label=f"p = {p:g}")
            bottom.plot(results.steps, train.mean[i, j, k], "--", color=color)
        top.set(xscale="log", xlabel="SNR", ylabel="final test MSE", title=f"Case {case}")
        top.set_xticks(snrs, [f"{s:g}" for s in snrs])
        top.minorticks_off()
        bottom.set(
            yscale="log",
            xlabel="step",
            ylabel="MSE",
            title=f"Case {case}, SNR = {snrs[k]:g} (solid: test, dashed: train)",
        )
        top.legend(fontsize="small")
    fig.suptitle(f"Σ^p preconditioning, {config.seeds} seeds per cell, {config.steps} steps")
    fig.tight_layout()
    if path is not None:
        fig.savefig(Path(path), dpi=110)
        plt.close(fig)
    return fig


def plot_sweep(results, path=None, *, metric: str = "test_mse", max_lines: int = 12):
    """Final ``metric`` (mean and 95% interval over seeds) against the grid's last axis.

    One line per combination of the other axes (at most ``max_lines``); categorical last axes
    are placed at equal spacing.

    Args:
      results: a :class:`~jaxprecond.sweep.SweepResults`.
      path: where to save the PNG (``None``: do not save).
      metric: a scalar trajectory of the results.
      max_lines: lines drawn at most.

    Returns:
      The matplotlib figure.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        summary = results.summary(metric)
    *others, (last_name, last_values) = results.axes
    numeric = all(isinstance(v, (int, float)) for v in last_values)
    x = np.asarray(last_values, float) if numeric else np.arange(len(last_values))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for count, index in enumerate(np.ndindex(*(len(v) for _, v in others))):
        if count == max_lines:
            break
        label = ", ".join(f"{n}={v[i]}" for (n, v), i in zip(others, index, strict=True))
        ax.plot(x, summary.mean[index], "o-", label=label or metric)
        ax.fill_between(x, summary.ci_low[index], summary.ci_high[index], alpha=0.2)
    if not numeric:
        ax.set_xticks(x, [str(v) for v in last_values])
    ax.set(
        xlabel=last_name,
        ylabel=f"final {metric}",
        title=f"{len(results.seeds)} seeds per point (bands: 95% CI)",
    )
    ax.legend(fontsize="small")
    fig.tight_layout()
    if path is not None:
        fig.savefig(Path(path), dpi=110)
        plt.close(fig)
    return fig
