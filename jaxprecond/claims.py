"""The paper's claims as statistics: each with its value, interval, p-value and verdict.

:func:`noise_claims`, :func:`ood_claims` and :func:`transfer_claims` turn finished runs into
:class:`Claim` rows; :func:`claims_table` writes them as Markdown. A claim that does not hold is
reported as not holding, with its statistic, never dropped.

The statistics:

* **Spectral bias of the noise experiment** (Fig. 1a,b): at each SNR, the Spearman correlation
  of ``p`` and the final test MSE, paired by seed (each seed's MSEs are centred over ``p``
  first, so seed-to-seed differences in the data do not count). Case High: negative (MSE falls
  as ``p`` grows); Case Low: positive. Holds when the sign is right and the p-value < 0.05.
* **p = −1 is spectrum-neutral**: the gap ``|a_High − a_Low|`` between the two cases' final
  first-layer alignment to the teacher, averaged over SNRs and seeds, is smallest at
  ``p = −1`` (95% bootstrap interval over seeds).
* **Σ^p steers which OOD feature is used** (Fig. 2b): Spearman ρ of ``p`` and the
  invariant-digit accuracy (positive) and the invariant-noise accuracy (negative), paired by
  seed.
* **The optimizer ranking flips between the OOD scenarios** (Fig. 2a): Kendall's τ between the
  optimizers' mean invariant-digit and invariant-noise accuracies is negative.
* **Whitening transfers best** (Sec. 4.3): the stage-2 test MSE averaged over the four
  direction pairs is lowest at ``p = −1``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
from scipy import stats as scipy_stats

from jaxprecond.engine.stats import DivergenceWarning
from jaxprecond.experiments.transfer import by_pair

ALPHA = 0.05
SCENARIO_NAMES = {"digit_acc": "invariant-digit", "noise_acc": "invariant-noise"}


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim's verdict.

    Attributes:
      claim: the claim in words.
      setting: where it was tested (experiment, normalisation, SNR, data set).
      statistic: the statistic's name.
      value: its value.
      interval: a 95% interval ``(low, high)`` or ``None``.
      p_value: the test's p-value, or ``None``.
      holds: the verdict.
      detail: the numbers behind the verdict.

    Example:
      >>> c = Claim("x grows with p", "toy", "Spearman ρ", 0.9, None, 0.01, True)
      >>> c.holds, c.detail
      (True, '')
      >>> c.holds = False
      Traceback (most recent call last):
      ...
      dataclasses.FrozenInstanceError: cannot assign to field 'holds'
    """

    claim: str
    setting: str
    statistic: str
    value: float
    interval: tuple[float, float] | None
    p_value: float | None
    holds: bool
    detail: str = ""


def paired_spearman(powers, values):
    """Spearman's ρ of ``p`` and values paired by seed, and its p-value.

    Args:
      powers: ``(P,)`` the powers.
      values: ``(P, S)`` one value per power and seed; seeds with a non-finite value are left
        out.

    Returns:
      ``(rho, p_value, seeds used)``.

    Example:
      >>> import numpy as np
      >>> rho, pval, n = paired_spearman([-1, 0, 1], np.array([[3.0, 5.0], [2.0, 4.0], [1.0, 3.0]]))
      >>> round(rho, 3), n
      (-1.0, 2)
    """
    powers = np.asarray(powers, float)
    values = np.asarray(values, float)
    finite = np.isfinite(values).all(axis=0)
    values = values[:, finite]
    if values.shape[1] == 0:
        return math.nan, math.nan, 0
    centred = values - values.mean(axis=0, keepdims=True)
    x = np.repeat(powers, values.shape[1])
    result = scipy_stats.spearmanr(x, centred.reshape(-1))
    return float(result.statistic), float(result.pvalue), int(values.shape[1])


def _bootstrap_mean(values, resamples: int = 2000, seed: int = 0):
    """95% percentile bootstrap interval of the mean over the last axis (after any averaging
    of leading axes per resample)."""
    rng = np.random.default_rng(seed)
    n = values.shape[-1]
    index = rng.integers(0, n, size=(resamples, n))
    means = np.nanmean(values[..., index], axis=-1)  # (..., resamples)
    return np.percentile(means, [2.5, 97.5], axis=-1)


def noise_claims(results, *, setting: str = "") -> list[Claim]:
    """The spectral-bias and spectrum-neutrality claims from a finished noise run.

    Args:
      results: the noise experiment's :class:`~jaxprecond.engine.results.SweepResults` (axes
        case × p × snr).
      setting: text naming the run (e.g. the normalisation).

    Returns:
      A list of :class:`Claim`: one per case and SNR, then the spectrum-neutrality claim when
      both cases and ``p = −1`` were run.

    Example:
      >>> from jaxprecond.engine.results import SweepResults
      >>> t = np.arange(3.0)[:, None, None, None] + np.array([[0.0], [0.25], [0.5]])
      >>> t.shape  # (p, snr, seed, record)
      (3, 1, 3, 1)
      >>> mse = np.stack([3.0 - t, 1.0 + t])  # High falls with p, Low rises
      >>> align = np.stack([0.5 + t / 8, 0.5 - t / 8])  # the gap is smallest at p = -1
      >>> axes = (("case", ("high", "low")), ("p", (-1.0, 0.0, 1.0)), ("snr", (1.0,)))
      >>> results = SweepResults(None, None, axes, np.arange(3), np.array([0]),
      ...                        {"test_mse": mse, "alignment": align}, 3)
      >>> for c in noise_claims(results, setting="toy, "):
      ...     print(c.setting, "|", round(c.value, 4), c.holds)
      toy, SNR 1 | -1.0 True
      toy, SNR 1 | 1.0 True
      toy | 0.0625 True
    """
    cases, powers, snrs = (results.values(n) for n in ("case", "p", "snr"))
    mse = results.final("test_mse")  # (case, p, snr, seed)
    claims = []
    expected = {"high": ("decreases", -1.0), "low": ("increases", 1.0)}
    for c, case in enumerate(cases):
        word, sign = expected[case]
        for k, snr in enumerate(snrs):
            rho, pval, used = paired_spearman(powers, mse[c, :, k, :])
            diverged = mse.shape[-1] - used
            holds = bool(np.isfinite(rho) and sign * rho > 0 and pval < ALPHA)
            claims.append(
                Claim(
                    claim=f"Case {case.capitalize()}: final test MSE {word} with p",
                    setting=f"{setting}SNR {snr:g}",
                    statistic="Spearman ρ(p, test MSE), paired by seed",
                    value=rho,
                    interval=None,
                    p_value=pval,
                    holds=holds,
                    detail=f"{used} seeds"
                    + (f", {diverged} diverged (left out)" if diverged else ""),
                )
            )
    if set(cases) >= {"high", "low"} and -1.0 in powers:
        alignment = results.final("alignment")  # (case, p, snr, seed)
        high, low = cases.index("high"), cases.index("low")
        gap = np.abs(alignment[high] - alignment[low]).mean(axis=1)  # (p, seed)
        mean = np.nanmean(gap, axis=-1)
        low_ci, high_ci = _bootstrap_mean(gap)
        i = powers.index(-1.0)
        others = np.delete(mean, i)
        holds = bool(mean[i] < others.min()) if others.size else True
        detail = ", ".join(f"p={p:g}: {m:.3f}" for p, m in zip(powers, mean, strict=True))
        claims.append(
            Claim(
                claim="p = −1 is spectrum-neutral: the High/Low alignment gap is smallest",
                setting=setting.rstrip(", ") or "noise",
                statistic="mean |alignment_High − alignment_Low| at p = −1",
                value=float(mean[i]),
                interval=(float(low_ci[i]), float(high_ci[i])),
                p_value=None,
                holds=holds,
                detail=detail,
            )
        )
    return claims


def ood_claims(results: dict, *, dataset: str = "", setting: str = "") -> list[Claim]:
    """The OOD claims: with Σ^p, reliance on the digit rises and on the template falls with p
    (Fig. 2b; needs 3 powers); the optimizer ranking flips (Fig. 2a; needs 3 optimizers).

    Args:
      results: the OOD experiment's results by arm (``optimizers``, ``sigma_p``; either may be
        absent), each with axes optimizer × p.
      dataset, setting: text naming the run.

    Returns:
      A list of :class:`Claim`.

    Example:
      >>> from jaxprecond.engine.results import SweepResults
      >>> p = np.array([-1.0, 0.0, 1.0])[None, :, None, None] + np.zeros((1, 1, 2, 1))
      >>> sigma = SweepResults(None, None, (("optimizer", ("sigma_p",)), ("p", (-1, 0, 1))),
      ...     np.arange(2), np.array([0]), {"digit_acc": 0.5 + p / 4, "noise_acc": 0.5 - p / 4}, 2)
      >>> acc = lambda *v: np.array(v)[:, None, None, None] + np.zeros((3, 1, 2, 1))
      >>> optimizers = SweepResults(None, None, (("optimizer", ("gd", "adam", "kfac")),
      ...     ("p", (0.0,))), np.arange(2), np.array([0]),
      ...     {"digit_acc": acc(0.9, 0.6, 0.3), "noise_acc": acc(0.2, 0.5, 0.8)}, 2)
      >>> claims = ood_claims({"optimizers": optimizers, "sigma_p": sigma})
      >>> [(round(c.value, 3), c.holds) for c in claims]
      [(1.0, True), (-1.0, True), (-1.0, True)]
      >>> claims[-1].detail
      'digit: gd > adam > kfac; noise: kfac > adam > gd'
    """
    claims = []
    setting = setting or dataset
    sigma = results.get("sigma_p")
    if sigma is not None and len(sigma.values("p")) >= 3:
        powers = sigma.values("p")
        for metric, sign, word, feature in (
            ("digit_acc", 1.0, "rises", "digit (high-variance)"),
            ("noise_acc", -1.0, "falls", "template (low-variance)"),
        ):
            values = sigma.final(metric)[0]  # (p, seed)
            rho, pval, used = paired_spearman(powers, values)
            claims.append(
                Claim(
                    claim=f"Σ^p: reliance on the {feature} feature {word} with p",
                    setting=setting,
                    statistic=f"Spearman ρ(p, {SCENARIO_NAMES[metric]} acc.), paired by seed",
                    value=rho,
                    interval=None,
                    p_value=pval,
                    holds=bool(np.isfinite(rho) and sign * rho > 0 and pval < ALPHA),
                    detail=f"{used} seeds",
                )
            )
    optimizers = results.get("optimizers")
    names = [] if optimizers is None else list(optimizers.values("optimizer"))
    if len(names) < 3:
        return claims
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        digit = optimizers.summary("digit_acc").mean[:, 0]
        noise = optimizers.summary("noise_acc").mean[:, 0]
    finite = np.isfinite(digit) & np.isfinite(noise)
    tau = scipy_stats.kendalltau(digit[finite], noise[finite])
    order = lambda v: " > ".join(np.array(names)[finite][np.argsort(-v[finite])])  # noqa: E731
    return claims + [
        Claim(
            claim="The optimizer ranking flips between the two OOD scenarios",
            setting=setting,
            statistic="Kendall τ(invariant-digit acc., invariant-noise acc.) over optimizers",
            value=float(tau.statistic),
            interval=None,
            p_value=float(tau.pvalue),
            holds=bool(tau.statistic < 0),
            detail=f"digit: {order(digit)}; noise: {order(noise)}",
        )
    ]


def transfer_claims(results, *, setting: str = "") -> list[Claim]:
    """The whitening-transfers-best claim from a finished transfer run.

    Args:
      results: the transfer experiment's :class:`~jaxprecond.engine.results.SweepResults`.
      setting: text naming the run.

    Returns:
      A list with one :class:`Claim`.
    """
    powers = [float(p) for p in results.values("p")]
    mse = by_pair(results, "test_mse").astype(float)  # (pair, p, seed)
    average = mse.mean(axis=0)  # (p, seed): the pairs averaged, per seed
    mean = np.nanmean(average, axis=-1)
    low_ci, high_ci = _bootstrap_mean(average)
    best = int(np.nanargmin(mean))
    i = powers.index(-1.0) if -1.0 in powers else best
    return [
        Claim(
            claim="p = −1 gives the best average transfer",
            setting=setting or "transfer",
            statistic="stage-2 test MSE averaged over the four pairs, at p = −1",
            value=float(mean[i]),
            interval=(float(low_ci[i]), float(high_ci[i])),
            p_value=None,
            holds=bool(-1.0 in powers and best == i),
            detail=", ".join(f"p={p:g}: {m:.4f}" for p, m in zip(powers, mean, strict=True)),
        )
    ]


def claims_table(claims) -> str:
    """Markdown table of :class:`Claim` rows.

    Example:
      >>> print(claims_table([Claim("x grows", "toy", "ρ", 0.5, None, 0.01, True)]))
      | claim | setting | statistic | value | 95% interval | p-value | holds | detail |
      |---|---|---|---|---|---|---|---|
      | x grows | toy | ρ | 0.500 | – | 0.01 | yes |  |
    """
    lines = [
        "| claim | setting | statistic | value | 95% interval | p-value | holds | detail |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in claims:
        interval = "–" if c.interval is None else f"[{c.interval[0]:.3f}, {c.interval[1]:.3f}]"
        pval = "–" if c.p_value is None else f"{c.p_value:.2g}"
        lines.append(
            f"| {c.claim} | {c.setting} | {c.statistic} | {c.value:.3f} | {interval} | {pval} "
            f"| {'yes' if c.holds else '**no**'} | {c.detail} |"
        )
    return "\n".join(lines)
