"""benchmarks/paper_noise_claims.py: the paper-size noise claims, run here at a smoke size."""

import sys
from pathlib import Path

import pytest

from jaxprecond.engine.folder import load
from jaxprecond.experiments.noise import NOISE
from jaxprecond.reproduce import POWERS

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from paper_noise_claims import main, paper_noise_claims  # noqa: E402

VERDICTS = ("holds", "fails", "inconclusive")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper-noise")
    claims, _ = paper_noise_claims(out, seeds=2, steps=100, progress=False)
    return out, claims


def test_the_sweeps_have_the_full_reproduce_settings(smoke):
    out, _ = smoke
    noise, equalised = load(out / "noise", NOISE), load(out / "equalised", NOISE)
    for results in (noise, equalised):
        config = results.config
        assert config.steps == 100 and config.seeds == 2  # the smoke overrides, nothing else
        assert (config.n, config.n_train, config.dh, config.learning_rate) == (
            10_000, 200, 500, 1e-2,
        )  # fmt: skip
        assert results.values("p") == POWERS
        assert results.values("snr") == (0.25, 0.5, 1.0, 2.0, 4.0)
        assert config.normalize is None and config.preconditioner == "covariance_power"
    assert noise.config.teacher_scale == 1.0 and noise.values("case") == ("high", "low")
    assert equalised.config.teacher_scale == 10.0 and equalised.values("case") == ("low",)


def test_two_seeds_never_make_a_directional_claim_hold(smoke):
    _, claims = smoke
    assert {c.claim for c in claims} >= {
        "Case High: final test MSE decreases with p",
        "Case Low: final test MSE increases with p",
        "Case High: the train/test gap shrinks with p",
        "Test MSE stays above the noise floor (the teacher's own test MSE)",
    }
    assert all(c.verdict in VERDICTS and "paper size" in c.setting for c in claims)
    for c in claims:
        if "sign-flip" in c.statistic:  # 2 seeds: the smallest p-value is 2/4
            assert c.seeds == 2 and c.verdict != "holds", c


def test_the_command_on_a_finished_folder_writes_every_claim_row(smoke, capsys):
    out, claims = smoke
    main(["--seeds", "2", "--steps", "100", "--out", str(out), "--no-progress"])
    text = (out / "claims.md").read_text()
    assert f"{len(claims)} rows" in text
    for c in claims:
        assert f"| {c.claim} | {c.setting} |" in text
