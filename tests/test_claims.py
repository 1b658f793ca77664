"""The claims report's statistics on results with known trends."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import spearmanr

from jaxprecond.claims import (
    claims_table,
    noise_claims,
    ood_claims,
    paired_spearman,
    transfer_claims,
)
from jaxprecond.experiments.ood import METRICS, OODConfig, OODResults

POWERS = (-1.0, -0.5, 0.0, 0.5, 1.0)


def test_paired_spearman_removes_the_seed_offsets():
    rng = np.random.default_rng(0)
    offsets = rng.normal(scale=100.0, size=6)  # seeds differ far more than p changes things
    values = -0.1 * np.asarray(POWERS)[:, None] + offsets[None, :]
    rho, pval, used = paired_spearman(POWERS, values)
    assert rho < -0.95 and pval < 1e-6 and used == 6  # ties in p keep |ρ| just below 1
    unpaired = spearmanr(np.repeat(POWERS, 6), values.reshape(-1)).statistic
    assert abs(unpaired) < 0.3  # without pairing the trend drowns in the seed offsets
    values[2, 4] = np.nan  # a diverged seed is left out, not averaged
    assert paired_spearman(POWERS, values)[2] == 5


def noise_results(high_slope, low_slope, gap):
    """Fake noise results: MSE linear in p per case; alignment gap between cases ``gap(p)``."""
    rng = np.random.default_rng(1)
    p = np.asarray(POWERS)[None, :, None, None]
    seeds = rng.normal(size=(1, 1, 2, 8))
    mse = np.concatenate([high_slope * p + seeds, low_slope * p + seeds])  # (case, p, snr, seed)
    align_high = 0.5 + np.zeros((1, 5, 2, 8))
    align_low = align_high - gap(np.asarray(POWERS))[None, :, None, None]
    config = SimpleNamespace(cases=("high", "low"), powers=POWERS, snrs=(0.5, 2.0))
    return SimpleNamespace(
        config=config,
        test_mse=mse[..., None],
        alignment=np.concatenate([align_high, align_low])[..., None],
    )


def test_noise_claims_hold_for_the_papers_trends_and_fail_for_the_reverse():
    good = noise_claims(noise_results(-0.2, 0.3, lambda p: 0.1 + np.abs(p + 1)))
    assert len(good) == 2 * 2 + 1 and all(c.holds for c in good)
    bad = noise_claims(noise_results(0.2, -0.3, lambda p: 0.1 + np.abs(p)))
    assert not any(c.holds for c in bad)
    neutral = bad[-1]
    assert neutral.statistic.startswith("mean |alignment") and neutral.value == pytest.approx(1.1)
    assert neutral.interval[0] - 1e-12 <= neutral.value <= neutral.interval[1] + 1e-12
    assert claims_table(bad).count("**no**") == len(bad)  # reported, not hidden


def ood_results(digit_by_optimizer, noise_by_optimizer):
    names = ("gd", "adam", "kfac", "sam")
    config = OODConfig(dataset="synthetic", optimizers=names, powers=(-1.0, 0.0, 1.0), seeds=4)
    rng = np.random.default_rng(2)
    arms = {}
    for name, d, n in zip(names, digit_by_optimizer, noise_by_optimizer, strict=True):
        arms[name] = {m: np.full((1, 4, 1), 0.9) for m in METRICS}
        arms[name]["digit_acc"] = np.full((1, 4, 1), d) + rng.normal(0, 1e-3, (1, 4, 1))
        arms[name]["noise_acc"] = np.full((1, 4, 1), n) + rng.normal(0, 1e-3, (1, 4, 1))
    p = np.array([-1.0, 0.0, 1.0])[:, None, None]
    offsets = rng.normal(0, 0.2, (1, 4, 1))
    arms["sigma_p"] = {
        "train_loss": np.ones((3, 4, 1)),
        "val_acc": np.full((3, 4, 1), 0.95),
        "digit_acc": 0.5 + 0.1 * p + offsets,
        "noise_acc": 0.5 - 0.1 * p + offsets,
    }
    return OODResults(config=config, steps=np.array([0]), arms=arms)


def test_ood_claims_kendall_tau_of_the_rankings():
    flipped = ood_claims(ood_results([0.9, 0.7, 0.5, 0.3], [0.2, 0.4, 0.6, 0.8]))
    assert [c.holds for c in flipped] == [True, True, True]
    assert flipped[-1].value == pytest.approx(-1.0)
    assert "gd > adam > kfac > sam" in flipped[-1].detail
    same = ood_claims(ood_results([0.9, 0.7, 0.5, 0.3], [0.8, 0.6, 0.4, 0.2]))
    assert same[-1].value == pytest.approx(1.0) and not same[-1].holds


def test_transfer_claim_best_average_at_minus_one():
    mse = np.ones((4, 5, 6)) + 0.1 * (np.asarray(POWERS) + 1)[None, :, None]
    results = SimpleNamespace(config=SimpleNamespace(powers=POWERS), transfer_test_mse=mse)
    (claim,) = transfer_claims(results)
    assert claim.holds and claim.value == pytest.approx(1.0)
    results.transfer_test_mse = mse[:, ::-1]
    assert not transfer_claims(results)[0].holds
