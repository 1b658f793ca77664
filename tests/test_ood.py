"""The OOD experiment: optimizers and the Σ^p sweep on the correlation-shift task."""

import dataclasses
import json
import re
import warnings
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shared import need

from jaxprecond.checks import SettingError
from jaxprecond.cli import main
from jaxprecond.engine import sweep as sweep_module
from jaxprecond.engine.stats import DivergenceWarning
from jaxprecond.engine.sweep import run
from jaxprecond.experiments.ood import OOD, OPTIMIZERS, SIGMA_P, OODConfig
from jaxprecond.report import load_run

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SMALL = dict(dataset="synthetic", hidden=16, n_train=100, n_val=200, n_test=200)


@pytest.fixture(scope="module")
def sweep():
    """GD and the Σ^p sweep, 8 seeds, long enough to learn."""
    config = OODConfig(
        optimizers=("gd",), powers=(-1.0, 0.0, 1.0), seeds=8, steps=300, log_every=100, **SMALL
    )
    config = dataclasses.replace(config, learning_rate=0.05, group_size=8)
    return OOD.sweep(config, progress=False)


def test_p_zero_is_gd_and_p_steers_which_feature_is_used(sweep):
    assert list(sweep) == ["optimizers", SIGMA_P]
    gd, sigma = sweep["optimizers"], sweep[SIGMA_P]
    assert gd.dims == sigma.dims == ("optimizer", "p", "seed", "step")
    assert gd.values("optimizer") == ("gd",) and gd.values("p") == (0.0,)
    assert sigma.values("optimizer") == (SIGMA_P,) and sigma.values("p") == (-1.0, 0.0, 1.0)
    assert gd.data["val_acc"].shape == (1, 1, 8, 3)
    for metric in ("val_acc", "digit_acc", "noise_acc"):  # P = I up to rounding: same run
        np.testing.assert_allclose(sigma.data[metric][0, 1], gd.data[metric][0, 0], atol=0.02)
    digit = sigma.summary("digit_acc").mean[0]
    noise = sigma.summary("noise_acc").mean[0]
    # Large p favours the high-variance core feature, small p the low-variance spurious one.
    assert digit[0] < digit[1] < digit[2]
    assert noise[0] > noise[1] > noise[2]
    assert np.all(sigma.summary("val_acc").mean > 0.85)


#: K-FAC (the classifier's layer statistics) and AdaHessian (Hessian-vector products, decoupled
#: weight decay) on the classifier; the whole list, with SAM's gradient, L-BFGS's line search
#: and Sophia-H, is slow (each optimizer is one more compiled program).
ORACLE_OPTIMIZERS = ("kfac", "adahessian")


@pytest.mark.parametrize(
    "optimizers", [ORACLE_OPTIMIZERS, pytest.param(OPTIMIZERS, marks=pytest.mark.slow)]
)
def test_every_optimizer_trains(tmp_path, optimizers, monkeypatch):
    config = OODConfig(optimizers=optimizers, powers=(), seeds=2, steps=30, log_every=15, **SMALL)
    out = tmp_path / "run"
    arms = OOD.sweep(config, out=out, progress=False)
    assert list(arms) == ["optimizers"]  # no powers: no Σ^p arm
    results = arms["optimizers"]
    assert results.values("optimizer") == optimizers
    loss = results.data["train_loss"]  # (optimizer, p, seed, record)
    assert loss.shape == (len(optimizers), 1, 2, 2)
    for i, name in enumerate(optimizers):
        assert np.all(np.isfinite(loss[i])), name
        assert np.all(loss[i, ..., -1] < loss[i, ..., 0]), name
    report = (out / "report.md").read_text()
    assert report == (out / "optimizers" / "report.md").read_text()
    assert all(f"| {name} |" in report for name in optimizers)
    assert (out / "optimizers" / "figure.png").stat().st_size > 10_000
    again = load_run(out / "optimizers")
    assert again.config == results.config
    for metric, values in results.data.items():
        np.testing.assert_array_equal(again.data[metric], values, err_msg=metric)

    def no_program(*args, **kwargs):
        raise AssertionError("compiled before checking the folder")

    monkeypatch.setattr(sweep_module, "program", no_program)
    with pytest.raises(SettingError, match=re.escape("(differs in: config.steps)")):
        OOD.sweep(dataclasses.replace(config, steps=60), out=out, progress=False)


def test_a_diverging_seed_is_reported_not_averaged():
    config = OODConfig(
        optimizers=("gd",), powers=(0.0,), seeds=2, steps=4, log_every=2, learning_rate=1e30,
        **SMALL,
    )  # fmt: skip
    results = run(OOD, config, progress=False)  # one sweep: gd at p = 0, no arms
    assert results.dims == ("optimizer", "p", "seed", "step")
    assert np.isnan(results.data["val_acc"]).all()
    with pytest.warns(DivergenceWarning):
        summary = results.summary("val_acc")
    assert summary.n_diverged[0, 0] == 2 and summary.n_valid[0, 0] == 0
    assert "| gd | nan [nan, nan]" in results.table()


CHOICES = str(OPTIMIZERS + (SIGMA_P,))


@pytest.mark.parametrize(
    "change, message",
    [
        (
            dict(dataset="cifar"),
            "dataset must be one of ('mnist', 'fashion-mnist', 'synthetic'), got 'cifar'",
        ),
        (
            dict(optimizers=("newton",)),
            f"every value of optimizers must be one of {CHOICES}, got 'newton'",
        ),
        (
            dict(learning_rates=(("adamw", 0.1),)),
            f"learning_rates: the name must be one of {CHOICES}, got 'adamw'",
        ),
        (
            dict(learning_rates=(("adam", "fast"),)),
            "learning_rates: 'fast' is not a number (for 'adam')",
        ),
        (
            dict(learning_rates=(("adam", 0.0),)),
            "learning_rates: the value of 'adam' must be a positive number, got 0.0",
        ),
        (dict(learning_rates=(("adam", 0.1), ("adam", 0.2))), "learning_rates names one twice"),
        (
            dict(optimizers=("gd",), powers=(), learning_rates=(("adam", 0.1),)),
            "learning_rates names ['adam'], which this run does not train",
        ),
        (dict(steps=25, log_every=10), "steps=25 must be a multiple of log_every=10"),
        (dict(damping=-1.0), "damping must be a non-negative number, got -1.0"),
        (dict(optimizers=(), powers=()), "nothing to run: give optimizers or powers"),
        (dict(optimizers=("gd", "gd")), "optimizers repeats 'gd'"),
        (dict(chunk_size=True), "chunk_size must be a positive integer, got True"),
        (dict(kfac_refresh=0), "kfac_refresh must be a positive integer, got 0"),
    ],
)
def test_bad_settings_raise(change, message):
    with pytest.raises(SettingError, match=re.escape(message)):
        OODConfig(**change)


def test_numpy_integers_are_accepted():
    config = OODConfig(chunk_size=np.int64(2), kfac_refresh=np.int32(5))
    assert config.chunk_size == 2 and config.kfac_refresh == 5
    assert type(config.chunk_size) is int and type(config.kfac_refresh) is int


def test_the_image_runs_test_on_every_test_image():
    """The reference presets test on all 10 000 test images (the authors' protocol); with the
    test split alone, on the 10 000 − 1 200 − 1 200 left after the training and validation draw.
    Shapes only: the pools are abstract arrays the size of MNIST's splits."""
    from jaxprecond.tasks.correlation_shift import draw

    def split(n):
        return jax.ShapeDtypeStruct((n, 784), jnp.float32), jax.ShapeDtypeStruct((n,), jnp.int32)

    full = dict(zip(("pool_images", "pool_labels"), split(60_000), strict=True))
    full.update(zip(("test_images", "test_labels"), split(10_000), strict=True))
    test_only = dict(zip(("pool_images", "pool_labels"), split(10_000), strict=True))
    for name in ("cpu", "gpu"):
        config = OOD.presets[name]
        assert config.n_test is None and (config.n_train, config.n_val) == (1200, 1200)
        sizes = dict(n_train=config.n_train, n_val=config.n_val, n_test=config.n_test)
        for pools, n_test in ((full, 10_000), (test_only, 7_600)):
            data = jax.eval_shape(partial(draw, **sizes), jax.random.key(0), pools)
            assert data.x_digit.shape == data.x_noise.shape == (n_test, 784)
            assert data.x_train.shape == data.x_val.shape == (1200, 784)


def test_mnist_test_split_end_to_end(tmp_path):
    need((SHARED / "mnist").is_dir(), f"{SHARED / 'mnist'} (the MNIST test split)")
    out = tmp_path / "mnist"
    argv = ["ood", "--dataset", "mnist", "--data-dir", str(SHARED), "--test-split-only"]
    argv += ["--optimizers", "gd", "--p", "--seeds", "2", "--steps", "20", "--log-every", "10"]
    argv += ["--hidden", "16", "--lr", "0.1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert not (out / SIGMA_P).exists()  # no powers: the optimizers arm only
    manifest = json.loads((out / "optimizers" / "manifest.json").read_text())
    assert manifest["experiment"] == "ood"
    config = manifest["config"]
    assert config["dataset"] == "mnist" and config["test_split_only"]
    assert config["optimizers"] == ["gd"] and config["powers"] == [0.0]
    results = load_run(out / "optimizers")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        val = results.summary("val_acc")
    assert val.mean[0, 0] > 0.3  # ten classes: chance is 0.1
    assert "| gd |" in (out / "report.md").read_text()
