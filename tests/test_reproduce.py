"""``jaxprecond reproduce`` end to end on a tiny plan (slow: a dozen compiled programs)."""

import dataclasses

import numpy as np
import pytest

from jaxprecond import reproduce as reproduce_module
from jaxprecond.cli import build_parser, main
from jaxprecond.report import load_run

PLAN = reproduce_module.plan  # the real one (the test replaces the module's)


def tiny_plan(quick, *, seeds=None):
    plan = PLAN(True)
    small = dict(steps=40, log_every=20, dh=8, n=300, n_train=50, seeds=3)
    return {
        "noise": dataclasses.replace(plan["noise"], powers=(-1.0, 0.0, 1.0), snrs=(1.0,), **small),
        "transfer": dataclasses.replace(plan["transfer"], powers=(-1.0, 1.0), **small),
        "synthetic": dataclasses.replace(
            plan["synthetic"],
            optimizers=("gd", "adam", "momentum"),
            powers=(-1.0, 0.0, 1.0),
            seeds=4,
            steps=20,
            log_every=10,
            hidden=8,
        ),
        "images": plan["images"],
    }


@pytest.mark.slow
def test_reproduce_writes_every_claim(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce_module, "plan", tiny_plan)
    out = tmp_path / "run"
    argv = ["reproduce", "--quick", "--data-dir", str(tmp_path / "nothing"), "--out", str(out)]
    # the command's own function (main does not reach it yet: see the test below)
    claims = reproduce_module.reproduce_command(build_parser().parse_args([*argv, "--no-progress"]))
    assert len(claims) == 2 * 3 + 2 * 1 + 3 + 2  # noise, transfer, OOD as is, OOD normalised
    text = (out / "claims.md").read_text()
    # noise: 2 cases × 1 SNR + neutrality, both ways; transfer both ways; synthetic OOD: the
    # two Σ^p claims both ways and the ranking flip once
    assert text.count("| Case High:") == 2 and text.count("| Case Low:") == 2
    assert text.count("spectrum-neutral") == 2 and text.count("best average transfer") == 2
    assert text.count("ranking flips") == 1 and text.count("reliance on the") == 4
    assert "mnist OOD run was skipped" in text
    # every run is a finished run folder, with the plan's grid
    folders = {
        "noise-none": (("case", 2), ("p", 3), ("snr", 1)),
        "noise-max": (("case", 2), ("p", 3), ("snr", 1)),
        "transfer-none": (("case", 2), ("p", 2)),
        "transfer-max": (("case", 2), ("p", 2)),
        "ood-synthetic-none/optimizers": (("optimizer", 3), ("p", 1)),
        "ood-synthetic-none/sigma_p": (("optimizer", 1), ("p", 3)),
        "ood-synthetic-max/sigma_p": (("optimizer", 1), ("p", 3)),
    }
    for folder, grid in folders.items():
        results = load_run(out / folder)
        assert tuple((n, len(v)) for n, v in results.axes) == grid, folder
        assert len(results.missing_seeds) == 0 and (out / folder / "arrays.npz").exists()
        assert all(np.isfinite(v).all() for v in results.data.values()), folder
    assert not (out / "ood-synthetic-max" / "optimizers").exists()  # Σ^p alone is normalised
    assert load_run(out / "noise-max").config.normalize == "max"
    assert load_run(out / "noise-none").config.normalize is None
    for arm in ("optimizers", "sigma_p"):
        assert f"ood report: {arm}" in (out / "ood-synthetic-none" / "report.md").read_text()


def test_main_dispatches_reproduce(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(reproduce_module, "reproduce_command", calls.append)
    argv = ["reproduce", "--quick", "--seeds", "2", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    (args,) = calls
    assert (args.quick, args.seeds, args.out, args.normalize) == (True, 2, str(tmp_path), "max")
