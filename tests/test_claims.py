"""The claims report's statistics on results with known trends."""

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
from jaxprecond.engine.experiment import grid_axes
from jaxprecond.engine.results import SweepResults
from jaxprecond.experiments.noise import NOISE, NoiseConfig
from jaxprecond.experiments.ood import METRICS, OOD, OODConfig
from jaxprecond.experiments.transfer import PAIRS, TRANSFER, TransferConfig, by_pair

POWERS = (-1.0, -0.5, 0.0, 0.5, 1.0)


def fake_results(experiment, config, data, seeds):
    """SweepResults with the grid a real sweep of ``config`` has, and the given arrays."""
    config, axes = grid_axes(experiment, config)
    grid = tuple((a.name, a.values) for a in axes)
    for name, values in data.items():
        assert values.shape[: len(grid) + 1] == tuple(len(v) for _, v in grid) + (seeds,), name
    return SweepResults(experiment, config, grid, np.arange(seeds), np.array([0]), data, seeds)


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
    config = NoiseConfig(cases=("high", "low"), powers=POWERS, snrs=(0.5, 2.0), seeds=8)
    data = {
        "test_mse": mse[..., None],
        "alignment": np.concatenate([align_high, align_low])[..., None],
    }
    return fake_results(NOISE, config, data, 8)


def test_noise_claims_hold_for_the_papers_trends_and_fail_for_the_reverse():
    good = noise_claims(noise_results(-0.2, 0.3, lambda p: 0.1 + np.abs(p + 1)))
    assert len(good) == 2 * 2 + 1 and all(c.holds for c in good)
    bad = noise_claims(noise_results(0.2, -0.3, lambda p: 0.1 + np.abs(p)))
    assert len(bad) == 2 * 2 + 1 and not any(c.holds for c in bad)
    # MSE is linear in p within each seed: paired ρ is ±1 up to the ties in p
    assert all(c.value < -0.9 for c in good[:2]) and all(c.value > 0.9 for c in good[2:4])
    neutral = bad[-1]
    assert neutral.statistic.startswith("mean |alignment") and neutral.value == pytest.approx(1.1)
    assert neutral.interval[0] - 1e-12 <= neutral.value <= neutral.interval[1] + 1e-12
    assert claims_table(bad).count("**no**") == len(bad)  # reported, not hidden


def ood_results(digit_by_optimizer, noise_by_optimizer):
    """Fake OOD results by arm, as ``OOD.sweep`` returns them."""
    names = ("gd", "adam", "kfac", "sam")
    config = OODConfig(dataset="synthetic", optimizers=names, powers=(-1.0, 0.0, 1.0), seeds=4)
    arms = OOD.arms(config)
    assert sorted(arms) == ["optimizers", "sigma_p"]
    rng = np.random.default_rng(2)
    data = {m: np.full((4, 1, 4, 1), 0.9) for m in METRICS}  # (optimizer, p, seed, record)
    digit = np.asarray(digit_by_optimizer)[:, None, None, None]
    noise = np.asarray(noise_by_optimizer)[:, None, None, None]
    data["digit_acc"] = digit + rng.normal(0, 1e-3, (4, 1, 4, 1))
    data["noise_acc"] = noise + rng.normal(0, 1e-3, (4, 1, 4, 1))
    p = np.array([-1.0, 0.0, 1.0])[None, :, None, None]
    offsets = rng.normal(0, 0.2, (1, 1, 4, 1))
    sigma = {
        "train_loss": np.ones((1, 3, 4, 1)),
        "val_acc": np.full((1, 3, 4, 1), 0.95),
        "digit_acc": 0.5 + 0.1 * p + offsets,
        "noise_acc": 0.5 - 0.1 * p + offsets,
    }
    return {
        "optimizers": fake_results(OOD, arms["optimizers"], data, 4),
        "sigma_p": fake_results(OOD, arms["sigma_p"], sigma, 4),
    }


def test_ood_claims_kendall_tau_of_the_rankings():
    flipped = ood_claims(ood_results([0.9, 0.7, 0.5, 0.3], [0.2, 0.4, 0.6, 0.8]))
    assert [c.holds for c in flipped] == [True, True, True]
    # the Σ^p arm: digit accuracy rises and noise accuracy falls with p in every seed
    assert flipped[0].value > 0.9 and flipped[1].value < -0.9
    assert flipped[-1].value == pytest.approx(-1.0)
    assert "gd > adam > kfac > sam" in flipped[-1].detail
    same = ood_claims(ood_results([0.9, 0.7, 0.5, 0.3], [0.8, 0.6, 0.4, 0.2]))
    assert same[-1].value == pytest.approx(1.0) and not same[-1].holds
    # an arm left out (as OOD.sweep leaves out an empty one) drops its claims
    only_sigma = ood_results([0.9, 0.7, 0.5, 0.3], [0.2, 0.4, 0.6, 0.8])
    del only_sigma["optimizers"]
    assert len(ood_claims(only_sigma)) == 2


def transfer_results(mse):
    """Fake transfer results whose ``by_pair(results, "test_mse")`` is ``mse`` (pair, p, seed)."""
    config = TransferConfig(powers=POWERS, seeds=mse.shape[-1])
    assert config.pairs == PAIRS and config.cases == ("high", "low")
    data = {
        f"to_{d}_test_mse": np.full((2, len(POWERS), mse.shape[-1], 1), np.nan)
        for d in ("high", "low")
    }
    for i, (case, direction) in enumerate(PAIRS):
        data[f"to_{direction}_test_mse"][config.cases.index(case), :, :, 0] = mse[i]
    return fake_results(TRANSFER, config, data, mse.shape[-1])


def test_transfer_claim_best_average_at_minus_one():
    offsets = np.array([0.0, 0.1, 0.2, 0.3])[:, None, None]  # the pairs differ
    mse = np.ones((4, 5, 6)) + 0.1 * (np.asarray(POWERS) + 1)[None, :, None] + offsets
    results = transfer_results(mse)
    np.testing.assert_array_equal(by_pair(results, "test_mse"), mse)  # every pair filled
    (claim,) = transfer_claims(results)
    assert claim.holds and claim.value == pytest.approx(1.0 + offsets.mean())
    assert not transfer_claims(transfer_results(mse[:, ::-1].copy()))[0].holds
