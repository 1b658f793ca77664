"""Write the goldens of tests/test_goldens.py from the code at the commit named in goldens.json.

Run once, from the commit *before* a change that must not alter results (this script imports
that commit's modules):

    python tests/goldens/make_goldens.py tests/goldens/goldens.json

The file is text: each float32 array on one line (its shape and its values), so that a change
shows in a diff.

The arrays are a few seeds and steps of every experiment: noise (Σ^p and AdaHessian arms),
transfer, OOD on the synthetic task (two optimizers and the Σ^p sweep) and rotated spectra.
"""

import json
import subprocess
import sys

import jax
import numpy as np
from jaxprecond.data import case_spectrum, random_rotation
from jaxprecond.noise import NoiseConfig, run_noise
from jaxprecond.ood import OODConfig, run_ood
from jaxprecond.rotated import ARMS, compare_arms
from jaxprecond.transfer import TransferConfig, run_transfer

NOISE = dict(
    cases=("high", "low"),
    powers=(-1.0, 1.0),
    snrs=(1.0, 4.0),
    seeds=3,
    steps=40,
    log_every=20,
    dh=16,
    n=300,
    n_train=50,
    chunk_size=2,
)


def main(path):
    arrays = {}
    for arm in ("covariance_power", "adahessian"):
        r = run_noise(NoiseConfig(preconditioner=arm, **NOISE), progress=False, group_size=2)
        for name in ("train_loss", "test_mse", "alignment", "energy"):
            arrays[f"noise_{arm}_{name}"] = r.__dict__[name]
    t = run_transfer(
        TransferConfig(
            powers=(-1.0, 1.0), seeds=2, steps=40, log_every=20, dh=16, n=300, n_train=50
        ),
        progress=False,
        group_size=2,
    )
    for name in (
        "transfer_test_mse",
        "transfer_train_mse",
        "stage1_test_mse",
        "stage1_train_loss",
        "stage1_alignment",
        "transfer_alignment",
    ):
        arrays[f"transfer_{name}"] = getattr(t, name)
    o = run_ood(
        OODConfig(
            dataset="synthetic",
            optimizers=("gd", "adam"),
            powers=(-1.0, 0.0, 1.0),
            seeds=2,
            steps=20,
            log_every=10,
            hidden=16,
            n_train=100,
            n_val=100,
            n_test=100,
            group_size=2,
        ),
        progress=False,
    )
    for arm, metrics in o.arms.items():
        for name, values in metrics.items():
            arrays[f"ood_{arm}_{name}"] = values
    config = NoiseConfig(dh=16, n=300, n_train=100, steps=40, log_every=40, snrs=(1.0,))
    spectrum = case_spectrum("high", rotation=random_rotation(jax.random.key(11), 10))
    out = jax.jit(lambda p: compare_arms(jax.random.key(3), spectrum, p, config=config))(1.0)
    for arm in ARMS:
        arrays[f"rotated_{arm}_W1"] = out[arm]["W1"]
        arrays[f"rotated_{arm}_test_mse"] = out[arm]["test_mse"]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    lines = []
    for name, values in arrays.items():
        values = np.asarray(values, np.float32)
        entry = {"shape": list(values.shape), "values": [float(v) for v in values.reshape(-1)]}
        lines.append(f"  {json.dumps(name)}: {json.dumps(entry)}")
    header = f'{{\n"commit": {json.dumps(commit.strip())},\n"dtype": "float32",\n"arrays": {{\n'
    with open(path, "w") as f:
        f.write(header + ",\n".join(lines) + "\n}\n}\n")
    print(f"{len(arrays)} arrays -> {path}")


if __name__ == "__main__":
    main(sys.argv[1])
