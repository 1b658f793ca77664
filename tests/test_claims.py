"""The claims' verdicts on results with known effects: holds, fails and inconclusive."""

import numpy as np
import pytest

from jaxprecond.claims import (
    Claim,
    claims_table,
    floor_claims,
    gap_claims,
    neutrality_claims,
    noise_claims,
    ood_claims,
    spectral_bias_claims,
    transfer_claims,
)
from jaxprecond.engine.experiment import grid_axes
from jaxprecond.engine.results import SweepResults
from jaxprecond.experiments.noise import NOISE, NoiseConfig
from jaxprecond.experiments.ood import METRICS, OOD, OODConfig
from jaxprecond.experiments.transfer import PAIRS, TRANSFER, TransferConfig, by_pair

POWERS = (-1.0, -0.5, 0.0, 0.5, 1.0)
SNRS = (0.5, 2.0)


def fake_results(experiment, config, data, seeds):
    """SweepResults with the grid a real sweep of ``config`` has, and the given arrays."""
    config, axes = grid_axes(experiment, config)
    grid = tuple((a.name, a.values) for a in axes)
    for name, values in data.items():
        assert values.shape[: len(grid) + 1] == tuple(len(v) for _, v in grid) + (seeds,), name
    return SweepResults(experiment, config, grid, np.arange(seeds), np.array([0]), data, seeds)


def noise_results(high_slope, low_slope, *, seeds=8, noise=0.02, cases=("high", "low"), gap=0.0,
                  seed=1):  # fmt: skip
    """Noise results: test MSE linear in p per case (+ per-seed offsets and noise) above the
    floor; train loss below it by a gap shrinking with p; whitened alignment from ``gap``."""
    rng = np.random.default_rng(seed)
    p = np.asarray(POWERS)[None, :, None, None]
    snr = np.asarray(SNRS)[None, None, :, None]
    offsets = rng.normal(0, 0.1, size=(1, 1, 1, seeds))
    slopes = np.array([{"high": high_slope, "low": low_slope}[c] for c in cases])
    mse = 1 / (1 + snr**2) + 1.0 + slopes[:, None, None, None] * p / snr + offsets
    mse = mse + rng.normal(0, noise, mse.shape)
    train = mse - 0.3 * (1.5 - p) / snr * np.ones_like(mse)
    align = 0.5 + gap * (np.arange(len(cases)) - 0.5)[:, None, None, None] + 0 * mse
    config = NoiseConfig(cases=cases, powers=POWERS, snrs=SNRS, seeds=seeds)
    data = {"test_mse": mse, "train_loss": train, "whitened_alignment": align}
    return fake_results(NOISE, config, {k: v[..., None] for k, v in data.items()}, seeds)


def verdicts(claims):
    return [c.verdict for c in claims]


def test_spectral_bias_holds_for_the_papers_trend_and_fails_for_the_reverse():
    good = spectral_bias_claims(noise_results(-0.2, 0.3))
    assert len(good) == 2 * len(SNRS) and verdicts(good) == ["holds"] * 4
    assert all(c.value < -0.9 for c in good[:2]) and all(c.value > 0.9 for c in good[2:])
    bad = spectral_bias_claims(noise_results(0.2, -0.3))
    assert verdicts(bad) == ["fails"] * 4
    assert claims_table(bad).count("**fails**") == 4  # reported, not hidden


def test_no_effect_and_two_seeds_are_inconclusive():
    flat = spectral_bias_claims(noise_results(0.0, 0.0, noise=0.05))
    assert set(verdicts(flat)) == {"inconclusive"}
    # two seeds with a perfect trend: the smallest sign-flip p-value is 0.5
    two = spectral_bias_claims(noise_results(-0.2, 0.3, seeds=2))
    assert set(verdicts(two)) == {"inconclusive"} and all(c.p_value >= 0.5 for c in two)


def test_ties_single_power_and_all_nan_are_inconclusive():
    tied = noise_results(0.0, 0.0, noise=0.0)  # every seed constant over p
    assert set(verdicts(spectral_bias_claims(tied))) == {"inconclusive"}
    single = noise_results(-0.2, 0.3)
    single.axes = (("case", ("high", "low")), ("p", (0.0,)), ("snr", SNRS))
    single.data = {k: v[:, 2:3] for k, v in single.data.items()}
    assert set(verdicts(spectral_bias_claims(single))) == {"inconclusive"}
    lost = noise_results(-0.2, 0.3)
    lost.data["test_mse"][0] = np.nan  # every Case High seed diverged
    claims = spectral_bias_claims(lost)
    assert verdicts(claims)[:2] == ["inconclusive"] * 2 and verdicts(claims)[2:] == ["holds"] * 2
    assert [(c.seeds, c.diverged) for c in claims[:2]] == [(0, 8), (0, 8)]
    assert "8 (8 diverged)" not in claims_table(claims) and "0 (8 diverged)" in claims_table(claims)


def test_a_few_diverged_seeds_are_counted_in_the_row():
    results = noise_results(-0.2, 0.3, seeds=10)
    results.data["test_mse"][0, 3, 1, 4] = np.inf
    claims = spectral_bias_claims(results)
    assert (claims[1].seeds, claims[1].diverged) == (9, 1) and claims[1].verdict == "holds"
    assert (claims[0].seeds, claims[0].diverged) == (10, 0)


def test_holm_makes_rows_of_one_claim_share_the_correction():
    claims = spectral_bias_claims(noise_results(-0.2, 0.3, seeds=6))
    # six seeds: raw p = 2/64 per row; four rows, Holm: 4 × 2/64 > 0.05
    assert all(c.p_value == pytest.approx(4 * 2 / 64) for c in claims)
    assert set(verdicts(claims)) == {"inconclusive"}


def test_gap_and_floor_claims():
    results = noise_results(-0.2, 0.3)
    claims = gap_claims(results)
    # the gap 0.3·(1.5 − p)/SNR shrinks with p and is larger at low SNR
    assert verdicts(claims) == ["holds"] * (len(SNRS) + 2)
    flat = noise_results(-0.2, 0.3)
    flat.data["train_loss"] = flat.data["test_mse"] - 0.1  # a gap that moves with nothing
    assert set(verdicts(gap_claims(flat))) == {"inconclusive"}
    (floor,) = floor_claims(results)
    assert floor.verdict == "holds" and floor.seeds == 8
    below = noise_results(-0.2, 0.3)
    below.data["test_mse"][1, 4, 1] = 0.01  # Case Low, p = 1, SNR 2: far below 1/(1 + 4)
    (floor,) = floor_claims(below)
    assert floor.verdict == "fails" and "low, p=1, SNR 2" in floor.detail
    assert floor.value == pytest.approx(0.01 / 0.2 - 1)
    assert "1/(1+SNR²)" in floor.claim  # no recorded floor: the closed form


def test_floor_uses_the_teachers_own_test_mse_when_recorded():
    results = noise_results(-0.2, 0.3)
    mse = results.data["test_mse"]
    results.data["noise_floor"] = np.broadcast_to(
        mse.min(axis=(0, 1, 2), keepdims=True) - 0.01, mse.shape
    )
    (floor,) = floor_claims(results)
    assert floor.verdict == "holds" and "teacher's own test MSE" in floor.claim
    results.data["noise_floor"] = mse + 0.05  # every cell below its floor
    assert floor_claims(results)[0].verdict == "fails"


def test_neutrality_crossing_at_minus_one_holds_and_elsewhere_fails():
    # High = base − 0.2p/SNR, Low = base + 0.2p/SNR: they cross at p* = 0
    results = noise_results(-0.2, 0.2)
    crossing = [c for c in neutrality_claims(results, results) if "cross" in c.claim]
    assert [c.value for c in crossing] == pytest.approx([0.0, 0.0], abs=0.1)
    assert verdicts(crossing) == ["fails", "fails"]
    # Low + 0.3/SNR: High − Low = −0.4(p + 0.75)/SNR, zero at p* = −0.75, within −1 ± 0.5
    results.data["test_mse"][1] += 0.3 / np.asarray(SNRS)[:, None, None]
    crossing = [c for c in neutrality_claims(results, results) if "cross" in c.claim]
    assert [c.value for c in crossing] == pytest.approx([-0.75, -0.75], abs=0.1)
    assert verdicts(crossing) == ["holds", "holds"]
    assert all(c.interval[0] <= -0.75 <= c.interval[1] for c in crossing)
    # curves that never cross within the powers run: no p*, inconclusive
    results.data["test_mse"][1] += 10.0
    crossing = [c for c in neutrality_claims(results, results) if "cross" in c.claim]
    assert verdicts(crossing) == ["inconclusive"] * 2 and np.isnan(crossing[0].value)


def test_neutrality_equivalence_of_whitened_alignment():
    same = [c for c in neutrality_claims(*[noise_results(-0.2, 0.2)] * 2) if "alignment" in c.claim]
    assert verdicts(same) == ["holds"]
    apart = noise_results(-0.2, 0.2, gap=0.3)  # High − Low = −0.3, far outside ±0.05
    (claim,) = [c for c in neutrality_claims(apart, apart) if "alignment" in c.claim]
    assert claim.verdict == "fails" and claim.value == pytest.approx(-0.3)


def test_neutrality_from_two_runs_pairs_them_by_seed():
    high = noise_results(-0.2, 0.2, cases=("high",))
    low = noise_results(-0.2, 0.2, cases=("low",))
    claims = neutrality_claims(high, low)
    assert len(claims) == len(SNRS) + 2
    with pytest.raises(ValueError, match="same powers and SNRs"):
        other = noise_results(-0.2, 0.2, cases=("low",))
        other.axes = (other.axes[0], ("p", POWERS[::-1]), other.axes[2])
        neutrality_claims(high, other)


def test_noise_claims_write_every_row_with_a_verdict():
    claims = noise_claims(noise_results(-0.2, 0.3), setting="toy, ")
    assert len(claims) == 4 + 4 + 1 + len(SNRS) + 2
    assert all(isinstance(c, Claim) and c.seeds > 0 for c in claims)
    assert claims_table(claims).count("\n") == len(claims) + 1


def ood_results(
    digit_by_optimizer, noise_by_optimizer, seeds=8, names=("gd", "adam", "kfac", "sam")
):
    """Fake OOD results by arm, as ``OOD.sweep`` returns them."""
    config = OODConfig(dataset="synthetic", optimizers=names, powers=(-1.0, 0.0, 1.0), seeds=seeds)
    arms = OOD.arms(config)
    rng = np.random.default_rng(2)
    shape = (len(names), 1, seeds, 1)
    data = {m: np.full(shape, 0.9) for m in METRICS}  # (optimizer, p, seed, record)
    data["digit_acc"] = np.asarray(digit_by_optimizer)[:, None, None, None] + rng.normal(
        0, 1e-2, shape
    )
    data["noise_acc"] = np.asarray(noise_by_optimizer)[:, None, None, None] + rng.normal(
        0, 1e-2, shape
    )
    p = np.array([-1.0, 0.0, 1.0])[None, :, None, None]
    offsets = rng.normal(0, 0.2, (1, 1, seeds, 1))
    sigma = {
        "train_loss": np.ones((1, 3, seeds, 1)),
        "val_acc": np.full((1, 3, seeds, 1), 0.95),
        "digit_acc": 0.5 + 0.1 * p + offsets,
        "noise_acc": 0.5 - 0.1 * p + offsets,
    }
    return {
        "optimizers": fake_results(OOD, arms["optimizers"], data, seeds),
        "sigma_p": fake_results(OOD, arms["sigma_p"], sigma, seeds),
    }


def test_ood_ranking_flip_is_tested_in_its_direction():
    # gd, adam, kfac, sam: the p ≈ −1 group (adam, kfac) wins invariant-noise, loses digit
    flipped = ood_claims(ood_results([0.9, 0.5, 0.4, 0.8], [0.2, 0.6, 0.7, 0.3]))
    assert verdicts(flipped) == ["holds"] * 4
    assert flipped[0].value > 0.9 and flipped[1].value < -0.9  # the Σ^p arm's per-seed ρ
    assert "{adam, kfac} vs {gd, sam}" in flipped[-1].detail
    # a ranking that flips the other way round: τ < 0 as before, but the claim fails
    reverse = ood_claims(ood_results([0.4, 0.8, 0.9, 0.5], [0.7, 0.3, 0.2, 0.6]))
    assert verdicts(reverse)[2:] == ["fails", "fails"]
    # two seeds can never make it hold
    assert set(
        verdicts(ood_claims(ood_results([0.9, 0.5, 0.4, 0.8], [0.2, 0.6, 0.7, 0.3], seeds=2)))
    ) == {"inconclusive"}
    # no optimizer of one group: the flip is not tested; an absent arm drops its claims
    assert len(ood_claims(ood_results([0.9, 0.5], [0.2, 0.6], names=("gd", "sam")))) == 2
    only_sigma = ood_results([0.9, 0.5, 0.4, 0.8], [0.2, 0.6, 0.7, 0.3])
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


def test_transfer_per_pair_and_average():
    rng = np.random.default_rng(3)
    offsets = np.array([0.0, 0.1, 0.2, 0.3])[:, None, None]  # the pairs differ
    mse = (
        1 + 0.1 * (np.asarray(POWERS) + 1)[None, :, None] + offsets + rng.normal(0, 0.01, (4, 5, 8))
    )
    results = transfer_results(mse)
    np.testing.assert_array_equal(by_pair(results, "test_mse"), mse)  # every pair filled
    claims = transfer_claims(results)
    assert len(claims) == 5 and verdicts(claims) == ["holds"] * 5
    assert claims[-1].setting.endswith("average of the pairs")
    assert claims[0].value == pytest.approx(0.05, abs=0.01)  # p = −0.5 is the closest
    assert verdicts(transfer_claims(transfer_results(mse[:, ::-1].copy()))) == ["fails"] * 5


def test_transfer_overlapping_powers_are_inconclusive():
    rng = np.random.default_rng(4)
    mse = 1 + rng.normal(0, 0.1, (4, 5, 8))  # no effect: every interval overlaps
    mse[:, 0] -= 0.002  # p = −1 lowest by a hair (a bare argmin would call it best)
    assert set(verdicts(transfer_claims(transfer_results(mse)))) <= {"inconclusive", "fails"}
    assert "holds" not in verdicts(transfer_claims(transfer_results(mse)))
