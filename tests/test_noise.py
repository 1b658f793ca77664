"""The noise experiment: pairing, determinism, features, results folders, bad input."""

import dataclasses
import warnings

import jax
import numpy as np
import pytest

from jaxprecond.experiments.noise import NoiseConfig, NoiseResults, run_noise
from jaxprecond.engine.stats import DivergenceWarning

SMALL = NoiseConfig(
    cases=("high", "low"),
    powers=(-1.0, 1.0),
    snrs=(4.0,),
    seeds=3,
    steps=300,
    log_every=100,
    dh=32,
    n=1200,
    n_train=200,
    chunk_size=2,
)


@pytest.fixture(scope="module")
def small_results():
    return run_noise(SMALL, progress=False)


def test_shapes_and_steps(small_results):
    r = small_results
    assert r.test_mse.shape == (2, 2, 1, 3, 3)
    assert r.energy.shape == (2, 2, 1, 3, 3, 10)
    np.testing.assert_array_equal(r.steps, [99, 199, 299])
    # Energy fractions along an orthonormal basis sum to one.
    np.testing.assert_allclose(r.energy.sum(-1), 1.0, rtol=1e-5)


def test_seed_result_independent_of_other_seeds(small_results):
    """Same chunk size: bitwise; the padded last chunk does not leak into real seeds."""
    more = run_noise(dataclasses.replace(SMALL, seeds=4), progress=False)
    np.testing.assert_array_equal(more.test_mse[..., :3, :], small_results.test_mse)
    np.testing.assert_array_equal(more.energy[..., :3, :, :], small_results.energy)


def test_seed_result_across_chunk_sizes(small_results):
    """Another chunk size regroups the runs: equal to float32 rounding."""
    other = run_noise(dataclasses.replace(SMALL, chunk_size=1), progress=False)
    np.testing.assert_allclose(other.test_mse, small_results.test_mse, rtol=1e-4)
    np.testing.assert_allclose(other.train_loss, small_results.train_loss, rtol=1e-4)


def test_high_p_aligns_faster_in_case_high(small_results):
    """Case High: with p = 1 the first layer's energy concentrates on the teacher's
    eigen-direction faster than with p = -1 (whitening), in every seed."""
    r = small_results
    high = r.config.cases.index("high")
    p_minus, p_plus = r.config.powers.index(-1.0), r.config.powers.index(1.0)
    early = 0  # after 100 steps
    teacher_energy_plus = r.energy[high, p_plus, 0, :, early, 0]
    teacher_energy_minus = r.energy[high, p_minus, 0, :, early, 0]
    assert np.all(teacher_energy_plus > teacher_energy_minus + 0.1)
    # alignment is the energy along the teacher direction, which is axis 0 in Case High
    np.testing.assert_allclose(r.alignment[high], r.energy[high, ..., 0], rtol=1e-5)


def test_cells_are_paired_across_snr_and_p():
    """Seed i's key does not depend on its cell: two cells with equal settings coincide."""
    cfg = dataclasses.replace(
        SMALL, cases=("high",), powers=(0.0, 0.0), snrs=(4.0, 4.0), seeds=2, steps=100
    )
    r = run_noise(cfg, progress=False)
    np.testing.assert_array_equal(r.test_mse[:, 0], r.test_mse[:, 1])
    np.testing.assert_array_equal(r.test_mse[:, :, 0], r.test_mse[:, :, 1])


def test_save_load_roundtrip(small_results, tmp_path):
    small_results.save(tmp_path / "run")
    assert (tmp_path / "run" / "figure.png").stat().st_size > 10_000
    assert "| high | 1 | 4 |" in (tmp_path / "run" / "summary.md").read_text()
    loaded = NoiseResults.load(tmp_path / "run")
    assert loaded.config == small_results.config
    np.testing.assert_array_equal(loaded.energy, small_results.energy)
    with pytest.raises(FileExistsError, match="already holds results"):
        small_results.save(tmp_path / "run")


def test_diverged_seeds_are_reported_and_excluded(small_results):
    r = dataclasses.replace(small_results, test_mse=small_results.test_mse.copy())
    r.test_mse[0, 0, 0, 1, 1] = np.inf  # one seed blows up mid-run
    with pytest.warns(DivergenceWarning, match="1 diverged"):
        s = r.summary("test_mse")
    assert s.n_diverged[0, 0, 0] == 1 and s.n_valid[0, 0, 0] == 2
    kept = small_results.test_mse[0, 0, 0, [0, 2], -1]
    np.testing.assert_allclose(s.mean[0, 0, 0], kept.mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        assert "| 2 | 1 |" in r.table()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seeds": 0}, "seeds must be a positive integer"),
        ({"steps": 250}, "multiple of log_every"),
        ({"cases": ("middle",)}, "cases must be"),
        ({"snrs": (1.0, -2.0)}, "snrs must be"),
        ({"powers": ()}, "powers must be"),
        ({"n_train": 20_000}, "n_train"),
        ({"normalize": "frobenius"}, "normalize must be"),
        ({"precision": "fast"}, "precision must be"),
        ({"learning_rate": 0.0}, "learning_rate must be positive"),
    ],
)
def test_bad_config_raises_before_compiling(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SMALL, **change)


def test_float64_switch():
    cfg = dataclasses.replace(
        SMALL, cases=("high",), powers=(1.0,), seeds=1, steps=100, float64=True
    )
    r = run_noise(cfg, progress=False)
    assert r.test_mse.dtype == np.float64
    assert not jax.config.jax_enable_x64  # the switch does not leak
