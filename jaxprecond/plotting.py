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
      The matplotlib figure (closed once saved).

    Example:
      >>> import tempfile
      >>> from jaxprecond.noise import NoiseConfig, NoiseResults
      >>> cfg = NoiseConfig(cases=("high",), powers=(0.0, 1.0), snrs=(0.5, 2.0), seeds=3,
      ...                   steps=20, log_every=10, dx=2)
      >>> mse = np.linspace(1.0, 2.0, 24).reshape(1, 2, 2, 3, 2)  # (case, p, snr, seed, record)
      >>> r = NoiseResults(cfg, np.array([9, 19]), mse, mse, mse, np.full(mse.shape + (2,), 0.5))
      >>> with tempfile.TemporaryDirectory() as d:
      ...     fig = plot_noise(r, Path(d) / "noise.png", trajectory_snr=3.0)
      ...     print((Path(d) / "noise.png").read_bytes()[1:4])
      b'PNG'
      >>> [ax.get_title() for ax in fig.axes]  # one column per case; the SNR nearest 3
      ['Case high', 'Case high, SNR = 2 (solid: test, dashed: train)']
      >>> [line.get_label() for line in fig.axes[0].lines]
      ['p = 0', 'p = 1']
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
      The matplotlib figure (closed once saved).

    Example:
      >>> from jaxprecond.sweep import SweepResults
      >>> res = SweepResults(axes=(("opt", ("gd", "adam")), ("lr", (0.1, 0.2, 0.4))),
      ...                    seeds=np.arange(2), steps=np.array([0, 10]),
      ...                    data={"test_mse": np.ones((2, 3, 2, 2))}, config={}, total_seeds=2)
      >>> ax = plot_sweep(res).axes[0]
      >>> [line.get_label() for line in ax.lines], ax.lines[0].get_xdata().tolist()
      (['opt=gd', 'opt=adam'], [0.1, 0.2, 0.4])
      >>> fig = plot_sweep(res, max_lines=1)
      >>> len(fig.axes[0].lines)
      1
      >>> plt.close("all")
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


def plot_transfer(results, path=None):
    """Forward transfer (paper Sec. 4.3): stage-2 test and train MSE against ``p``, per pair.

    One line per ``(train, transfer)`` pair with its 95% interval as error bars; solid lines
    for the stage-2 test MSE (left), the stage-2 train MSE on the right.

    Args:
      results: a :class:`~jaxprecond.transfer.TransferResults`.
      path: where to save the PNG (``None``: do not save).

    Returns:
      The matplotlib figure (closed once saved).

    Example:
      >>> from jaxprecond.transfer import TransferConfig, TransferResults
      >>> cfg = TransferConfig(pairs=(("high", "low"),), powers=(0.0, 1.0), seeds=2, steps=10,
      ...                      log_every=10)
      >>> mse = np.array([[[1.0, 1.2], [0.5, 0.7]]])  # (pair, p, seed)
      >>> fig = plot_transfer(TransferResults(cfg, mse, mse, mse, mse, mse, mse))
      >>> [ax.get_ylabel() for ax in fig.axes]
      ['stage-2 test MSE', 'stage-2 train MSE']
      >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
      ['High→Low']
      >>> plt.close(fig)
    """
    config = results.config
    powers = np.asarray(config.powers, float)
    styles = {
        ("high", "low"): ("tab:red", "o"),
        ("low", "high"): ("tab:blue", "s"),
        ("high", "high"): ("tab:orange", "^"),
        ("low", "low"): ("tab:cyan", "v"),
    }
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, metric, label in zip(
        axes,
        ("transfer_test_mse", "transfer_train_mse"),
        ("stage-2 test MSE", "stage-2 train MSE"),
        strict=True,
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)
            s = results.summary(metric)
        for i, pair in enumerate(config.pairs):
            color, marker = styles.get(tuple(pair), (None, "o"))
            error = np.stack([s.mean[i] - s.ci_low[i], s.ci_high[i] - s.mean[i]])
            ax.errorbar(
                powers,
                s.mean[i],
                yerr=np.where(np.isfinite(error), error, 0.0),
                marker=marker,
                color=color,
                capsize=3,
                label=f"{pair[0].capitalize()}→{pair[1].capitalize()}",
            )
        ax.set(xlabel="p", ylabel=label)
        ax.set_xticks(powers, [f"{p:g}" for p in powers])
        ax.legend(fontsize="small")
    seeds = results.transfer_test_mse.shape[-1]
    fig.suptitle(
        f"Forward transfer ({config.preconditioner}): frozen layer 1, ridge head; "
        f"{seeds} seeds, {config.steps} stage-1 steps (bars: 95% CI)"
    )
    fig.tight_layout()
    if path is not None:
        fig.savefig(Path(path), dpi=110)
        plt.close(fig)
    return fig


def plot_ood(results, path=None):
    """Out-of-distribution accuracy (paper Fig. 2): bars per optimizer (a) and against p (b).

    Panel (a): final accuracy per optimizer in the invariant-digit and invariant-noise
    scenarios (and in-distribution validation), 95% intervals as error bars. Panel (b): the
    same against ``p`` for GD with Σ^p on layer 1.

    Args:
      results: an :class:`~jaxprecond.ood.OODResults`.
      path: where to save the PNG (``None``: do not save).

    Returns:
      The matplotlib figure (closed once saved); panel (b) only if the results hold the
      ``"sigma_p"`` arm.

    Example:
      >>> from jaxprecond.ood import METRICS, OODConfig, OODResults
      >>> cfg = OODConfig(optimizers=("gd", "adam"), powers=(0.0, 1.0), seeds=2, steps=10,
      ...                 log_every=10)
      >>> def arm(points):  # (points, seeds, records) for each metric
      ...     return {m: np.full((points, 2, 1), 0.5) for m in METRICS}
      >>> res = OODResults(cfg, np.array([9]), {"gd": arm(1), "adam": arm(1), "sigma_p": arm(2)})
      >>> fig = plot_ood(res)
      >>> [ax.get_title() for ax in fig.axes]
      ['(a) optimizers', '(b) GD with Σ^p on layer 1']
      >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
      ['gd', 'adam']
      >>> plt.close(fig)
    """
    metrics = {
        "val_acc": "validation",
        "digit_acc": "invariant-digit",
        "noise_acc": "invariant-noise",
    }
    config = results.config
    has_powers = "sigma_p" in results.arms
    fig, axes = plt.subplots(1, 2 if has_powers else 1, figsize=(12, 4.5), squeeze=False)
    axes = axes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        summaries = {(arm, m): results.summary(arm, m) for arm in results.arms for m in metrics}
    names = list(config.optimizers)
    if names:
        x = np.arange(len(names))
        width = 0.8 / len(metrics)
        for k, (metric, label) in enumerate(metrics.items()):
            s = [summaries[(arm, metric)] for arm in names]
            mean = np.array([v.mean[0] for v in s])
            error = np.abs(np.array([[v.ci_low[0] for v in s], [v.ci_high[0] for v in s]]) - mean)
            axes[0].bar(
                x + (k - 1) * width,
                mean,
                width,
                yerr=np.where(np.isfinite(error), error, 0.0),
                capsize=2,
                label=label,
            )
        axes[0].set_xticks(x, names, rotation=30)
        axes[0].set(ylabel="accuracy", ylim=(0, 1.05), title="(a) optimizers")
        axes[0].legend(fontsize="small")
    if has_powers:
        ax = axes[-1]
        powers = np.asarray(config.powers, float)
        for metric, label in metrics.items():
            s = summaries[("sigma_p", metric)]
            error = np.stack([s.mean - s.ci_low, s.ci_high - s.mean])
            ax.errorbar(
                powers,
                s.mean,
                yerr=np.where(np.isfinite(error), error, 0.0),
                marker="o",
                capsize=3,
                label=label,
            )
        ax.set(xlabel="p", ylabel="accuracy", ylim=(0, 1.05), title="(b) GD with Σ^p on layer 1")
        ax.set_xticks(powers, [f"{p:g}" for p in powers])
        ax.legend(fontsize="small")
    fig.suptitle(
        f"Correlation shift ({config.dataset}): {config.seeds} seeds, {config.steps} steps "
        "(bars: 95% CI)"
    )
    fig.tight_layout()
    if path is not None:
        fig.savefig(Path(path), dpi=110)
        plt.close(fig)
    return fig
