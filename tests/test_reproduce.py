"""``jaxprecond reproduce`` end to end on a tiny plan (slow: a dozen compiled programs)."""

import dataclasses

import pytest

from jaxprecond import reproduce as reproduce_module
from jaxprecond.cli import build_parser, main
from jaxprecond.report import load_run

PLAN = reproduce_module.plan  # the real one (the test replaces the module's)


def tiny_plan(quick, *, seeds=None):
    plan = PLAN(True)
    small = dict(steps=40, log_every=20, dh=8, n=300, n_train=50, seeds=3)
    noise = dict(powers=(-2.0, -1.0, 0.0), snrs=(1.0, 4.0), **small)
    return {
        "noise": dataclasses.replace(plan["noise"], **noise),
        "equalised": dataclasses.replace(plan["equalised"], **noise),
        "adahessian": dataclasses.replace(plan["adahessian"], powers=(-1.0, 1.0), **small),
        "tuning": dataclasses.replace(
            plan["tuning"], powers=(-2.0, -1.0, 0.0), snrs=(1.0,), **small
        ),
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
    monkeypatch.setattr(reproduce_module, "QUICK_RATES", (0.01, 0.1))
    out = tmp_path / "run"
    argv = ["reproduce", "--quick", "--data-dir", str(tmp_path / "nothing"), "--out", str(out)]
    claims = reproduce_module.reproduce_command(build_parser().parse_args([*argv, "--no-progress"]))
    text = (out / "claims.md").read_text()
    assert all(c.verdict in ("holds", "fails", "inconclusive") for c in claims)
    # per noise way: bias 2 cases × 2 SNRs, gaps 2 + 2, floor 1, neutrality 2 + 2
    per_way = 4 + 4 + 1 + 4
    expected = (
        2 * per_way  # noise, as is and normalised
        + 4  # neutrality with Case Low's teacher × 10
        + 2 * 2  # AdaHessian, both probes: 2 cases × 1 SNR
        + 2 + 3  # tuned at 1 SNR: bias, neutrality
        + 2 * 5  # transfer per pair and average, both ways
        + 2 + 2  # synthetic OOD Σ^p as is and normalised
        + 2  # the ranking flip: adam against gd, on both test sets
    )  # fmt: skip
    assert len(claims) == expected, [c.claim for c in claims]
    assert (
        text.count("| Case High: final test MSE") == 2 + 2 + 2 + 1
    )  # as is, normalised, AdaHessian, tuned
    assert text.count("rademacher probe") == 2 and text.count("minus_ones probe") == 2
    assert "Case Low's teacher × 10" in text and "lr tuned per (case, p)" in text
    assert "mnist OOD run was skipped" in text
    for claim in claims:  # every claim has its figure, and it was drawn
        assert (out / claim.figure).stat().st_size > 1000, claim.figure
        assert f"]({claim.figure})" in text
    # every run is a finished run folder, with the plan's grid
    folders = {
        "noise-none": (("case", 2), ("p", 3), ("snr", 2)),
        "noise-whitened": (("case", 2), ("p", 3), ("snr", 2)),
        "noise-equalised": (("case", 1), ("p", 3), ("snr", 2)),
        "noise-adahessian-minus_ones": (("case", 2), ("p", 2), ("snr", 1)),
        "noise-tuned/evaluation": (("case", 2), ("p", 3), ("snr", 1), ("learning_rate", 2)),
        "transfer-none": (("case", 2), ("p", 2)),
        "transfer-whitened": (("case", 2), ("p", 2)),
        "ood-synthetic-none/optimizers": (("optimizer", 3), ("p", 1)),
        "ood-synthetic-none/sigma_p": (("optimizer", 1), ("p", 3)),
        "ood-synthetic-whitened/sigma_p": (("optimizer", 1), ("p", 3)),
    }
    for folder, grid in folders.items():
        results = load_run(out / folder)
        assert tuple((n, len(v)) for n, v in results.axes) == grid, folder
        assert len(results.missing_seeds) == 0 and (out / folder / "arrays.npz").exists()
    assert not (out / "ood-synthetic-whitened" / "optimizers").exists()  # Σ^p alone
    assert load_run(out / "noise-whitened").config.normalize == "whitened"
    assert load_run(out / "noise-equalised").config.teacher_scale == 10.0
    assert load_run(out / "noise-tuned/tuning").config.root_seed == 1  # disjoint from 0


def test_main_dispatches_reproduce(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(reproduce_module, "reproduce_command", calls.append)
    argv = ["reproduce", "--quick", "--seeds", "2", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    (args,) = calls
    assert (args.quick, args.seeds, args.out) == (True, 2, str(tmp_path))
    assert args.normalize == "whitened"
