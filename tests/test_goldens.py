"""Results do not change across refactorings: a few seeds and steps of every experiment.

``goldens/goldens.json`` was written by ``goldens/make_goldens.py`` from the code before the
redesign of issue 11 (its commit is stored in the file): float32 values as text, each array
one line, so that a change of them shows in a diff. The same arithmetic must give the same
arrays up to the last bits: XLA:CPU chooses its kernels by the CPU's instruction set, so a CPU
other than the one that wrote the goldens rounds differently there. On an AMD EPYC with
AVX-512, the goldens' own commit gives 1 of 48 noise test MSEs one ulp off, AdaHessian's
alignments up to 6e-7 relative off, and the rotated experiment's estimated-Σ̂ arm weights up
to 3.3e-9 off (its largest weight is 6.5e-3). Hence the tolerances: ``RTOL`` relative plus
``SCALE_TOL`` of the array's largest value, a few float32 ulps, far below what a changed
computation moves in 40 steps (the learning rate changed by 1e-3 relative moves the noise
test MSEs by up to 3.4e-4).
"""

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxprecond.engine.sweep import run
from jaxprecond.experiments.noise import NOISE, NoiseConfig
from jaxprecond.experiments.ood import OOD, OODConfig
from jaxprecond.experiments.rotated import ARMS, RotatedConfig, compare_arms
from jaxprecond.experiments.transfer import TRANSFER, TransferConfig, by_pair
from jaxprecond.tasks.single_index import case_spectrum, random_rotation


def load_goldens(path: Path) -> dict:
    """``{name: float32 array}`` from the goldens' JSON file."""
    stored = json.loads(path.read_text())
    return {
        name: np.asarray(entry["values"], np.dtype(stored["dtype"])).reshape(entry["shape"])
        for name, entry in stored["arrays"].items()
    }


GOLDENS = load_goldens(Path(__file__).parent / "goldens" / "goldens.json")
SMALL = dict(steps=40, log_every=20, dh=16, n=300, n_train=50, group_size=2)


#: Tolerances: 2e-6 relative (about 17 float32 ulps) plus 1e-5 of the array's largest value.
RTOL, SCALE_TOL = 2e-6, 1e-5


def same(ours, name):
    golden = GOLDENS[name]
    assert np.all(np.isfinite(golden)), name
    atol = SCALE_TOL * np.abs(golden).max()
    np.testing.assert_allclose(np.asarray(ours), golden, rtol=RTOL, atol=atol, err_msg=name)


@pytest.mark.parametrize("arm", ["covariance_power", "adahessian"])
def test_noise(arm):
    config = NoiseConfig(
        preconditioner=arm, powers=(-1.0, 1.0), snrs=(1.0, 4.0), seeds=3, chunk_size=2, **SMALL
    )
    results = NOISE.sweep(config, progress=False)
    for metric in ("train_loss", "test_mse", "alignment", "energy"):
        same(results.data[metric], f"noise_{arm}_{metric}")


def test_transfer():
    results = TRANSFER.sweep(TransferConfig(powers=(-1.0, 1.0), seeds=2, **SMALL), progress=False)
    for metric in ("test_mse", "train_mse", "alignment"):
        same(by_pair(results, metric), f"transfer_transfer_{metric}")
    for metric in ("stage1_test_mse", "stage1_train_loss", "stage1_alignment"):
        same(by_pair(results, metric), f"transfer_{metric}")


def test_ood_optimizers_and_the_power_sweep():
    config = OODConfig(
        dataset="synthetic", optimizers=("gd", "adam"), powers=(-1.0, 0.0, 1.0), seeds=2,
        steps=20, log_every=10, hidden=16, n_train=100, n_val=100, n_test=100, group_size=2,
    )  # fmt: skip
    results = OOD.sweep(config, progress=False)
    optimizers, sigma = results["optimizers"], results["sigma_p"]
    assert optimizers.values("optimizer") == ("gd", "adam")
    for metric in ("train_loss", "val_acc", "digit_acc", "noise_acc"):
        same(optimizers.data[metric][0], f"ood_gd_{metric}")
        same(optimizers.data[metric][1], f"ood_adam_{metric}")
        same(sigma.data[metric][0], f"ood_sigma_p_{metric}")
    # the same arm through the engine directly: one sweep, the same arrays
    alone = run(
        OOD, dataclasses.replace(config, optimizers=("adam",), powers=(0.0,)), progress=False
    )
    same(alone.data["val_acc"][0], "ood_adam_val_acc")


def test_rotated_arms():
    config = RotatedConfig(dh=16, n=300, n_train=100, steps=40, log_every=40, snr=1.0)
    spectrum = case_spectrum("high", rotation=random_rotation(jax.random.key(11), 10))
    out = jax.jit(lambda p: compare_arms(jax.random.key(3), spectrum, p, config=config))(1.0)
    for arm in ARMS:
        same(out[arm]["W1"], f"rotated_{arm}_W1")
        same(out[arm]["test_mse"], f"rotated_{arm}_test_mse")
