"""The noise experiment: pairing, determinism, features, run folders, bad input."""

import dataclasses
import json
import re
import warnings

import jax
import numpy as np
import pytest

from jaxprecond.checks import SettingError
from jaxprecond.engine.folder import ARRAYS, CHUNKS, MANIFEST
from jaxprecond.engine.stats import DivergenceWarning
from jaxprecond.engine.sweep import default_group_size
from jaxprecond.experiments.noise import NOISE, NoiseConfig
from jaxprecond.report import load_run
from jaxprecond.tasks.single_index import CASES
from jaxprecond.training.regression import spectra, train_student

SMALL = NoiseConfig(
    cases=("high", "low"),
    powers=(-1.0, 1.0),
    snrs=(2.0, 4.0),
    seeds=3,
    steps=100,
    log_every=25,
    dh=32,
    n=1200,
    n_train=200,
    chunk_size=2,
)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """SMALL swept once into a run folder: ``(folder, results)``."""
    folder = tmp_path_factory.mktemp("noise") / "run"
    return folder, NOISE.sweep(SMALL, out=folder, progress=False)


@pytest.fixture(scope="module")
def small_results(run_folder):
    return run_folder[1]


def test_shapes_and_steps(small_results):
    r = small_results
    assert r.dims == ("case", "p", "snr", "seed", "step")
    assert r.values("case") == ("high", "low") and r.values("p") == (-1.0, 1.0)
    assert r.values("snr") == (2.0, 4.0)
    assert r.data["test_mse"].shape == (2, 2, 2, 3, 4)
    assert r.data["energy"].shape == (2, 2, 2, 3, 4, 10)
    np.testing.assert_array_equal(r.steps, [24, 49, 74, 99])
    np.testing.assert_array_equal(r.seeds, [0, 1, 2])
    assert r.total_seeds == 3 and len(r.missing_seeds) == 0
    for metric in ("test_mse", "train_loss", "alignment", "energy"):
        assert np.all(np.isfinite(r.data[metric])), metric
    # Energy fractions along an orthonormal basis sum to one.
    np.testing.assert_allclose(r.data["energy"].sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(r.final("test_mse"), r.data["test_mse"][..., -1])


def test_seed_result_independent_of_other_seeds(small_results):
    """Same chunk size: bitwise; the padded last chunk does not leak into real seeds."""
    more = NOISE.sweep(dataclasses.replace(SMALL, seeds=4), progress=False)
    assert np.all(np.isfinite(more.data["test_mse"]))
    for metric in ("test_mse", "energy"):
        np.testing.assert_array_equal(
            more.data[metric][:, :, :, :3], small_results.data[metric], err_msg=metric
        )


def test_seed_result_across_chunk_sizes(small_results):
    """Another chunk size regroups the runs: equal to float32 rounding."""
    other = NOISE.sweep(dataclasses.replace(SMALL, chunk_size=1), progress=False)
    for metric in ("test_mse", "train_loss"):
        assert np.all(np.isfinite(other.data[metric]))
        np.testing.assert_allclose(
            other.data[metric], small_results.data[metric], rtol=1e-4, err_msg=metric
        )


def test_high_p_aligns_faster_in_case_high(small_results):
    """Case High: with p = 1 the first layer's energy concentrates on the teacher's
    eigen-direction faster than with p = -1 (whitening), in every seed."""
    r = small_results
    energy, alignment = r.data["energy"], r.data["alignment"]
    high = r.values("case").index("high")
    p_minus, p_plus = r.values("p").index(-1.0), r.values("p").index(1.0)
    snr = r.values("snr").index(4.0)
    early = list(r.steps).index(99)  # after 100 steps
    teacher_energy_plus = energy[high, p_plus, snr, :, early, 0]
    teacher_energy_minus = energy[high, p_minus, snr, :, early, 0]
    assert np.all(teacher_energy_plus > teacher_energy_minus + 0.1)
    # alignment is the energy along the teacher direction, which is axis 0 in Case High
    np.testing.assert_allclose(alignment[high], energy[high, ..., 0], rtol=1e-5)


def test_cells_are_paired_across_snr_and_p(small_results):
    """Seed i's key is fold_in(key(root_seed), i) in every cell: each cell equals the student
    trained directly from that key, so all cells of a seed share its data and init draws."""
    r, cfg = small_results, small_results.config
    every_case = spectra(cfg)

    @jax.jit
    def direct(key, case, p, snr):
        spectrum = jax.tree.map(lambda leaf: leaf[case], every_case)
        return train_student(key, spectrum, p, snr, cfg)[1].test_mse

    root = jax.random.key(cfg.root_seed)
    mse = r.data["test_mse"]  # (case, p, snr, seed, record)
    for c, case in enumerate(r.values("case")):
        for i, p in enumerate(r.values("p")):
            for j, snr in enumerate(r.values("snr")):
                for seed in r.seeds:
                    key = jax.random.fold_in(root, int(seed))
                    expected = direct(key, CASES.index(case), p, snr)
                    assert np.all(np.isfinite(expected))
                    np.testing.assert_allclose(mse[c, i, j, seed], expected, rtol=2e-5)
    # the cells and seeds do differ: the check above is not of one repeated number
    final = mse[..., -1]
    for axis in range(4):  # case, p, snr, seed
        first, second = np.take(final, 0, axis=axis), np.take(final, 1, axis=axis)
        assert not np.allclose(first, second), axis


def test_run_folder_roundtrip(run_folder):
    folder, results = run_folder
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["experiment"] == "noise" and manifest["chunk_size"] == 2
    assert manifest["axes"] == [["case", ["high", "low"]], ["p", [-1.0, 1.0]], ["snr", [2.0, 4.0]]]
    assert manifest["config"]["steps"] == 100 and manifest["config"]["powers"] == [-1.0, 1.0]
    chunks = sorted(p.name for p in (folder / CHUNKS).iterdir())
    assert chunks == ["seeds-00000000-00000002.npz", "seeds-00000002-00000003.npz"]
    assert (folder / "figure.png").stat().st_size > 10_000
    assert "all 3 seeds finished" in (folder / "report.md").read_text()
    assert "| high | 1 | 4 |" in (folder / "report.md").read_text()
    assert not (folder / "config.json").exists() and not (folder / "summary.md").exists()
    # arrays.npz holds every seed, merged from the chunks
    with np.load(folder / ARRAYS) as arrays:
        np.testing.assert_array_equal(arrays["seed_index"], [0, 1, 2])
        np.testing.assert_array_equal(arrays["energy"], results.data["energy"])
    loaded = load_run(folder)
    assert loaded.experiment.name == "noise" and loaded.dims == results.dims
    # the run's settings come back (how it was chunked is the manifest's chunk_size)
    same = dict(group_size=default_group_size(), chunk_size=loaded.config.chunk_size)
    assert loaded.config == dataclasses.replace(SMALL, **same)
    assert loaded.config == results.config
    for metric in ("test_mse", "train_loss", "alignment", "energy"):
        assert np.all(np.isfinite(loaded.data[metric]))
        np.testing.assert_array_equal(loaded.data[metric], results.data[metric])
    # the same settings again resume: nothing is recomputed
    stamps = [p.stat().st_mtime_ns for p in sorted((folder / CHUNKS).iterdir())]
    again = NOISE.sweep(SMALL, out=folder, progress=False)
    assert [p.stat().st_mtime_ns for p in sorted((folder / CHUNKS).iterdir())] == stamps
    np.testing.assert_array_equal(again.data["test_mse"], results.data["test_mse"])
    # other settings into the same folder are refused before anything runs
    message = "holds a run with other settings (differs in: config.steps); use another folder"
    with pytest.raises(SettingError, match=re.escape(message)):
        NOISE.sweep(dataclasses.replace(SMALL, steps=200), out=folder, progress=False)
    with pytest.raises(SettingError, match=re.escape("(differs in: axes, config.powers)")):
        NOISE.sweep(dataclasses.replace(SMALL, powers=(1.0,)), out=folder, progress=False)


def test_diverged_seeds_are_reported_and_excluded(small_results):
    mse = small_results.data["test_mse"].copy()
    mse[0, 0, 0, 1, 1] = np.inf  # one seed blows up mid-run
    r = dataclasses.replace(small_results, data=dict(small_results.data, test_mse=mse))
    with pytest.warns(DivergenceWarning, match="1 diverged"):
        s = r.summary("test_mse")
    assert s.n_diverged[0, 0, 0] == 1 and s.n_valid[0, 0, 0] == 2
    kept = small_results.data["test_mse"][0, 0, 0, [0, 2], -1]
    assert np.all(np.isfinite(kept))
    np.testing.assert_allclose(s.mean[0, 0, 0], kept.mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        assert "| 2 | 1 |" in r.table()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seeds": 0}, "seeds must be a positive integer, got 0"),
        ({"steps": 110}, "steps=110 must be a multiple of log_every=25"),
        (
            {"cases": ("middle",)},
            "every value of cases must be one of ('high', 'low'), got 'middle'",
        ),
        ({"cases": ("high", "high")}, "cases repeats 'high'"),
        ({"snrs": (1.0, -2.0)}, "every value of snrs must be a positive number, got -2.0"),
        ({"powers": ()}, "powers must not be empty"),
        ({"n_train": 20_000}, "need 1 < n_train < n, got n_train=20000, n=1200"),
        (
            {"normalize": "frobenius"},
            "normalize must be one of (None, 'max', 'trace', 'whitened'), got 'frobenius'",
        ),
        (
            {"precision": "fast"},
            "precision must be one of ('highest', 'high', 'default'), got 'fast'",
        ),
        ({"learning_rate": 0.0}, "learning_rate must be a positive number, got 0.0"),
    ],
)
def test_bad_config_raises_before_compiling(change, message):
    with pytest.raises(SettingError, match=f"^{re.escape(message)}$"):
        dataclasses.replace(SMALL, **change)


def test_float64_switch():
    cfg = dataclasses.replace(
        SMALL, cases=("high",), powers=(1.0,), snrs=(4.0,), seeds=1, float64=True
    )
    r = NOISE.sweep(cfg, progress=False)
    assert r.data["test_mse"].dtype == np.float64 and np.all(np.isfinite(r.data["test_mse"]))
    assert not jax.config.jax_enable_x64  # the switch does not leak
