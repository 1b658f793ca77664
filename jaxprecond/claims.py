"""The paper's claims as tests across seeds, each with a three-valued verdict.

:func:`noise_claims`, :func:`neutrality_claims`, :func:`ood_claims` and :func:`transfer_claims`
turn finished runs into :class:`Claim` rows; :func:`claims_table` writes them as Markdown. The
statistics (:mod:`jaxprecond.engine.inference`):

* **The seed is the unit of replication.** Every statistic is reduced to one number per seed (a
  rank correlation over ``p``, a difference between two cells) and only those numbers are tested
  across seeds, by an exact sign-flip permutation test. Two seeds can never make a claim hold.
* **Verdicts**: *holds* when significant (α = 0.05) in the claimed direction, *fails* when
  significant the other way, *inconclusive* otherwise. The rows of one claim (its cases, SNRs,
  pairs, comparisons) share a Holm correction: the p-value shown is the adjusted one.
* **Diverged seeds** (a non-finite value) are left out of a row's test and counted in its row.

The claims:

* **Spectral bias** (Fig. 1a,b; also for the AdaHessian arm, Fig. 1c,d): per seed, Spearman's ρ
  of ``p`` and the final test MSE; negative in Case High, positive in Case Low, at every SNR.
* **The train/test gap shrinks with p in Case High**: the same on ``test MSE − train loss``.
* **The train/test gaps are largest at low SNR**: per seed, the gap averaged over ``p`` falls
  with the SNR (ρ over SNRs, per case).
* **Sanity floor**: no student beats the teacher's own test MSE (the noise floor, about
  ``1/(1 + SNR²)`` in standardised units); per seed, ``test MSE − floor`` is positive in every
  cell.
* **p = −1 is spectrum-neutral**, measured where it lives. In whitened coordinates the step is
  ``ṽ ← ṽ − η Σ^{p+1} ∇_ṽ L`` and Case High at ``p`` is Case Low at ``−2−p`` with the teacher
  scaled by 10 (an exact duality under the theory's Gaussian initialisation, tested in
  ``tests/test_duality.py``). So neutrality means: the High and Low curves of test MSE against
  ``p`` cross at ``p* = −1`` (bootstrap interval over seeds, at each SNR; holds when the interval
  lies within ``−1 ± 0.5``), and at ``p = −1`` the paired per-seed differences of test MSE and of
  the *whitened* alignment are equivalent to zero (TOST, margins :data:`MSE_MARGIN`,
  :data:`ALIGNMENT_MARGIN`). Both with the teacher scale equalised and as the authors ran it.
  The input-space alignment ``‖W1 β̂‖²/‖W1‖²`` is not used: the 100× eigenvalue ratio alone
  separates the two cases there.
* **Σ^p steers which OOD feature is used** (Fig. 2b): per-seed ρ of ``p`` and the
  invariant-digit accuracy (positive) and the invariant-noise accuracy (negative).
* **The optimizer ranking flips** (Fig. 2a), tested in its informative direction: the
  ``p ≈ −1`` methods (K-FAC, L-BFGS, AdaHessian, Adam) beat the larger-``p`` methods (GD, SAM)
  on invariant-noise, and the reverse on invariant-digit (per seed: the groups' mean accuracies'
  difference).
* **p = −1 transfers best** (Sec. 4.3): per direction pair and on average, the stage-2 test MSE
  at ``p = −1`` against every other ``p``, paired by seed (Holm across the comparisons); holds
  when ``p = −1`` is significantly better than every other power.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from jaxprecond.engine.inference import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    Test,
    bootstrap_crossing,
    equivalence_verdict,
    holm,
    paired_difference,
    seedwise_trend,
    sign_flip_test,
    tost,
    verdict,
)
from jaxprecond.experiments.transfer import by_pair

VERDICTS = (HOLDS, FAILS, INCONCLUSIVE)
SCENARIO_NAMES = {"digit_acc": "invariant-digit", "noise_acc": "invariant-noise"}
#: The optimizers whose preconditioner is about Σ^{-1} (p ≈ −1) and those at larger p.
WHITENING_OPTIMIZERS = ("kfac", "lbfgs", "adahessian", "adam")
PLAIN_OPTIMIZERS = ("gd", "sam")
#: TOST margins of the neutrality claims: test MSE (standardised targets) and whitened alignment.
MSE_MARGIN = 0.05
ALIGNMENT_MARGIN = 0.05
#: The crossing point holds when its interval lies within −1 ± this.
CROSSING_MARGIN = 0.5


@dataclasses.dataclass(frozen=True)
class Claim:
    """One row of a claim: its test, verdict and the seeds behind it.

    Attributes:
      claim: the claim in words.
      setting: where it was tested (experiment, normalisation, SNR, data set).
      statistic: the statistic's name and test.
      value: its value.
      interval: its interval ``(low, high)`` (95% unless the statistic says otherwise), or
        ``None``.
      p_value: the p-value (Holm-adjusted across the claim's rows), or ``None``.
      verdict: ``"holds"``, ``"fails"`` or ``"inconclusive"``.
      seeds: seeds the test used.
      diverged: seeds left out because a value diverged.
      detail: the numbers behind the verdict.
      figure: the file name of the figure that shows it (in the run folder), or ``""``.

    Example:
      >>> c = Claim("x grows with p", "toy", "ρ", 0.9, None, 0.01, "holds", 8, 0)
      >>> c.holds, c.detail
      (True, '')
      >>> Claim("x", "toy", "ρ", 0.9, None, 0.01, "yes", 8, 0)
      Traceback (most recent call last):
      ...
      ValueError: verdict must be one of ('holds', 'fails', 'inconclusive'), got 'yes'
    """

    claim: str
    setting: str
    statistic: str
    value: float
    interval: tuple[float, float] | None
    p_value: float | None
    verdict: str
    seeds: int
    diverged: int
    detail: str = ""
    figure: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def holds(self) -> bool:
        """Whether the verdict is *holds*."""
        return self.verdict == HOLDS


def _interval(test: Test):
    low, high = test.interval
    return None if math.isnan(low) else (float(low), float(high))


def directional_rows(claim, rows, *, statistic, figure="") -> list[Claim]:
    """Claim rows from tests with a claimed sign, Holm-adjusted together.

    Args:
      claim: the claim in words (one per row, or one string for all).
      rows: ``(setting, test, direction, detail)`` per row.
      statistic: the statistic's name.
      figure: the figure's file name.

    Returns:
      One :class:`Claim` per row.

    Example:
      >>> from jaxprecond.engine.inference import sign_flip_test
      >>> rows = [("a", sign_flip_test(np.arange(1.0, 9.0)), +1, ""),
      ...         ("b", sign_flip_test(-np.arange(1.0, 9.0)), +1, "")]
      >>> [c.verdict for c in directional_rows("x > 0", rows, statistic="mean")]
      ['holds', 'fails']
    """
    adjusted = holm([t.p_value for _, t, _, _ in rows])
    claims = []
    for (setting, test, direction, detail), p in zip(rows, adjusted, strict=True):
        text = claim if isinstance(claim, str) else claim[len(claims)]
        claims.append(
            Claim(
                text, setting, f"{statistic}; {test.method}", test.estimate, _interval(test),
                None if math.isnan(p) else float(p), verdict(test, direction, p_value=p),
                test.n, test.n_dropped, detail, figure,
            )
        )  # fmt: skip
    return claims


def spectral_bias_claims(results, *, setting: str = "", figure: str = "") -> list[Claim]:
    """Fig. 1's claim: the final test MSE falls with ``p`` in Case High and rises in Case Low.

    Args:
      results: a noise run's :class:`~jaxprecond.engine.results.SweepResults` (case × p × snr).
      setting: text naming the run, ending in ``", "``.
      figure: the figure's file name.

    Returns:
      One row per case and SNR, Holm-adjusted together.

    Example:
      >>> p = np.array([-1.0, 0.0, 1.0])[:, None, None] + np.zeros((3, 1, 8))
      >>> noise = np.random.default_rng(0).normal(0, 0.1, (3, 1, 8))
      >>> mse = np.stack([1 - p / 4 + noise, 1 + p / 4 + noise])  # (case, p, snr, seed)
      >>> [c.verdict for c in spectral_bias_claims(_fake_noise(mse))]
      ['holds', 'holds']
    """
    cases, powers, snrs = (results.values(n) for n in ("case", "p", "snr"))
    mse = results.final("test_mse")
    expected = {"high": ("decreases", -1), "low": ("increases", +1)}
    rows, words = [], []
    for c, case in enumerate(cases):
        word, sign = expected[case]
        words.append(f"Case {case.capitalize()}: final test MSE {word} with p")
        for k, snr in enumerate(snrs):
            rows.append((f"{setting}SNR {snr:g}", seedwise_trend(powers, mse[c, :, k]), sign, ""))
    claims = [w for w in words for _ in snrs]
    return directional_rows(claims, rows, statistic="mean per-seed ρ(p, test MSE)", figure=figure)


def gap_claims(results, *, setting: str = "", figure: str = "") -> list[Claim]:
    """Case High's train/test gap shrinks with ``p``, and the train/test gaps are largest at
    low SNR.

    Args:
      results: a noise run (case × p × snr).
      setting: text naming the run, ending in ``", "``.
      figure: the figure's file name.

    Returns:
      The gap rows (one per SNR, Case High) and the SNR rows (one per case, when 2+ SNRs were
      run), each claim Holm-adjusted on its own.
    """
    cases, powers, snrs = (results.values(n) for n in ("case", "p", "snr"))
    mse, train = results.final("test_mse"), results.final("train_loss")
    claims = []
    if "high" in cases:
        c = cases.index("high")
        rows = [
            (f"{setting}SNR {s:g}", seedwise_trend(powers, mse[c, :, k] - train[c, :, k]), -1, "")
            for k, s in enumerate(snrs)
        ]
        claims += directional_rows(
            "Case High: the train/test gap shrinks with p", rows,
            statistic="mean per-seed ρ(p, test MSE − train loss)", figure=figure,
        )  # fmt: skip
    if len(snrs) >= 2:
        rows = []
        for c, case in enumerate(cases):
            gap = (mse[c] - train[c]).mean(0)  # (snr, seed): averaged over the powers
            rows.append((f"{setting}Case {case.capitalize()}", seedwise_trend(snrs, gap), -1, ""))
        claims += directional_rows(
            "The train/test gaps are largest at low SNR", rows,
            statistic="mean per-seed ρ(SNR, test MSE − train loss averaged over p)",
            figure=figure,
        )  # fmt: skip
    return claims


def floor_claims(results, *, setting: str = "", figure: str = "") -> list[Claim]:
    """The sanity floor: no cell's test MSE is below the noise floor, the test MSE of the
    teacher itself (``noise_floor``, recorded per seed; about ``1/(1 + SNR²)``, the noise's share
    of a standardised target's variance, which older runs without it fall back to).

    Returns:
      One row. Per seed, the smallest relative margin over the cells,
      ``min (test MSE − floor)/floor``, tested across seeds: holds when significantly positive
      (every cell above the floor), fails when significantly negative. The detail names the
      cell with the lowest mean margin.
    """
    cases, powers, snrs = (results.values(n) for n in ("case", "p", "snr"))
    if "noise_floor" in results.data:
        floor, source = results.final("noise_floor"), "the teacher's own test MSE"
    else:
        floor = (1.0 / (1.0 + np.asarray(snrs, float) ** 2))[:, None]
        source = "1/(1+SNR²)"
    margin = (results.final("test_mse") - floor) / floor  # (case, p, snr, seed)
    worst = np.min(margin.reshape(-1, margin.shape[-1]), axis=0)  # a NaN seed stays NaN
    test = sign_flip_test(worst)
    with warnings.catch_warnings():  # a cell whose seeds all diverged has no mean
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(margin, axis=-1)
    c, j, k = np.unravel_index(np.nanargmin(means), means.shape)
    detail = (
        f"lowest mean margin {means[c, j, k]:+.3f} at {cases[c]}, p={powers[j]:g}, SNR {snrs[k]:g}"
    )
    return [
        Claim(
            f"Test MSE stays above the noise floor ({source})", setting.rstrip(", ") or "noise",
            f"per-seed min over cells of (test MSE − floor)/floor; {test.method}", test.estimate,
            _interval(test), test.p_value, verdict(test, +1), test.n, test.n_dropped, detail,
            figure,
        )
    ]  # fmt: skip


def neutrality_claims(high, low, *, setting: str = "", figure: str = "") -> list[Claim]:
    """p = −1 is spectrum-neutral: the crossing point of the two cases' test-MSE curves, and
    equivalence at ``p = −1`` of test MSE and whitened alignment.

    Args:
      high, low: noise runs holding Case High and Case Low (one run with both cases may be
        passed twice), with the same powers, SNRs and seeds (paired by seed).
      setting: text naming the runs.
      figure: the figure's file name.

    Returns:
      One crossing row per SNR (holds when the 95% bootstrap interval of ``p*`` lies within
      ``−1 ±`` :data:`CROSSING_MARGIN`, fails when it excludes that band), then the TOST rows
      of test MSE and whitened alignment at ``p = −1`` (averaged over SNRs per seed).
    """
    powers, snrs = high.values("p"), high.values("snr")
    if list(low.values("p")) != list(powers) or list(low.values("snr")) != list(snrs):
        raise ValueError("the High and Low runs must have the same powers and SNRs")
    h, lw = high.values("case").index("high"), low.values("case").index("low")
    mse_h, mse_l = high.final("test_mse")[h], low.final("test_mse")[lw]  # (p, snr, seed)
    seeds = min(mse_h.shape[-1], mse_l.shape[-1])
    mse_h, mse_l = mse_h[..., :seeds], mse_l[..., :seeds]
    claims = []
    order = np.argsort(powers)
    x = np.asarray(powers, float)[order]
    band = (-1.0 - CROSSING_MARGIN, -1.0 + CROSSING_MARGIN)
    for k, snr in enumerate(snrs):
        crossing, (lo, hi), undefined = bootstrap_crossing(x, mse_h[order, k], mse_l[order, k])
        if math.isnan(crossing) or math.isnan(lo) or undefined > 0.025:
            outcome = INCONCLUSIVE
        elif band[0] <= lo and hi <= band[1]:
            outcome = HOLDS
        else:
            outcome = FAILS if hi < band[0] or lo > band[1] else INCONCLUSIVE
        finite = np.isfinite(mse_h[:, k]).all(0) & np.isfinite(mse_l[:, k]).all(0)
        claims.append(
            Claim(
                "p = −1 is spectrum-neutral: the High and Low test-MSE curves cross at p* = −1",
                f"{setting}SNR {snr:g}",
                f"crossing p* of the mean curves; bootstrap over seeds, holds within −1 ± "
                f"{CROSSING_MARGIN:g}", crossing, None if math.isnan(lo) else (lo, hi), None,
                outcome, int(finite.sum()), int(seeds - finite.sum()),
                f"{undefined:.0%} of resamples without a crossing" if undefined else "", figure,
            )
        )  # fmt: skip
    if -1.0 not in powers:
        return claims
    j = list(powers).index(-1.0)
    for metric, margin, name in (
        ("test_mse", MSE_MARGIN, "test MSE"),
        ("whitened_alignment", ALIGNMENT_MARGIN, "whitened alignment"),
    ):
        a = high.final(metric)[h][j, :, :seeds].mean(0)
        b = low.final(metric)[lw][j, :, :seeds].mean(0)
        test = tost(a - b, margin)
        claims.append(
            Claim(
                f"p = −1 is spectrum-neutral: equal {name} in both cases", setting.rstrip(", "),
                f"mean per-seed {name} High − Low at p = −1 (averaged over SNRs); TOST, margin "
                f"±{margin:g}, 90% interval", test.estimate, _interval(test),
                None if math.isnan(test.p_value) else test.p_value,
                equivalence_verdict(test, margin), test.n, test.n_dropped, "", figure,
            )
        )  # fmt: skip
    return claims


def noise_claims(results, *, setting: str = "", figure: str = "") -> list[Claim]:
    """Every claim one noise run can test: spectral bias, gaps, floor and (with both cases and
    ``p = −1``) neutrality as the run was made.

    Example:
      >>> p = np.array([-1.0, 0.0, 1.0])[:, None, None] + np.zeros((3, 1, 8))
      >>> noise = np.random.default_rng(0).normal(0, 0.1, (3, 1, 8))
      >>> mse = np.stack([1 - p / 4 + noise, 1 + p / 4 + noise])  # (case, p, snr, seed)
      >>> sorted({c.claim.split(":")[0] for c in noise_claims(_fake_noise(mse))})[:3]
      ['Case High', 'Case Low', 'Test MSE stays above the noise floor (1/(1+SNR²))']
    """
    claims = spectral_bias_claims(results, setting=setting, figure=figure)
    claims += gap_claims(results, setting=setting, figure=figure)
    claims += floor_claims(results, setting=setting, figure=figure)
    if set(results.values("case")) >= {"high", "low"}:
        claims += neutrality_claims(results, results, setting=setting, figure=figure)
    return claims


def _fake_noise(mse):
    """Noise results for the examples: ``mse`` (case, p, snr, seed), other metrics derived."""
    from jaxprecond.engine.results import SweepResults

    axes = (("case", ("high", "low")), ("p", (-1.0, 0.0, 1.0)), ("snr", (1.0,)))
    data = {"test_mse": mse[..., None], "train_loss": mse[..., None] / 2,
            "whitened_alignment": np.full(mse.shape + (1,), 0.5)}  # fmt: skip
    seeds = mse.shape[-1]
    return SweepResults(None, None, axes, np.arange(seeds), np.array([0]), data, seeds)


def ood_claims(results: dict, *, setting: str = "", figure: str = "") -> list[Claim]:
    """The OOD claims: with Σ^p, reliance on the digit rises and on the template falls with
    ``p`` (Fig. 2b; 2+ powers); the optimizer ranking flips (Fig. 2a; an optimizer of each
    group).

    Args:
      results: the OOD experiment's results by arm (``optimizers``, ``sigma_p``; either may be
        absent), each with axes optimizer × p.
      setting: text naming the run.
      figure: the figure's file name.

    Returns:
      A list of :class:`Claim`.

    Example:
      >>> from jaxprecond.engine.results import SweepResults
      >>> rng = np.random.default_rng(0)
      >>> acc = lambda *v: np.array(v)[:, None, None, None] + rng.normal(0, .01, (3, 1, 8, 1))
      >>> optimizers = SweepResults(None, None, (("optimizer", ("gd", "adam", "kfac")),
      ...     ("p", (0.0,))), np.arange(8), np.array([0]),
      ...     {"digit_acc": acc(0.9, 0.6, 0.3), "noise_acc": acc(0.2, 0.5, 0.8)}, 8)
      >>> for c in ood_claims({"optimizers": optimizers}):
      ...     print(c.claim, "|", c.verdict, "|", c.detail)
      p ≈ −1 optimizers beat GD/SAM on invariant-noise | holds | {adam, kfac} vs {gd}
      GD/SAM beat the p ≈ −1 optimizers on invariant-digit | holds | {adam, kfac} vs {gd}
    """
    claims = []
    sigma = results.get("sigma_p")
    if sigma is not None and len(sigma.values("p")) >= 2:
        powers = sigma.values("p")
        rows = [
            (setting, seedwise_trend(powers, sigma.final("digit_acc")[0]), +1, ""),
            (setting, seedwise_trend(powers, sigma.final("noise_acc")[0]), -1, ""),
        ]
        claims += directional_rows(
            ["Σ^p: reliance on the digit (high-variance) feature rises with p",
             "Σ^p: reliance on the template (low-variance) feature falls with p"],
            rows, statistic="mean per-seed ρ(p, accuracy)", figure=figure,
        )  # fmt: skip
    optimizers = results.get("optimizers")
    names = [] if optimizers is None else list(optimizers.values("optimizer"))
    whitening = [i for i, n in enumerate(names) if n in WHITENING_OPTIMIZERS]
    plain = [i for i, n in enumerate(names) if n in PLAIN_OPTIMIZERS]
    if not (whitening and plain):
        return claims
    digit = optimizers.final("digit_acc")[:, 0]  # (optimizer, seed)
    noise = optimizers.final("noise_acc")[:, 0]
    group = lambda v, idx: v[idx].mean(0)  # noqa: E731  (a NaN seed stays NaN: dropped)
    groups = (
        f"{{{', '.join(names[i] for i in whitening)}}} vs {{{', '.join(names[i] for i in plain)}}}"
    )
    rows = [
        (setting, paired_difference(group(noise, whitening), group(noise, plain)), +1, groups),
        (setting, paired_difference(group(digit, plain), group(digit, whitening)), +1, groups),
    ]
    return claims + directional_rows(
        ["p ≈ −1 optimizers beat GD/SAM on invariant-noise",
         "GD/SAM beat the p ≈ −1 optimizers on invariant-digit"],
        rows, statistic="mean per-seed accuracy difference of the groups' means", figure=figure,
    )  # fmt: skip


def best_power_claims(values, powers, *, claim, settings, claimed=-1.0, figure="") -> list[Claim]:
    """ "``p = claimed`` is best (lowest)" per row of ``values``: paired comparisons of the
    claimed power against every other, Holm-adjusted within the row.

    Args:
      values: ``(row, P, S)`` e.g. the stage-2 test MSE per direction pair.
      powers: ``(P,)``.
      claim: the claim in words.
      settings: one text per row.
      claimed: the power claimed best.
      figure: the figure's file name.

    Returns:
      One :class:`Claim` per row: holds when the claimed power is significantly lower than
      every other, fails when some other power is significantly lower.

    Example:
      >>> noise = np.random.default_rng(0).normal(0, 0.1, (1, 3, 8))
      >>> v = np.array([[1.0], [2.0], [3.0]])[None] + noise  # (row, p, seed)
      >>> [c.verdict for c in best_power_claims(v, [-1.0, 0.0, 1.0], claim="x", settings=["a"])]
      ['holds']
    """
    j = list(powers).index(claimed)
    claims = []
    for row, setting in zip(values, settings, strict=True):
        tests = [paired_difference(row[i], row[j]) for i in range(len(powers)) if i != j]
        others = [p for i, p in enumerate(powers) if i != j]
        adjusted = holm([t.p_value for t in tests])
        verdicts = [verdict(t, +1, p_value=p) for t, p in zip(tests, adjusted, strict=True)]
        outcome = (
            FAILS if FAILS in verdicts else HOLDS if set(verdicts) == {HOLDS} else INCONCLUSIVE
        )
        closest = int(np.nanargmin([t.estimate for t in tests]))
        detail = "; ".join(
            f"p={p:g}: {t.estimate:+.4f} ({v})"
            for p, t, v in zip(others, tests, verdicts, strict=True)
        )
        claims.append(
            Claim(
                claim, setting, f"MSE(closest other p) − MSE(p={claimed:g}), paired by seed; "
                "Holm across the other powers", tests[closest].estimate,
                _interval(tests[closest]), float(np.nanmax(adjusted)), outcome,
                min(t.n for t in tests), max(t.n_dropped for t in tests), detail, figure,
            )
        )  # fmt: skip
    return claims


def transfer_claims(results, *, setting: str = "", figure: str = "") -> list[Claim]:
    """ "p = −1 transfers best", per direction pair and averaged over the pairs.

    Args:
      results: the transfer experiment's :class:`~jaxprecond.engine.results.SweepResults`.
      setting: text naming the run.
      figure: the figure's file name.

    Returns:
      One :class:`Claim` per pair, then the average (none when ``p = −1`` was not run).
    """
    powers = [float(p) for p in results.values("p")]
    if -1.0 not in powers or len(powers) < 2:
        return []
    mse = by_pair(results, "test_mse").astype(float)  # (pair, p, seed)
    pairs = [f"{a.capitalize()}→{b.capitalize()}" for a, b in results.config.pairs]
    values = np.concatenate([mse, mse.mean(0, keepdims=True)])
    settings = [f"{setting or 'transfer'}, {name}" for name in [*pairs, "average of the pairs"]]
    return best_power_claims(
        values, powers, claim="p = −1 gives the best transfer", settings=settings, figure=figure
    )


def claims_table(claims) -> str:
    """Markdown table of :class:`Claim` rows.

    Example:
      >>> print(claims_table([Claim("x grows", "toy", "ρ", 0.5, None, 0.01, "holds", 8, 1)]))
      | claim | setting | verdict | statistic | value | interval | p-value | seeds | detail |
      |---|---|---|---|---|---|---|---|---|
      | x grows | toy | holds | ρ | 0.500 | – | 0.01 | 8 (1 diverged) |  |
    """
    lines = [
        "| claim | setting | verdict | statistic | value | interval | p-value | seeds | detail |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    marks = {HOLDS: "holds", FAILS: "**fails**", INCONCLUSIVE: "*inconclusive*"}
    for c in claims:
        interval = "–" if c.interval is None else f"[{c.interval[0]:.3f}, {c.interval[1]:.3f}]"
        pval = "–" if c.p_value is None else f"{c.p_value:.2g}"
        seeds = f"{c.seeds}" + (f" ({c.diverged} diverged)" if c.diverged else "")
        lines.append(
            f"| {c.claim} | {c.setting} | {marks[c.verdict]} | {c.statistic} | {c.value:.3f} "
            f"| {interval} | {pval} | {seeds} | {c.detail} |"
        )
    return "\n".join(lines)
