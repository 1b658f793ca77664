"""The transfer experiment: the ridge head against numpy, the stage-2 teachers, one small run."""

import argparse
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprecond.cli import main
from jaxprecond.tasks.single_index import CASES
from jaxprecond.experiments.noise import simulate_cell
from jaxprecond.tasks.ridge import ridge_head
from jaxprecond.experiments.transfer import (
    PAIRS,
    TRANSFER_PRESETS,
    TransferConfig,
    TransferResults,
    add_transfer_parser,
    run_transfer,
    simulate_transfer,
    stage_spectra,
    transfer_axes,
    transfer_config,
)


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


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer") / "run"
    return run_transfer(SMALL, out=out, progress=False), out


def test_shapes_and_run_folder(small_run):
    results, out = small_run
    for name in (
        "transfer_test_mse",
        "transfer_train_mse",
        "stage1_test_mse",
        "transfer_alignment",
    ):
        values = getattr(results, name)
        assert values.shape == (4, 2, 3) and np.isfinite(values).all()
    # The two pairs of one stage-1 case share its stage 1.
    pairs = list(SMALL.pairs)
    for case in CASES:
        a, b = (pairs.index(p) for p in PAIRS if p[0] == case)
        np.testing.assert_array_equal(results.stage1_test_mse[a], results.stage1_test_mse[b])
    # Ridge fits its training set at least as well as the mean predictor (MSE 1: standardised).
    assert (results.transfer_train_mse < 1.0).all()
    table = (out / "table.md").read_text()
    assert "| High→Low |" in table and "**" in table and "p = -1" in table
    assert (out / "figure.png").stat().st_size > 10_000
    loaded = TransferResults.load(out)
    assert loaded.config == SMALL
    np.testing.assert_array_equal(loaded.transfer_test_mse, results.transfer_test_mse)
    # Started again on its folder, the run resumes: nothing is recomputed, same results.
    again = run_transfer(SMALL, out=out, progress=False)
    np.testing.assert_array_equal(again.transfer_test_mse, results.transfer_test_mse)


def test_high_to_high_beats_high_to_low_at_p1(small_run):
    """Σ¹ puts the Case High features on the large eigenvalue's axis: a new teacher there is
    fitted by the frozen features, one on a small eigenvalue is not (every seed)."""
    results, _ = small_run
    p1 = SMALL.powers.index(1.0)
    to_high = results.transfer_test_mse[SMALL.pairs.index(("high", "high")), p1]
    to_low = results.transfer_test_mse[SMALL.pairs.index(("high", "low")), p1]
    assert np.all(to_high + 0.2 < to_low)


def test_vmapped_seeds_equal_single_seed_runs(small_run):
    """Seed 1's cell alone (its own jit, twice: deterministic) equals its slice of the sweep,
    and its stage 1 is the noise experiment's run of that seed."""
    results, _ = small_run
    config = SMALL
    stage1, stage2 = stage_spectra(config)
    low = CASES.index("low")

    @jax.jit
    def one(key):
        spectrum = jax.tree.map(lambda leaf: leaf[low], stage1)
        transfer = jax.tree.map(lambda leaf: leaf[low], stage2)
        out = simulate_transfer(key, spectrum, transfer, 1.0, config=config)
        noise = simulate_cell(key, spectrum, 1.0, config.snr, config=config.stage1)
        return out, noise.test_mse[-1]

    key = jax.random.fold_in(jax.random.key(config.root_seed), 1)
    out, noise_test_mse = one(key)
    repeat, _ = one(key)
    for name in out:
        np.testing.assert_array_equal(out[name], repeat[name])
    np.testing.assert_allclose(out["stage1_test_mse"][0], noise_test_mse, rtol=1e-6)
    p1 = config.powers.index(1.0)
    for direction in ("high", "low"):
        i = config.pairs.index(("low", direction))
        np.testing.assert_allclose(
            out[f"to_{direction}_test_mse"][0], results.transfer_test_mse[i, p1, 1], rtol=1e-4
        )
        np.testing.assert_allclose(
            out[f"to_{direction}_train_mse"][0], results.transfer_train_mse[i, p1, 1], rtol=1e-4
        )
    np.testing.assert_allclose(
        out["stage1_test_mse"][0], results.stage1_test_mse[i, p1, 1], rtol=1e-5
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pairs": ()}, "pairs must be non-empty"),
        ({"pairs": [("high", "middle")]}, "a pair is"),
        ({"pairs": ["high_to_low", ("high", "low")]}, "pairs repeat"),
        ({"snr": 0.0}, "snr must be a positive number"),
        ({"ridge": -1.0}, "ridge must be a positive number"),
        ({"ridge_form": "qr"}, "ridge_form must be"),
        ({"seeds": 0}, "seeds must be a positive integer"),
        ({"steps": 250}, "multiple of log_every"),
        ({"preconditioner": "adam"}, "preconditioner must be"),
        ({"k": 6}, "2k <= dx"),
    ],
)
def test_bad_config_raises_before_compiling(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SMALL, **change)


def test_pairs_take_labels_and_same_direction_pairs_allow_large_k():
    config = dataclasses.replace(SMALL, pairs=["low_to_high", "high_to_high"])
    assert config.pairs == (("low", "high"), ("high", "high"))
    assert config.cases == ("high", "low")
    assert dataclasses.replace(SMALL, pairs=[("low", "low")], k=6).cases == ("low",)


def test_cli_parser_and_presets():
    parser = argparse.ArgumentParser()
    add_transfer_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["transfer", "--seeds", "2", "--p", "0", "1", "--pairs", "high_to_low", "--ridge", "0.01"]
    )
    config = transfer_config(args)
    assert config.pairs == (("high", "low"),) and config.powers == (0.0, 1.0)
    assert (config.seeds, config.ridge, config.steps) == (2, 0.01, TRANSFER_PRESETS["cpu"].steps)
    paper = transfer_config(parser.parse_args(["transfer", "--preset", "paper"]))
    assert (paper.steps, paper.n, paper.n_train, paper.dh, paper.ridge) == (
        10_000,
        10_000,
        200,
        500,
        1e-3,
    )
    adahessian = parser.parse_args(["transfer", "--preconditioner", "adahessian"])
    assert transfer_config(adahessian).stage1.preconditioner == "adahessian"
    sized = parser.parse_args(
        ["transfer", "--dx", "6", "--precision", "default", "--group-size", "2"]
    )
    assert (transfer_config(sized).dx, transfer_config(sized).precision) == (6, "default")
    assert sized.group_size == 2


def test_transfer_command_runs_with_the_given_group_size(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["transfer", "--seeds", "2", "--steps", "20", "--log-every", "10", "--p", "0", "1"]
    args += ["--pairs", "high_to_low", "--n", "300", "--n-train", "50", "--dh", "8", "--dx", "4"]
    assert main(args + ["--group-size", "2", "--out", str(out), "--no-progress"]) == 0
    assert "1 pairs x 2 powers x 2 seeds" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["group_size"] == 2
    assert TransferResults.load(out).transfer_test_mse.shape[-1] == 2  # (…, seeds)
