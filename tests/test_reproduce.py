"""``jaxprecond reproduce`` end to end on a tiny plan (slow: a dozen compiled programs)."""

import dataclasses

import pytest

from jaxprecond import reproduce as reproduce_module
from jaxprecond.cli import main


def tiny_plan(quick, *, seeds=None):
    plan = reproduce_module.plan(True)
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
    assert main([*argv, "--no-progress"]) == 0
    text = (out / "claims.md").read_text()
    # noise: 2 cases × 1 SNR + neutrality, both ways; transfer both ways; synthetic OOD: the
    # two Σ^p claims both ways and the ranking flip once
    assert text.count("| Case High:") == 2 and text.count("| Case Low:") == 2
    assert text.count("spectrum-neutral") == 2 and text.count("best average transfer") == 2
    assert text.count("ranking flips") == 1 and text.count("reliance on the") == 4
    assert "mnist OOD run was skipped" in text
    for folder in ("noise-none", "noise-max", "transfer-none", "ood-synthetic-max"):
        assert (out / folder).is_dir()
