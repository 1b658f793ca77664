"""The transfer experiment: the ridge head against numpy, the stage-2 teachers, one small run."""

import dataclasses
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprecond.checks import SettingError
from jaxprecond.cli import build_parser, main
from jaxprecond.engine import sweep as sweep_module
from jaxprecond.engine.config import checked_fields, preset_with, to_json
from jaxprecond.experiments import noise
from jaxprecond.experiments.transfer import (
    PAIRS,
    PRESETS,
    TRANSFER,
    TransferConfig,
    by_pair,
    stage_spectra,
    transfer_axes,
)
from jaxprecond.experiments.transfer import run as transfer_run
from jaxprecond.report import load_run
from jaxprecond.tasks.ridge import ridge_head
from jaxprecond.tasks.single_index import CASES
from jaxprecond.training.regression import StudentConfig


def numpy_ridge(h, y, ridge, form):
    """The closed form in float64 numpy: primal ``d × d`` or dual ``N × N`` solve."""
    h, y = np.asarray(h, np.float64), np.asarray(y, np.float64)
    n, d = h.shape
    hc, yc = h - h.mean(0), y - y.mean()
    if form == "primal":
        w = np.linalg.solve(hc.T @ hc + ridge * n * np.eye(d), hc.T @ yc)
    else:
        w = hc.T @ np.linalg.solve(hc @ hc.T + ridge * n * np.eye(n), yc)
    return w, y.mean() - h.mean(0) @ w


@pytest.mark.parametrize("shape", [(40, 7), (12, 30)], ids=["d<N", "d>N"])
def test_ridge_head_matches_numpy_in_both_forms(rng, x64, shape):
    h = np.maximum(rng.normal(size=shape) + 0.3, 0.0)  # ReLU-like features, non-zero mean
    y = h @ rng.normal(size=shape[1]) + 0.5 + 0.1 * rng.normal(size=shape[0])
    ridge = 1e-2
    expected_w, expected_b = numpy_ridge(h, y, ridge, "primal")
    # The two numpy forms are the same minimiser.
    np.testing.assert_allclose(numpy_ridge(h, y, ridge, "dual")[0], expected_w, rtol=1e-10)
    for form in ("primal", "dual", "auto"):
        w, b = ridge_head(jnp.asarray(h), jnp.asarray(y), ridge=ridge, form=form)
        assert w.dtype == jnp.float64
        np.testing.assert_allclose(w, expected_w, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b, expected_b, rtol=1e-9)
        # The intercept makes the mean training residual zero.
        assert abs(float(jnp.mean(h @ w + b - y))) < 1e-12


def test_ridge_head_is_the_penalised_minimiser(rng, x64):
    """The gradient of ‖H_c w − y_c‖² + λN‖w‖² vanishes at the returned w."""
    h, y = rng.normal(size=(15, 25)), rng.normal(size=15)
    w, _ = ridge_head(jnp.asarray(h), jnp.asarray(y), ridge=1e-3)
    hc, yc = h - h.mean(0), y - y.mean()
    gradient = hc.T @ (hc @ np.asarray(w) - yc) + 1e-3 * 15 * np.asarray(w)
    assert np.max(np.abs(gradient)) < 1e-9


def test_ridge_head_vmaps_and_float32_agrees(rng):
    h = np.abs(rng.normal(size=(3, 20, 50))).astype(np.float32)
    y = rng.normal(size=(3, 20)).astype(np.float32)
    w, b = jax.vmap(lambda a, c: ridge_head(a, c, ridge=1e-3))(h, y)
    assert w.shape == (3, 50) and b.shape == (3,)
    for i in range(3):
        expected_w, expected_b = numpy_ridge(h[i], y[i], 1e-3, "dual")
        np.testing.assert_allclose(w[i], expected_w, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(b[i], expected_b, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"ridge": 0.0}, "ridge must be positive"), ({"form": "qr"}, "form must be one of")],
)
def test_ridge_head_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ridge_head(jnp.ones((4, 3)), jnp.ones(4), **kwargs)
    with pytest.raises(ValueError, match="need features"):
        ridge_head(jnp.ones((4, 3)), jnp.ones(5))


def test_transfer_axes_follow_the_authors_argsort():
    """``argsort(λ)[-k:]`` / ``[:k]`` of the case's eigenvalues: for k = 1 exactly the authors'
    axes (NumPy's default sort); for k > 1 the stable order, whose axes are, like NumPy's
    (implementation-defined among ties), in the right eigenvalue group."""
    for case in CASES:
        for k in (1, 3):
            n_large = k if case == "high" else 10 - k
            eigenvalues = np.r_[np.full(n_large, 10.0), np.full(10 - n_large, 0.1)]
            for direction, value in (("high", 10.0), ("low", 0.1)):
                axes = transfer_axes(case, direction, dx=10, k=k)
                stable = np.argsort(eigenvalues, kind="stable")
                np.testing.assert_array_equal(
                    axes, stable[-k:] if direction == "high" else stable[:k]
                )
                assert (eigenvalues[axes] == value).all() and len(set(axes)) == k
                if k == 1:
                    authors = np.argsort(eigenvalues)  # their call
                    expected = authors[-1:] if direction == "high" else authors[:1]
                    np.testing.assert_array_equal(axes, expected)
    assert transfer_axes("high", "low", dx=10, k=1).tolist() == [1]  # as the fixture's teacher
    _, stage2 = stage_spectra(TransferConfig(dx=10, k=1))
    low = CASES.index("low")
    np.testing.assert_array_equal(stage2.teacher_basis[low, 0, :, 0], np.eye(10)[8])


SMALL = TransferConfig(
    powers=(-1.0, 1.0),
    seeds=3,
    steps=300,
    log_every=100,
    dh=32,
    n=1000,
    n_train=100,
    chunk_size=3,
)
STAGE2 = ("test_mse", "train_mse", "alignment")


def without_chunking(config):
    return {k: v for k, v in to_json(config).items() if k not in ("chunk_size", "memory_budget")}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer") / "run"
    return TRANSFER.sweep(SMALL, out=out, progress=False), out


def test_shapes_and_run_folder(small_run, monkeypatch):
    results, out = small_run
    assert results.dims == ("case", "p", "seed", "step")
    assert results.values("case") == ("high", "low") and results.values("p") == (-1.0, 1.0)
    np.testing.assert_array_equal(results.steps, [SMALL.steps - 1])
    for name, values in results.data.items():
        assert values.shape == (2, 2, 3, 1) and np.isfinite(values).all(), name
    for name in STAGE2 + ("stage1_test_mse", "stage1_train_loss", "stage1_alignment"):
        assert by_pair(results, name).shape == (4, 2, 3), name
    # by_pair picks the pair's stage-1 case and stage-2 direction out of the (case, p) grid.
    pairs = list(SMALL.pairs)
    for i, (case, direction) in enumerate(pairs):
        c = CASES.index(case)
        np.testing.assert_array_equal(
            by_pair(results, "test_mse")[i], results.data[f"to_{direction}_test_mse"][c, ..., 0]
        )
    # The two pairs of one stage-1 case share its stage 1.
    stage1 = by_pair(results, "stage1_test_mse")
    for case in CASES:
        a, b = (pairs.index(p) for p in PAIRS if p[0] == case)
        np.testing.assert_array_equal(stage1[a], stage1[b])
    # Ridge fits its training set at least as well as the mean predictor (MSE 1: standardised).
    assert (by_pair(results, "train_mse") < 1.0).all()
    # Alignments are fractions of the first layer's energy.
    assert ((by_pair(results, "alignment") >= 0) & (by_pair(results, "alignment") <= 1)).all()
    report = (out / "report.md").read_text()
    assert "| High→Low |" in report and "**" in report and "p = -1" in report
    assert "all 3 seeds finished" in report
    assert (out / "figure.png").stat().st_size > 10_000
    loaded = load_run(out)
    # (the manifest's config leaves out how seeds were chunked: chunk_size, memory_budget)
    assert without_chunking(loaded.config) == without_chunking(results.config)
    expected = dataclasses.replace(SMALL, group_size=results.config.group_size)  # 4 on a CPU
    assert without_chunking(results.config) == without_chunking(expected)
    np.testing.assert_array_equal(by_pair(loaded, "test_mse"), by_pair(results, "test_mse"))

    # Started again on its folder, the run resumes: nothing is recomputed, same results.
    def no_compute(*args, **kwargs):
        raise AssertionError("recomputed a finished chunk")

    monkeypatch.setattr(sweep_module, "run_chunk", no_compute)
    again = TRANSFER.sweep(SMALL, out=out, progress=False)
    for name, values in results.data.items():
        np.testing.assert_array_equal(again.data[name], values, err_msg=name)


def test_high_to_high_beats_high_to_low_at_p1(small_run):
    """Σ¹ puts the Case High features on the large eigenvalue's axis: a new teacher there is
    fitted by the frozen features, one on a small eigenvalue is not (every seed)."""
    results, _ = small_run
    p1 = SMALL.powers.index(1.0)
    test_mse = by_pair(results, "test_mse")
    to_high = test_mse[SMALL.pairs.index(("high", "high")), p1]
    to_low = test_mse[SMALL.pairs.index(("high", "low")), p1]
    assert np.all(to_high + 0.2 < to_low)
    # ... because the frozen features are aligned with the new teacher in the first case only.
    alignment = by_pair(results, "alignment")
    assert np.all(alignment[SMALL.pairs.index(("high", "high")), p1] > 0.5)
    assert np.all(alignment[SMALL.pairs.index(("high", "low")), p1] < 0.1)


def test_vmapped_seeds_equal_single_seed_runs(small_run):
    """Seed 1's run alone (its own jit, twice: deterministic) equals its slice of the sweep,
    and its stage 1 is the noise experiment's run of that seed."""
    results, _ = small_run
    config = SMALL
    low = config.cases.index("low")
    student = {name: getattr(config, name) for name in checked_fields(StudentConfig)}
    noise_config = noise.NoiseConfig(**student, snrs=(config.snr,))

    @jax.jit
    def one(key):
        out = transfer_run(key, {"case": low, "p": 1.0}, config)
        point = {"case": CASES.index("low"), "p": 1.0, "snr": config.snr}
        return out, noise.run(key, point, noise_config).test_mse[-1]

    key = jax.random.fold_in(jax.random.key(config.root_seed), 1)
    out, noise_test_mse = one(key)
    repeat, _ = one(key)
    for name in out:
        np.testing.assert_array_equal(out[name], repeat[name])
    np.testing.assert_allclose(out["stage1_test_mse"][0], noise_test_mse, rtol=1e-6)
    p1 = config.powers.index(1.0)
    for name in out:
        np.testing.assert_allclose(
            out[name][0], results.data[name][low, p1, 1, 0], rtol=1e-4, err_msg=name
        )
    for direction in ("high", "low"):
        i = config.pairs.index(("low", direction))
        for metric in STAGE2:
            np.testing.assert_allclose(
                out[f"to_{direction}_{metric}"][0], by_pair(results, metric)[i, p1, 1], rtol=1e-4
            )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pairs": ()}, "pairs must not be empty"),
        (
            {"pairs": [("high", "middle")]},
            "pairs must be distinct pairs like 'high_to_low', got ('high', 'middle')",
        ),
        (
            {"pairs": ["high_to_low", ("high", "low")]},
            "pairs must be distinct pairs like 'high_to_low', got ('high', 'low')",
        ),
        ({"powers": ()}, "powers must not be empty"),
        ({"snr": 0.0}, "snr must be a positive number, got 0.0"),
        ({"ridge": -1.0}, "ridge must be a positive number, got -1.0"),
        ({"ridge_form": "qr"}, "ridge_form must be one of ('auto', 'primal', 'dual'), got 'qr'"),
        ({"seeds": 0}, "seeds must be a positive integer, got 0"),
        ({"steps": 250}, "steps=250 must be a multiple of log_every=100"),
        (
            {"preconditioner": "adam"},
            "preconditioner must be one of ('covariance_power', 'adahessian'), got 'adam'",
        ),
        ({"k": 6}, "a transfer to the other direction needs 2k <= dx, got k=6, dx=10"),
    ],
)
def test_bad_config_raises_before_compiling(change, message):
    with pytest.raises(SettingError, match=re.escape(message)):
        dataclasses.replace(SMALL, **change)


def test_pairs_take_labels_and_same_direction_pairs_allow_large_k():
    config = dataclasses.replace(SMALL, pairs=["low_to_high", "high_to_high"])
    assert config.pairs == (("low", "high"), ("high", "high"))
    assert config.cases == ("high", "low")
    assert dataclasses.replace(SMALL, pairs=[("low", "low")], k=6).cases == ("low",)


def test_cli_parser_and_presets():
    parser = build_parser()

    def config(*argv):
        return preset_with(TRANSFER.presets, parser.parse_args(["transfer", *argv]))

    given = config("--seeds", "2", "--p", "0", "1", "--pairs", "high_to_low", "--ridge", "0.01")
    assert given.pairs == (("high", "low"),) and given.powers == (0.0, 1.0)
    assert (given.seeds, given.ridge, given.steps) == (2, 0.01, PRESETS["cpu"].steps)
    paper = config("--preset", "paper")
    assert (paper.steps, paper.n, paper.n_train, paper.dh, paper.ridge) == (
        10_000,
        10_000,
        200,
        500,
        1e-3,
    )
    assert config("--preconditioner", "adahessian").preconditioner == "adahessian"
    sized = config("--dx", "6", "--precision", "default", "--group-size", "2")
    assert (sized.dx, sized.precision, sized.group_size) == (6, "default", 2)


TINY = dict(steps=20, log_every=10, dh=8, dx=4, n=300, n_train=50)


def test_transfer_command_runs_with_the_given_group_size(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["transfer", "--seeds", "2", "--steps", "20", "--log-every", "10", "--p", "0", "1"]
    args += ["--pairs", "high_to_low", "--n", "300", "--n-train", "50", "--dh", "8", "--dx", "4"]
    assert main(args + ["--group-size", "2", "--out", str(out), "--no-progress"]) == 0
    assert "transfer: 1 case x 2 p x 2 seeds" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["config"]["group_size"] == 2
    loaded = load_run(out)
    expected = TransferConfig(pairs="high_to_low", powers=(0, 1), seeds=2, group_size=2, **TINY)
    assert without_chunking(loaded.config) == without_chunking(expected)
    test_mse = by_pair(loaded, "test_mse")
    assert test_mse.shape == (1, 2, 2) and np.isfinite(test_mse).all()  # (pair, p, seed)


def test_an_snr_axis_is_traced_and_the_generic_table_shows_it():
    config = TransferConfig(pairs="low_to_low", powers=(1.0,), seeds=2, **TINY)
    results = TRANSFER.sweep(config, axes={"snr": [0.25, 4.0]}, progress=False)
    assert results.dims == ("case", "p", "snr", "seed", "step")
    assert by_pair(results) is None  # not one value per pair and p
    assert "| case | p | snr |" in results.table()
    # Each SNR's slice is the run at that SNR alone (a traced axis: its values are arguments).
    alone = TRANSFER.sweep(dataclasses.replace(config, snr=4.0), progress=False)
    for name, values in alone.data.items():
        assert np.isfinite(values).all(), name
        np.testing.assert_allclose(results.data[name][:, :, 1], values, rtol=1e-5, err_msg=name)
    assert not np.allclose(results.data["to_low_test_mse"][:, :, 0], alone.data["to_low_test_mse"])
