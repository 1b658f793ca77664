"""Inference across seeds: three-valued verdicts on claims from per-seed statistics.

The seed is the unit of replication. A sweep gives, for every seed, a curve over the swept
value (the power ``p``, a learning rate); the points of one seed are not independent of each
other, so pooling the ``(p, seed)`` points into one sample overstates the evidence. Here every
statistic is first reduced to one number per seed (an effect, a difference, a rank correlation)
and only those numbers are tested across seeds.

- The test across seeds is a sign-flip permutation test of the mean (H0: the per-seed values are
  symmetric about 0). It is exact, by enumeration of all ``2^n`` sign patterns, for ``n <= 16``
  seeds, and needs no normality. Its smallest p-value is ``2 / 2^n``: two seeds can never reach
  ``p < 0.05`` (the smallest p is 0.5), six seeds can (``2/64``).
- A verdict is one of :data:`HOLDS`, :data:`FAILS` and :data:`INCONCLUSIVE`: a claim holds when
  the test rejects in the claimed direction, fails when it rejects in the other, and is otherwise
  inconclusive, which is not a failure: too few seeds, or an effect too small to see.
- A claim that compares several rows of one sweep (the best power against every other) makes
  several tests; their p-values are adjusted together with :func:`holm`.
- Seeds with a non-finite value (diverged runs) are left out of a test and counted in
  ``Test.n_dropped``, so a report can say how many seeds a verdict rests on.

Only numpy and scipy are used.

Example:
  >>> effects = np.array([0.8, 1.1, 0.9, 1.3, 0.7, 1.0, np.nan])  # one per seed, one diverged
  >>> test = sign_flip_test(effects)
  >>> test.n, test.n_dropped, test.p_value == 2 / 2**6
  (6, 1, True)
  >>> verdict(test, +1), verdict(test, -1), verdict(sign_flip_test(effects[:2]), +1)
  ('holds', 'fails', 'inconclusive')
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats as scipy_stats

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
#: Significance level of every verdict.
ALPHA = 0.05
#: Seed counts up to this are tested exactly, over all ``2^n`` sign patterns.
EXACT_MAX_SEEDS = 16
#: Relative tolerance under which a resampled statistic ties the observed one (counts as extreme).
TIE_TOLERANCE = 1e-12

NAN_INTERVAL = (float("nan"), float("nan"))


@dataclasses.dataclass(frozen=True)
class Test:
    """The result of one test across seeds.

    Attributes:
      estimate: the statistic, e.g. the mean over seeds of a per-seed effect (nan if undefined).
      interval: its confidence interval (95% unless the test says otherwise), ``(nan, nan)``
        when undefined.
      p_value: the p-value (nan when undefined).
      n: seeds used.
      n_dropped: seeds left out because a value was non-finite (diverged).
      method: what was computed, in words.

    Example:
      >>> t = sign_flip_test([1.0, 2.0, 3.0])
      >>> t.estimate, t.n, t.method
      (2.0, 3, 'sign-flip permutation over 3 seeds (exact, 8 sign patterns)')
    """

    __test__ = False  # a name pytest would otherwise try to collect where it is imported

    estimate: float
    interval: tuple[float, float]
    p_value: float
    n: int
    n_dropped: int
    method: str


def _undefined(n: int, n_dropped: int, method: str) -> Test:
    """A test with nothing to estimate: estimate, interval and p-value nan."""
    return Test(float("nan"), NAN_INTERVAL, float("nan"), n, n_dropped, method)


def _finite_part(values) -> tuple[np.ndarray, int]:
    """The finite entries of a 1-d array and how many were dropped."""
    values = np.asarray(values, np.float64).ravel()
    finite = values[np.isfinite(values)]
    return finite, values.size - finite.size


def _t_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Student-t interval of the mean at ``level``; ``(nan, nan)`` for fewer than 2 values."""
    n = values.size
    if n < 2:
        return NAN_INTERVAL
    half = scipy_stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
    mean = values.mean()
    return float(mean - half), float(mean + half)


def _sign_patterns(n: int, resamples: int, seed: int) -> np.ndarray:
    """All ``2^n`` sign patterns (``n <= EXACT_MAX_SEEDS``) or ``resamples`` random ones."""
    if n <= EXACT_MAX_SEEDS:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    else:
        bits = np.random.default_rng(seed).integers(0, 2, (resamples, n))
    return (2 * bits - 1).astype(np.float64)


def sign_flip_test(per_seed, *, resamples: int = 20_000, seed: int = 0) -> Test:
    """Two-sided sign-flip permutation test that the per-seed values are symmetric about 0.

    The statistic is ``|mean|``; its null distribution flips the sign of every seed's value at
    random. Up to 16 seeds all ``2^n`` patterns are enumerated (exact p); beyond, ``resamples``
    random patterns give ``p = (1 + #{|mean*| >= |mean|}) / (1 + resamples)``. A resampled mean
    within ``1e-12 · mean(|values|)`` of the observed one counts as a tie, hence as extreme.

    Args:
      per_seed: ``(S,)`` one statistic per seed; non-finite entries are dropped and counted.
      resamples: random sign patterns when there are more than 16 seeds.
      seed: seed of those patterns.

    Returns:
      A :class:`Test` of the mean with its 95% Student-t interval (``(nan, nan)`` below 2 seeds);
      no seeds: estimate and p nan; all values zero: p 1.

    Example:
      >>> t = sign_flip_test([0.5, 1.0])  # two seeds: the smallest possible p is 2/4
      >>> t.estimate, t.p_value
      (0.75, 0.5)
    """
    values, n_dropped = _finite_part(per_seed)
    n = values.size
    exact = n <= EXACT_MAX_SEEDS
    patterns = f"exact, {2**n} sign patterns" if exact else f"{resamples} random sign patterns"
    method = f"sign-flip permutation over {n} seeds ({patterns})"
    if n == 0:
        return _undefined(0, n_dropped, method)
    mean = values.mean()
    flipped = np.abs(_sign_patterns(n, resamples, seed) @ values / n)
    extreme = np.count_nonzero(flipped >= abs(mean) - TIE_TOLERANCE * np.abs(values).mean())
    p_value = extreme / 2**n if exact else (1 + extreme) / (1 + resamples)
    return Test(float(mean), _t_interval(values, 0.95), float(p_value), n, n_dropped, method)


def paired_difference(a, b, **kw) -> Test:
    """Sign-flip test of the per-seed difference ``a - b`` of two paired samples.

    Args:
      a, b: ``(S,)`` values paired by seed; a seed is dropped if either value is non-finite.
      **kw: passed to :func:`sign_flip_test` (``resamples``, ``seed``).

    Returns:
      The :class:`Test` of the mean difference.

    Example:
      >>> t = paired_difference([3.0, 4.0, np.nan], [1.0, 1.0, 0.0])
      >>> t.estimate, t.n, t.n_dropped
      (2.5, 2, 1)
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-d of one shape, got {a.shape} and {b.shape}")
    both = np.isfinite(a) & np.isfinite(b)
    test = sign_flip_test(np.where(both, a - b, np.nan), **kw)
    return dataclasses.replace(test, method=f"paired difference; {test.method}")


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ of one seed's values against ``x``; 0 when the values are all equal."""
    if np.ptp(y) == 0:
        return 0.0
    return float(scipy_stats.spearmanr(x, y).statistic)


def seedwise_trend(x, values, **kw) -> Test:
    """Sign-flip test of the per-seed Spearman ρ between ``x`` and each seed's values.

    A monotone trend holds when the seeds' rank correlations are consistently of one sign; the
    points of different seeds are never pooled.

    Args:
      x: ``(P,)`` the swept values, e.g. the powers ``p``.
      values: ``(P, S)`` one column per seed; a seed with a non-finite value is dropped.
      **kw: passed to :func:`sign_flip_test`.

    Returns:
      The :class:`Test` of the mean ρ over seeds. Fewer than two points (or ``x`` constant):
      estimate and p nan, ``n`` 0.

    Example:
      >>> x = np.array([0.0, 0.5, 1.0])
      >>> values = np.array([[1.0, 2.0], [2.0, 3.0], [4.0, 3.5]])  # increasing in both seeds
      >>> t = seedwise_trend(x, values)
      >>> t.estimate, t.p_value, verdict(t, +1)
      (1.0, 0.5, 'inconclusive')
    """
    x = np.asarray(x, np.float64)
    values = np.asarray(values, np.float64)
    if x.ndim != 1 or values.ndim != 2 or values.shape[0] != x.size:
        raise ValueError(f"need x (P,) and values (P, S), got {x.shape} and {values.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"x must be finite, got {x}")
    finite_seeds = np.isfinite(values).all(axis=0)
    n_dropped = int(values.shape[1] - finite_seeds.sum())
    method = f"per-seed Spearman ρ over {x.size} points"
    if x.size < 2 or np.ptp(x) == 0:
        return _undefined(0, n_dropped, f"{method}: no trend to test")
    rhos = [_spearman(x, column) for column in values[:, finite_seeds].T]
    test = sign_flip_test(np.asarray(rhos, np.float64), **kw)
    return dataclasses.replace(test, n_dropped=n_dropped, method=f"{method}; {test.method}")


def tost(differences, margin: float, *, alpha: float = ALPHA) -> Test:
    """Two one-sided t-tests that the mean per-seed difference lies within ``±margin``.

    Args:
      differences: ``(S,)`` one difference per seed; non-finite entries are dropped and counted.
      margin: the equivalence margin, positive.
      alpha: level of each one-sided test.

    Returns:
      A :class:`Test` whose interval is the ``(1 − 2α)`` t interval (90% by default) and whose
      p-value is the larger one-sided p (small: equivalent). Fewer than 2 seeds: nan.

    Example:
      >>> t = tost([0.01, -0.02, 0.0, 0.015, -0.005], margin=0.1)
      >>> bool(t.p_value < 0.05), equivalence_verdict(t, 0.1)
      (True, 'holds')
    """
    if not margin > 0:
        raise ValueError(f"margin must be positive, got {margin}")
    values, n_dropped = _finite_part(differences)
    n = values.size
    method = f"TOST (two one-sided t-tests) within ±{margin:g} over {n} seeds"
    if n < 2:
        return _undefined(n, n_dropped, method)
    mean, sem = values.mean(), values.std(ddof=1) / np.sqrt(n)
    if sem == 0:
        p_above_lower, p_below_upper = float(mean <= -margin), float(mean >= margin)
    else:
        p_above_lower = scipy_stats.t.sf((mean + margin) / sem, n - 1)  # H0: mean <= -margin
        p_below_upper = scipy_stats.t.cdf((mean - margin) / sem, n - 1)  # H0: mean >= margin
    p_value = float(max(p_above_lower, p_below_upper))
    return Test(float(mean), _t_interval(values, 1 - 2 * alpha), p_value, n, n_dropped, method)


def equivalence_verdict(test: Test, margin: float, *, alpha: float = ALPHA) -> str:
    """Verdict on "equal within ``±margin``" from a :func:`tost` result.

    Args:
      test: the :func:`tost` result.
      margin: the margin it was computed with.
      alpha: significance level.

    Returns:
      :data:`HOLDS` if ``p < alpha``; :data:`FAILS` if the interval lies entirely outside
      ``[-margin, margin]``; else :data:`INCONCLUSIVE` (also when anything is nan).

    Example:
      >>> equivalence_verdict(tost([1.0, 1.1, 0.9, 1.05], margin=0.1), 0.1)
      'fails'
    """
    low, high = test.interval
    if test.p_value < alpha:
        return HOLDS
    if low > margin or high < -margin:
        return FAILS
    return INCONCLUSIVE


def verdict(
    test: Test, direction: int, *, p_value: float | None = None, alpha: float = ALPHA
) -> str:
    """Verdict on the claim that ``test.estimate`` has the sign ``direction``.

    Args:
      test: the test of the claim.
      direction: ``+1`` or ``-1``, the claimed sign.
      p_value: overrides ``test.p_value`` (pass a :func:`holm`-adjusted one).
      alpha: significance level.

    Returns:
      :data:`HOLDS` if ``p < alpha`` and the estimate has the claimed sign, :data:`FAILS` if
      ``p < alpha`` and it has the opposite sign, else :data:`INCONCLUSIVE` (also for nan).

    Example:
      >>> t = Test(0.4, (0.1, 0.7), 0.01, 8, 0, "example")
      >>> verdict(t, +1), verdict(t, -1), verdict(t, +1, p_value=0.2)
      ('holds', 'fails', 'inconclusive')
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    p = test.p_value if p_value is None else p_value
    if not p < alpha:
        return INCONCLUSIVE
    sign = np.sign(test.estimate)
    if sign == direction:
        return HOLDS
    if sign == -direction:
        return FAILS
    return INCONCLUSIVE


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values.

    Sorted ascending, the ``i``-th of ``m`` p-values (from 0) is multiplied by ``m − i``; the
    running maximum keeps the order, and values are capped at 1. Nan entries stay nan and do not
    count in ``m``.

    Args:
      p_values: p-values of one family of hypotheses, any shape.

    Returns:
      The adjusted p-values, same shape.

    Example:
      >>> holm([0.01, 0.04, np.nan, 0.03, 0.005]).tolist()
      [0.03, 0.06, nan, 0.06, 0.02]
    """
    p_values = np.asarray(p_values, np.float64)
    flat = p_values.ravel()
    adjusted = np.full_like(flat, np.nan)
    defined = np.flatnonzero(~np.isnan(flat))
    order = defined[np.argsort(flat[defined], kind="stable")]
    m = order.size
    scaled = (m - np.arange(m)) * flat[order]
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted.reshape(p_values.shape)


def _first_crossings(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Where each row of ``d`` (``(R, P)`` over the grid ``x``) first changes sign; nan if never.

    A grid point where ``d`` is exactly 0 is a crossing there; a strict sign change between
    adjacent points is linearly interpolated. The first of these along ``x`` counts.
    """
    zero = d == 0
    change = d[:, :-1] * d[:, 1:] < 0
    # Events in order along x: zero at point i (column 2i), change after point i (column 2i+1).
    events = np.zeros((d.shape[0], 2 * x.size - 1), bool)
    events[:, 0::2], events[:, 1::2] = zero, change
    first = events.argmax(axis=1)
    rows, i = np.arange(d.shape[0]), first // 2
    j = np.minimum(i + 1, x.size - 1)
    left, right = d[rows, i], d[rows, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        interpolated = x[i] + (x[j] - x[i]) * left / (left - right)
    crossing = np.where(first % 2 == 0, x[i], interpolated)
    return np.where(events.any(axis=1), crossing, np.nan)


def bootstrap_crossing(
    x, high, low, *, resamples: int = 2000, seed: int = 0
) -> tuple[float, tuple[float, float], float]:
    """Where two seed-paired curves cross, with a bootstrap interval over seeds.

    ``d(x)`` is the mean over seeds of ``high − low``; the crossing is where ``d`` first changes
    sign along ``x``, linearly interpolated between the two grid points around it (a grid point
    where ``d`` is exactly 0 is the crossing). The interval comes from resampling the seeds with
    replacement (all resamples at once, as multinomial counts per seed).

    Args:
      x: ``(P,)`` strictly increasing grid.
      high, low: ``(P, S)`` the two curves, one column per seed; a seed with a non-finite value
        in either is dropped.
      resamples: bootstrap resamples.
      seed: seed of the resampling.

    Returns:
      ``(crossing, (lo, hi), fraction_undefined)``: the crossing (nan if ``d`` never changes
      sign); the 2.5 and 97.5 percentiles of the crossings of the resamples that have one
      (``(nan, nan)`` if none does); the share of resamples without a crossing (when it is
      above 0 the interval describes only the resamples that cross).

    Example:
      >>> x = np.array([0.0, 1.0, 2.0])
      >>> high = np.array([[0.0, 0.2], [1.0, 1.2], [2.0, 2.2]])  # 3 points × 2 seeds
      >>> low = np.ones((3, 2))
      >>> crossing, interval, undefined = bootstrap_crossing(x, high, low)
      >>> round(crossing, 6), undefined  # mean of high - low: -0.9, 0.1, 1.1
      (0.9, 0.0)
    """
    x = np.asarray(x, np.float64)
    high, low = np.asarray(high, np.float64), np.asarray(low, np.float64)
    if x.ndim != 1 or high.shape != low.shape or high.ndim != 2 or high.shape[0] != x.size:
        raise ValueError(
            f"need x (P,), high and low (P, S); got {x.shape}, {high.shape}, {low.shape}"
        )
    if not (np.diff(x) > 0).all():
        raise ValueError(f"x must be strictly increasing, got {x}")
    kept = (np.isfinite(high) & np.isfinite(low)).all(axis=0)
    gap = (high - low)[:, kept]
    n_seeds = gap.shape[1]
    if n_seeds == 0:
        return float("nan"), NAN_INTERVAL, 1.0
    crossing = _first_crossings(x, gap.mean(axis=1)[None, :])[0]
    counts = np.random.default_rng(seed).multinomial(
        n_seeds, np.full(n_seeds, 1 / n_seeds), resamples
    )
    resampled = _first_crossings(x, counts @ gap.T / n_seeds)
    defined = resampled[~np.isnan(resampled)]
    interval = NAN_INTERVAL
    if defined.size:
        interval = tuple(float(q) for q in np.percentile(defined, [2.5, 97.5]))
    return float(crossing), interval, float(1 - defined.size / resamples)


def best_against_others(
    values, *, lower_is_better: bool = True, **kw
) -> tuple[int, list[Test | None], np.ndarray]:
    """The best row of a sweep and a paired test of it against every other row.

    Args:
      values: ``(P, S)`` one row per swept value, one column per seed.
      lower_is_better: whether a lower mean is better (a loss) or a higher one (an accuracy).
      **kw: passed to :func:`sign_flip_test`.

    Returns:
      ``(best, tests, adjusted)``: the row with the best mean over its finite seeds; for every
      row ``j`` the :func:`paired_difference` test of ``j`` against ``best``, signed so that a
      positive estimate means the best is better (``None`` at ``best``); and the
      :func:`holm`-adjusted p-values of those tests in row order (nan at ``best``).

    Example:
      >>> values = np.array([[2.0, 2.1, 1.9], [1.0, 1.1, 0.9]])  # 2 rows × 3 seeds
      >>> best, tests, adjusted = best_against_others(values)
      >>> best, tests[1], round(tests[0].estimate, 6), adjusted.tolist()
      (1, None, 1.0, [0.25, nan])
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"values must be (P, S) with P >= 1, got {values.shape}")
    rows = values.shape[0]
    if rows == 1:
        return 0, [None], np.array([np.nan])
    finite = np.isfinite(values)
    counts = finite.sum(axis=1)
    if not counts.any():
        raise ValueError("no row has a finite value: there is no best row")
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(finite, values, 0.0).sum(axis=1) / counts
    best = int(np.nanargmin(means) if lower_is_better else np.nanargmax(means))
    tests: list[Test | None] = []
    for j in range(rows):
        if j == best:
            tests.append(None)
        elif lower_is_better:
            tests.append(paired_difference(values[j], values[best], **kw))
        else:
            tests.append(paired_difference(values[best], values[j], **kw))
    p_values = [np.nan if test is None else test.p_value for test in tests]
    return best, tests, holm(p_values)
