"""The step-size confound, controlled: the noise experiment at learning rates tuned per (case, p).

At one learning rate, ``p`` changes the step along each eigen-direction as well as the
direction's weight (in whitened coordinates the step is ``η Σ^{p+1}``), so "MSE falls with p"
could be about step size. Here each (case, p) gets its own learning rate, chosen from a log grid
on *tuning* seeds (drawn from ``root_seed + 1``, so independent of the evaluation seeds) and
evaluated on the config's own seeds; the claims are then tested at the tuned rates.

The choice: the rate with the lowest final test MSE averaged over the SNRs and tuning seeds,
among the rates at which no tuning seed diverged. Both the final and the best-over-time test
MSE of the evaluation seeds are reported.

Example (minutes at the quick sizes; ``tests/test_reproduce.py`` runs it end to end)::

  from jaxprecond.experiments.noise import NoiseConfig
  study = tuned_study(NoiseConfig(powers=(-1.0, 1.0), snrs=(1.0,), seeds=8), (0.01, 0.1, 1.0))
  study.chosen                      # (case, p): the rate chosen on the tuning seeds
  study.results.final("test_mse")   # (case, p, snr, seed) at the chosen rates
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from jaxprecond.engine.results import SweepResults
from jaxprecond.engine.stats import summarize_seeds
from jaxprecond.engine.views import quiet
from jaxprecond.experiments.noise import NOISE, NoiseConfig

METRICS = ("test_mse", "train_loss", "whitened_alignment")
#: Learning rates of the full study (a factor √10 apart) and of ``--quick``.
RATES = tuple(float(r) for r in np.round(np.geomspace(1e-3, 10**0.5, 8), 6))
QUICK_RATES = (0.01, 0.1, 1.0)


@dataclasses.dataclass(frozen=True)
class TunedStudy:
    """A tuned study's runs and choices.

    Attributes:
      rates: the learning-rate grid.
      chosen: ``(case, p)`` the chosen rate (nan where every rate diverged on a tuning seed).
      tuning, evaluation: the two sweeps (case × p × snr × learning_rate).
      results: the evaluation at the chosen rates, case × p × snr, with ``test_mse``,
        ``train_loss``, ``whitened_alignment`` and ``best_test_mse`` (the lowest over records).
    """

    rates: tuple
    chosen: np.ndarray
    tuning: SweepResults
    evaluation: SweepResults
    results: SweepResults


def choose_rates(tuning: SweepResults) -> np.ndarray:
    """The index of the chosen rate per (case, p), ``-1`` where every rate diverged.

    Args:
      tuning: a sweep with axes case × p × snr × learning_rate.

    Returns:
      ``(case, p)`` integer indices into the learning-rate axis.

    Example:
      >>> mse = np.array([1.0, 0.5, np.nan])[None, None, None, :, None, None]  # rate 3 diverged
      >>> axes = (("case", ("high",)), ("p", (0.0,)), ("snr", (1.0,)),
      ...         ("learning_rate", (0.01, 0.1, 1.0)))
      >>> choose_rates(SweepResults(None, None, axes, np.arange(1), np.array([0]),
      ...                           {"test_mse": mse}, 1)).tolist()
      [[1]]
    """
    mse = tuning.data["test_mse"]  # (case, p, snr, lr, seed, record)
    diverged = ~np.isfinite(mse).all(axis=(2, 4, 5))  # (case, p, lr)
    score = np.where(diverged, np.inf, mse[..., -1].mean(axis=(2, 4)))
    return np.where(np.isfinite(score).any(-1), np.argmin(score, axis=-1), -1)


def at_rates(evaluation: SweepResults, chosen: np.ndarray) -> SweepResults:
    """The evaluation's cells at the chosen rates: case × p × snr (nan where none was chosen)."""
    cases, powers = evaluation.values("case"), evaluation.values("p")
    data = {}
    for metric in METRICS:
        values = evaluation.data[metric]  # (case, p, snr, lr, seed, record)
        picked = np.full(values.shape[:3] + values.shape[4:], np.nan)
        for c in range(len(cases)):
            for j in range(len(powers)):
                if chosen[c, j] >= 0:
                    picked[c, j] = values[c, j, :, chosen[c, j]]
        data[metric] = picked
    data["best_test_mse"] = np.min(data["test_mse"], axis=-1, keepdims=True)
    axes = tuple((n, v) for n, v in evaluation.axes if n != "learning_rate")
    return SweepResults(
        None, evaluation.config, axes, evaluation.seeds, evaluation.steps, data,
        evaluation.total_seeds,
    )  # fmt: skip


def tuned_study(
    config: NoiseConfig, rates=QUICK_RATES, *, tuning_seeds: int = 4, out=None, progress=True
) -> TunedStudy:
    """Tune the learning rate per (case, p) on tuning seeds, then evaluate on the config's seeds.

    Args:
      config: the noise settings (its ``learning_rate`` is replaced by the grid).
      rates: the learning-rate grid (increasing; reach divergence at its top).
      tuning_seeds: seeds of the tuning sweep (drawn from ``root_seed + 1``).
      out: a folder for the two runs (``tuning/``, ``evaluation/``; resumed), or ``None``.
      progress: progress bars.

    Returns:
      A :class:`TunedStudy`.
    """
    tuning_config = dataclasses.replace(config, seeds=tuning_seeds, root_seed=config.root_seed + 1)
    axes = {"learning_rate": tuple(rates)}
    run = lambda c, name: NOISE.sweep(  # noqa: E731
        c, axes=axes, out=None if out is None else Path(out, name), progress=progress
    )
    tuning = run(tuning_config, "tuning")
    evaluation = run(config, "evaluation")
    index = choose_rates(tuning)
    chosen = np.where(index >= 0, np.asarray(rates)[np.maximum(index, 0)], np.nan)
    return TunedStudy(tuple(rates), chosen, tuning, evaluation, at_rates(evaluation, index))


def study_table(study: TunedStudy) -> str:
    """Markdown: per (case, p) the chosen rate, the share of tuning seeds diverged at each rate,
    and the evaluation's final and best-over-time test MSE (mean ± 95% half-width, over SNRs
    per seed)."""
    cases, powers = study.results.values("case"), study.results.values("p")
    mse = study.tuning.data["test_mse"]
    diverged = (~np.isfinite(mse).all(axis=(2, 5))).mean(-1)  # (case, p, lr)
    lines = [
        "| case | p | chosen lr | tuning seeds diverged per lr | final test MSE | best test MSE |",
        "|---|---|---|---|---|---|",
    ]
    summaries = {
        m: quiet(summarize_seeds, study.results.final(m).mean(axis=2), axis=-1)
        for m in ("test_mse", "best_test_mse")
    }
    for c, case in enumerate(cases):
        for j, p in enumerate(powers):
            shares = ", ".join(
                f"{r:g}: {d:.0%}" for r, d in zip(study.rates, diverged[c, j], strict=True)
            )
            cells = [
                f"{s.mean[c, j]:.4f} ± {(s.ci_high[c, j] - s.ci_low[c, j]) / 2:.4f}"
                for s in summaries.values()
            ]
            lines.append(
                f"| {case} | {p:g} | {study.chosen[c, j]:g} | {shares} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines)


def study_figure(study: TunedStudy) -> Figure:
    """Left: tuning test MSE against the rate per (case, p) (mean over SNRs and seeds). Right:
    the evaluation's final test MSE against ``p`` at the tuned rates, per case."""
    cases, powers = study.results.values("case"), study.results.values("p")
    fig = Figure(figsize=(10, 4), layout="tight")
    left, right = fig.subplots(1, 2)
    mse = study.tuning.data["test_mse"][..., -1]  # (case, p, snr, lr, seed)
    with warnings.catch_warnings():  # a rate at which every seed diverged has no mean
        warnings.simplefilter("ignore", RuntimeWarning)
        curve = np.nanmean(np.where(np.isfinite(mse), mse, np.nan), axis=(2, 4))
    for c, case in enumerate(cases):
        for j, p in enumerate(powers):
            style = "-" if case == "high" else "--"
            left.plot(study.rates, curve[c, j], style, marker="o", label=f"{case}, p={p:g}")
        final = quiet(summarize_seeds, study.results.final("test_mse")[c].mean(1), axis=-1)
        right.errorbar(powers, final.mean, yerr=np.nan_to_num(final.mean - final.ci_low),
                       marker="o", capsize=3, label=f"Case {case.capitalize()}")  # fmt: skip
    left.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="tuning test MSE")
    left.legend(fontsize="xx-small", ncol=2)
    right.set(xlabel="p", ylabel="final test MSE at the tuned rate (mean over SNRs)")
    right.legend(fontsize="small")
    fig.suptitle("Learning rate tuned per (case, p)")
    return fig
