"""The GPU path kept honest on a CPU (issue 14): ``benchmarks/gpu_fig1.py`` run at a tiny size
with the accelerator's settings (every run of a chunk in one group, TF32 precision accepted),
and its JSON checked."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"dx": 4, "dh": 16, "n": 96, "n_train": 32}


def test_gpu_fig1_at_a_tiny_size(tmp_path):
    cases, powers, snrs, seeds = ["high", "low"], [-1.0, 1.0], [1.0], 4
    args = ["--seeds", str(seeds), "--steps", "20", "--log-every", "10", "--warmup-steps", "20"]
    args += ["--cases", *cases, "--powers", *map(str, powers), "--snrs", *map(str, snrs)]
    args += ["--precision", "default", "--group-target", "4096", "--budget-s", "300"]
    args += [f"--{k.replace('_', '-')}={v}" for k, v in SIZES.items()]
    args += ["--json", str(tmp_path / "fig1.json")]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one device, as on the GPU
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_fig1.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr

    result = json.loads((tmp_path / "fig1.json").read_text())
    cells = len(cases) * len(powers) * len(snrs)
    # the settings it reports are the ones passed
    assert result["argv"] == args and result["precision"] == "default"
    assert result["grid"] == {"cases": cases, "powers": powers, "snrs": snrs, "cells": cells}
    assert result["sizes"] == {
        "dx": SIZES["dx"],
        "dh": SIZES["dh"],
        "n_train": SIZES["n_train"],
        "n_test": SIZES["n"] - SIZES["n_train"],
    }
    assert result["device"]["platform"] == "cpu"
    assert result["seeds_requested"] == result["seeds_done"] == seeds
    assert result["steps_target"] == result["steps_run"] == 20 and result["log_every"] == 10
    assert result["chunk_size"] == seeds
    assert result["group_size"] == seeds * cells  # a chunk's runs side by side, as on a GPU
    assert result["warmup"]["steps"] == 20 and result["warmup"]["seeds"] == seeds
    # finite numbers where there should be numbers
    for key in ("compile_s", "run_s", "wall_s", "seed_steps_per_s", "achieved_tflops"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["peak_tflops_used"] == 495.0  # TF32's peak for --precision default
    assert len(result["chunk_s"]) == 1
    assert len(result["cells"]) == cells
    for cell, (case, p, snr) in zip(
        result["cells"], [(c, p, s) for c in cases for p in powers for s in snrs], strict=True
    ):
        assert (cell["case"], cell["p"], cell["snr"]) == (case, p, snr)
        assert cell["diverged"] == 0 and len(cell["test_mse_curve_mean"]) == 2
        values = [cell["final_test_mse_mean"], cell["final_test_mse_std"]]
        assert all(math.isfinite(v) and v >= 0 for v in values + cell["test_mse_curve_mean"])
        assert math.isclose(
            cell["final_test_mse_mean"], cell["test_mse_curve_mean"][-1], rel_tol=1e-5
        )

    arrays = np.load(tmp_path / "fig1.npz")
    shape = (seeds, len(cases), len(powers), len(snrs))
    assert arrays["final_test_mse"].shape == arrays["final_train_loss"].shape == shape
    assert np.isfinite(arrays["final_test_mse"]).all()
    assert np.isfinite(arrays["final_train_loss"]).all()
    assert arrays["cases"].tolist() == cases and arrays["powers"].tolist() == powers
    np.testing.assert_allclose(
        arrays["final_test_mse"].mean(axis=0).ravel(),
        [c["final_test_mse_mean"] for c in result["cells"]],
        rtol=1e-5,
    )
