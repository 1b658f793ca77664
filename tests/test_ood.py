"""The OOD experiment: optimizers and the Σ^p sweep on the correlation-shift task."""

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from jaxprecond.cli import main
from jaxprecond.experiments.ood import OPTIMIZERS, OODConfig, OODResults, run_ood
from jaxprecond.engine.stats import DivergenceWarning

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SMALL = dict(dataset="synthetic", hidden=16, n_train=100, n_val=200, n_test=200)


@pytest.fixture(scope="module")
def sweep():
    """GD and the Σ^p sweep, 8 seeds, long enough to learn."""
    config = OODConfig(
        optimizers=("gd",), powers=(-1.0, 0.0, 1.0), seeds=8, steps=300, log_every=100, **SMALL
    )
    config = dataclasses.replace(config, learning_rate=0.05, group_size=8)
    return run_ood(config, progress=False)


def test_p_zero_is_gd_and_p_steers_which_feature_is_used(sweep):
    gd, sigma = sweep.arms["gd"], sweep.arms["sigma_p"]
    for metric in ("val_acc", "digit_acc", "noise_acc"):  # P = I up to rounding: same run
        np.testing.assert_allclose(sigma[metric][1], gd[metric][0], atol=0.02)
    digit = sweep.summary("sigma_p", "digit_acc").mean
    noise = sweep.summary("sigma_p", "noise_acc").mean
    # Large p favours the high-variance core feature, small p the low-variance spurious one.
    assert digit[0] < digit[1] < digit[2]
    assert noise[0] > noise[1] > noise[2]
    assert np.all(sweep.summary("sigma_p", "val_acc").mean > 0.85)


#: K-FAC (the classifier's layer statistics) and AdaHessian (Hessian-vector products, decoupled
#: weight decay) on the classifier; the whole list, with SAM's gradient, L-BFGS's line search
#: and Sophia-H, is slow (each optimizer is one more compiled program).
ORACLE_OPTIMIZERS = ("kfac", "adahessian")


@pytest.mark.parametrize(
    "optimizers", [ORACLE_OPTIMIZERS, pytest.param(OPTIMIZERS, marks=pytest.mark.slow)]
)
def test_every_optimizer_trains(tmp_path, optimizers):
    config = OODConfig(optimizers=optimizers, powers=(), seeds=2, steps=30, log_every=15, **SMALL)
    results = run_ood(config, out=tmp_path / "run", progress=False)
    for arm in optimizers:
        loss = results.arms[arm]["train_loss"]
        assert np.all(np.isfinite(loss)), arm
        assert np.all(loss[..., -1] < loss[..., 0]), arm
    table = (tmp_path / "run" / "table.md").read_text()
    assert all(f"| {arm} |" in table for arm in optimizers)
    assert (tmp_path / "run" / "figure.png").stat().st_size > 10_000
    again = OODResults.load(tmp_path / "run")
    np.testing.assert_array_equal(again.arms["kfac"]["val_acc"], results.arms["kfac"]["val_acc"])
    with pytest.raises(ValueError, match="another config"):
        run_ood(dataclasses.replace(config, steps=60), out=tmp_path / "run", progress=False)


def test_a_diverging_seed_is_reported_not_averaged():
    config = OODConfig(
        optimizers=("gd",), powers=(), seeds=2, steps=4, log_every=2, learning_rate=1e30, **SMALL
    )
    results = run_ood(config, progress=False)
    assert np.isnan(results.arms["gd"]["val_acc"]).all()
    with pytest.warns(DivergenceWarning):
        summary = results.summary("gd", "val_acc")
    assert summary.n_diverged[0] == 2 and summary.n_valid[0] == 0


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(dataset="cifar"), "dataset"),
        (dict(optimizers=("newton",)), "newton"),
        (dict(learning_rates=(("adamw", 0.1),)), "adamw"),
        (dict(steps=25, log_every=10), "multiple"),
        (dict(damping=-1.0), "damping"),
        (dict(optimizers=(), powers=()), "nothing to run"),
        (dict(chunk_size=True), "chunk_size must be a positive integer, got True"),
        (dict(kfac_refresh=0), "kfac_refresh must be a positive integer, got 0"),
    ],
)
def test_bad_settings_raise(change, match):
    with pytest.raises(ValueError, match=match):
        OODConfig(**change)


def test_numpy_integers_are_accepted():
    config = OODConfig(chunk_size=np.int64(2), kfac_refresh=np.int32(5))
    assert config.chunk_size == 2 and config.kfac_refresh == 5


def test_mnist_test_split_end_to_end(tmp_path):
    if not (SHARED / "mnist").is_dir():
        pytest.skip(f"{SHARED / 'mnist'} is absent: the MNIST test split is needed")
    out = tmp_path / "mnist"
    argv = ["ood", "--dataset", "mnist", "--data-dir", str(SHARED), "--test-split-only"]
    argv += ["--optimizers", "gd", "--p", "--seeds", "2", "--steps", "20", "--log-every", "10"]
    argv += ["--hidden", "16", "--lr", "0.1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "mnist" and config["test_split_only"]
    results = OODResults.load(out)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        val = results.summary("gd", "val_acc")
    assert val.mean[0] > 0.3  # ten classes: chance is 0.1
