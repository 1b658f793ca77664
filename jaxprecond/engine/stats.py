"""Seed statistics: mean, spread and 95% intervals, with diverged seeds counted and excluded."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy import stats as scipy_stats


class DivergenceWarning(UserWarning):
    """Some seeds produced NaN or inf and were left out of the statistics.

    Example:
      >>> import warnings
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     _ = summarize_seeds(np.array([1.0, np.inf, 3.0]), name="loss")
      >>> [issubclass(w.category, DivergenceWarning) for w in caught]
      [True]
      >>> str(caught[0].message).split(" were")[0]
      '1 diverged (non-finite) seed values in loss'
    """


@dataclasses.dataclass(frozen=True)
class SeedSummary:
    """Statistics over the seed axis; every field has the input's shape without that axis.

    Attributes:
      mean, std: mean and standard deviation (ddof 1) over the finite seeds.
      sem: standard error of the mean, ``std / √n``.
      ci_low, ci_high: 95% Student-t confidence interval of the mean.
      n_valid: number of finite seeds.
      n_diverged: number of seeds with a NaN or inf value, excluded from the above.

    Example:
      >>> s = summarize_seeds(np.array([[1.0, 3.0], [2.0, 2.0]]))  # 2 cells × 2 seeds
      >>> s.mean.tolist(), s.sem.tolist(), s.n_valid.tolist()
      ([2.0, 2.0], [1.0, 0.0], [2, 2])
      >>> bool(s.ci_low[0] < s.mean[0] < s.ci_high[0]), float(s.ci_low[1]), float(s.ci_high[1])
      (True, 2.0, 2.0)
    """

    mean: np.ndarray
    std: np.ndarray
    sem: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_valid: np.ndarray
    n_diverged: np.ndarray


def summarize_seeds(
    values,
    axis: int = -1,
    *,
    level: float = 0.95,
    name: str = "values",
    bootstrap: int = 0,
    bootstrap_seed: int = 0,
):
    """Mean, standard deviation, standard error and confidence interval over seeds.

    Non-finite seeds are excluded and counted; a :class:`DivergenceWarning` names how many.
    The interval is Student-t by default; with ``bootstrap > 0`` it is the percentile interval
    of that many resamples of the finite seeds.

    Args:
      values: array with a seed axis.
      axis: the seed axis.
      level: confidence level of the interval.
      name: what the values are, for the warning.
      bootstrap: number of bootstrap resamples (0: Student-t interval).
      bootstrap_seed: seed of the resampling.

    Returns:
      A :class:`SeedSummary`.

    Example:
      >>> import warnings
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore")
      ...     s = summarize_seeds(np.array([1.0, 2.0, 3.0, np.nan]))
      >>> float(s.mean), int(s.n_diverged)
      (2.0, 1)
    """
    values = np.moveaxis(np.asarray(values, np.float64), axis, -1)
    finite = np.isfinite(values)
    n_valid = finite.sum(-1)
    n_diverged = values.shape[-1] - n_valid
    if n_diverged.any():
        warnings.warn(
            f"{int(n_diverged.sum())} diverged (non-finite) seed values in {name} were excluded "
            f"from the statistics ({int((n_diverged > 0).sum())} cells affected)",
            DivergenceWarning,
            stacklevel=2,
        )
    clean = np.where(finite, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = clean.sum(-1) / n_valid
        squares = np.where(finite, (values - mean[..., None]) ** 2, 0.0).sum(-1)
        std = np.sqrt(squares / (n_valid - 1))
        sem = std / np.sqrt(n_valid)
        quantile = scipy_stats.t.ppf(0.5 + level / 2, np.maximum(n_valid - 1, 1))
    half = np.where(n_valid > 1, quantile * sem, np.nan)
    low, high = mean - half, mean + half
    if bootstrap:
        low, high = _bootstrap_interval(values, finite, bootstrap, level, bootstrap_seed)
    return SeedSummary(mean, std, sem, low, high, n_valid, n_diverged)


def _bootstrap_interval(values, finite, resamples: int, level: float, seed: int):
    """Percentile bootstrap interval of the mean over the last axis, finite seeds only."""
    rng = np.random.default_rng(seed)
    flat_values = values.reshape(-1, values.shape[-1])
    flat_finite = finite.reshape(-1, values.shape[-1])
    low = np.full(flat_values.shape[0], np.nan)
    high = np.full(flat_values.shape[0], np.nan)
    for i, (row, keep) in enumerate(zip(flat_values, flat_finite, strict=True)):
        row = row[keep]
        if row.size < 2:
            continue
        means = row[rng.integers(0, row.size, (resamples, row.size))].mean(-1)
        low[i], high[i] = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return low.reshape(values.shape[:-1]), high.reshape(values.shape[:-1])


def summarize_trajectories(
    values, seed_axis: int, *, final: bool = True, name: str = "values", bootstrap: int = 0
) -> SeedSummary:
    """Seed statistics of trajectories whose last axis is the record (step) axis.

    A seed whose trajectory holds a NaN or inf anywhere counts as diverged: it is excluded
    (from every record) and reported with a :class:`DivergenceWarning`.

    Args:
      values: array with a seed axis and, last, a record axis.
      seed_axis: the seed axis (non-negative, counted before the record axis).
      final: summarise the last record only (else every record).
      name: what the values are, for the warning.
      bootstrap: bootstrap resamples for the interval (0: Student-t).

    Returns:
      A :class:`SeedSummary` without the seed axis (and without the record axis if ``final``).

    Example:
      >>> import warnings
      >>> loss = np.array([[1.0, 0.5], [np.nan, 1.0], [1.0, 1.5]])  # 3 seeds × 2 records
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore", DivergenceWarning)
      ...     last = summarize_trajectories(loss, 0)
      ...     every = summarize_trajectories(loss, 0, final=False)
      >>> float(last.mean), int(last.n_valid), int(last.n_diverged)
      (1.0, 2, 1)
      >>> every.mean.tolist(), every.n_diverged.tolist()
      ([1.0, 1.0], [1, 1])
    """
    values = np.asarray(values)
    bad = ~np.isfinite(values).all(axis=-1, keepdims=True)
    values = np.where(bad, np.nan, values)
    if final:
        values = values[..., -1]
    return summarize_seeds(values, axis=seed_axis, name=name, bootstrap=bootstrap)
