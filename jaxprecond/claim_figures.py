"""One figure per claim of :mod:`jaxprecond.claims`, drawn from the same finished runs.

Every function returns a :class:`matplotlib.figure.Figure` (made without pyplot) whose lines are
seed means with 95% bands (Student-t over the seeds that did not diverge).

Example:
  >>> from jaxprecond.claims import _fake_noise
  >>> p = np.array([-1.0, 0.0, 1.0])[:, None, None] + np.zeros((3, 1, 8))
  >>> fig = spectral_bias_figure(_fake_noise(np.stack([1 - p / 4, 1 + p / 4])))
  >>> len(fig.axes)
  2
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from jaxprecond.engine.stats import summarize_seeds
from jaxprecond.engine.views import quiet
from jaxprecond.experiments.transfer import by_pair


def _band(ax, x, values, label, **style):
    """Seed mean of ``values`` (``(len(x), S)``) with its 95% band."""
    s = quiet(summarize_seeds, values, axis=-1)
    (line,) = ax.plot(x, s.mean, marker="o", label=label, **style)
    ax.fill_between(x, s.ci_low, s.ci_high, color=line.get_color(), alpha=0.15)


def _colors(n):
    return [(c, 0.3, 1 - c) for c in np.linspace(0, 1, max(n, 1))]


def spectral_bias_figure(results, *, title: str = "") -> Figure:
    """Final test MSE against ``p``, one panel per case, one line per SNR."""
    cases, powers, snrs = (results.values(n) for n in ("case", "p", "snr"))
    mse = results.final("test_mse")
    fig = Figure(figsize=(5 * len(cases), 4), layout="tight")
    for c, ax in enumerate(fig.subplots(1, len(cases), squeeze=False)[0]):
        for k, (snr, color) in enumerate(zip(snrs, _colors(len(snrs)), strict=True)):
            _band(ax, powers, mse[c, :, k], f"SNR {snr:g}", color=color)
        ax.set(xlabel="p", ylabel="final test MSE", title=f"Case {cases[c].capitalize()}")
        ax.legend(fontsize="small")
    fig.suptitle(title or "Spectral bias: test MSE against p")
    return fig


def gap_figure(results, *, title: str = "") -> Figure:
    """Left: Case High's train/test gap against ``p`` per SNR. Right: the gap averaged over
    ``p`` against the SNR, per case."""
    cases, powers, snrs = (results.values(n) for n in ("case", "p", "snr"))
    gap = results.final("test_mse") - results.final("train_loss")  # (case, p, snr, seed)
    fig = Figure(figsize=(10, 4), layout="tight")
    left, right = fig.subplots(1, 2)
    if "high" in cases:
        c = cases.index("high")
        for k, (snr, color) in enumerate(zip(snrs, _colors(len(snrs)), strict=True)):
            _band(left, powers, gap[c, :, k], f"SNR {snr:g}", color=color)
        left.legend(fontsize="small")
    left.set(xlabel="p", ylabel="test MSE − train loss", title="Case High: train/test gap")
    for c, case in enumerate(cases):
        _band(right, snrs, gap[c].mean(0), f"Case {case.capitalize()}")
    right.set(xscale="log", xlabel="SNR", title="train/test gap, averaged over p")
    right.legend(fontsize="small")
    fig.suptitle(title or "Gaps")
    return fig


def floor_figure(results, *, title: str = "") -> Figure:
    """Final test MSE against the SNR for every case and ``p``, with the floor ``1/(1+SNR²)``."""
    cases, powers, snrs = (results.values(n) for n in ("case", "p", "snr"))
    mse = results.final("test_mse")
    fig = Figure(figsize=(5 * len(cases), 4), layout="tight")
    grid = np.geomspace(min(snrs), max(snrs), 50)
    for c, ax in enumerate(fig.subplots(1, len(cases), squeeze=False)[0]):
        for j, (p, color) in enumerate(zip(powers, _colors(len(powers)), strict=True)):
            _band(ax, snrs, mse[c, j], f"p = {p:g}", color=color)
        ax.plot(grid, 1 / (1 + grid**2), "k:", label="1/(1+SNR²)")
        if "noise_floor" in results.data:
            _band(ax, snrs, results.final("noise_floor")[c, 0], "teacher's MSE", color="k")
        ax.set(xscale="log", yscale="log", xlabel="SNR", ylabel="final test MSE")
        ax.set(title=f"Case {cases[c].capitalize()}")
        ax.legend(fontsize="small")
    fig.suptitle(title or "Sanity floor")
    return fig


def neutrality_figure(high, low, *, title: str = "") -> Figure:
    """Left: Case High and Case Low test MSE against ``p`` per SNR (solid High, dashed Low).
    Right: the whitened alignment against ``p``."""
    powers, snrs = high.values("p"), high.values("snr")
    h, lw = high.values("case").index("high"), low.values("case").index("low")
    fig = Figure(figsize=(10, 4), layout="tight")
    left, right = fig.subplots(1, 2)
    for k, (snr, color) in enumerate(zip(snrs, _colors(len(snrs)), strict=True)):
        _band(left, powers, high.final("test_mse")[h, :, k], f"High, SNR {snr:g}", color=color)
        _band(left, powers, low.final("test_mse")[lw, :, k], f"Low, SNR {snr:g}", color=color,
              linestyle="--")  # fmt: skip
    for run, case, style in ((high, h, "-"), (low, lw, "--")):
        name = run.values("case")[case].capitalize()
        alignment = run.final("whitened_alignment")[case].mean(1)  # averaged over SNRs
        _band(right, powers, alignment, f"Case {name}", linestyle=style)
    for ax in (left, right):
        ax.axvline(-1.0, color="grey", linewidth=0.8)
        ax.set(xlabel="p")
        ax.legend(fontsize="x-small")
    left.set(ylabel="final test MSE")
    right.set(ylabel="whitened alignment a_w (mean over SNRs)")
    fig.suptitle(title or "Neutrality at p = −1")
    return fig


def ood_figure(results: dict, *, title: str = "") -> Figure:
    """Left: the Σ^p arm's two accuracies against ``p``. Right: each optimizer's accuracy on
    both test sets."""
    fig = Figure(figsize=(10, 4), layout="tight")
    left, right = fig.subplots(1, 2)
    sigma = results.get("sigma_p")
    if sigma is not None:
        for metric, name in (("digit_acc", "invariant-digit"), ("noise_acc", "invariant-noise")):
            _band(left, sigma.values("p"), sigma.final(metric)[0], name)
        left.legend(fontsize="small")
    left.set(xlabel="p", ylabel="accuracy", title="Σ^p")
    optimizers = results.get("optimizers")
    if optimizers is not None:
        names = list(optimizers.values("optimizer"))
        x = np.arange(len(names))
        for shift, (metric, name) in zip(
            (-0.1, 0.1),
            (("digit_acc", "invariant-digit"), ("noise_acc", "invariant-noise")),
            strict=True,
        ):
            s = quiet(summarize_seeds, optimizers.final(metric)[:, 0], axis=-1)
            error = np.nan_to_num(np.stack([s.mean - s.ci_low, s.ci_high - s.mean]))
            right.errorbar(x + shift, s.mean, yerr=error, fmt="o", capsize=3, label=name)
        right.set_xticks(x, names)
        right.legend(fontsize="small")
    right.set(ylabel="accuracy", title="optimizers")
    fig.suptitle(title or "Out-of-distribution generalisation")
    return fig


def transfer_figure(results, *, title: str = "") -> Figure:
    """Stage-2 test MSE against ``p`` per direction pair and their average."""
    powers = np.asarray(results.values("p"), float)
    mse = by_pair(results, "test_mse").astype(float)
    fig = Figure(figsize=(5.5, 4), layout="tight")
    ax = fig.subplots()
    for i, (a, b) in enumerate(results.config.pairs):
        _band(ax, powers, mse[i], f"{a.capitalize()}→{b.capitalize()}")
    _band(ax, powers, mse.mean(0), "average", color="k", linewidth=2)
    ax.axvline(-1.0, color="grey", linewidth=0.8)
    ax.set(xlabel="p", ylabel="stage-2 test MSE")
    ax.legend(fontsize="small")
    fig.suptitle(title or "Forward transfer")
    return fig
