"""The console script is a thin layer over run_noise."""

import json

from jaxprecond.cli import build_parser, main, noise_config
from jaxprecond.experiments.noise import PRESETS, NoiseResults

TINY = [
    "noise",
    "--seeds",
    "2",
    "--steps",
    "20",
    "--log-every",
    "10",
    "--p",
    "0",
    "1",
    "--snr",
    "1",
    "--cases",
    "high",
    "--no-progress",
]


def test_noise_command_writes_a_loadable_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(TINY + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| high | 1 | 1 |" in printed
    results = NoiseResults.load(out)
    assert results.test_mse.shape == (1, 2, 1, 2, 2)
    config = json.loads((out / "config.json").read_text())
    assert config["powers"] == [0.0, 1.0] and config["dh"] == PRESETS["cpu"].dh
    assert "jax" in json.loads((out / "environment.json").read_text())["versions"]
    # The same command again resumes: every chunk is there, nothing is recomputed.
    chunks = sorted((out / "chunks").iterdir())
    stamps = [p.stat().st_mtime_ns for p in chunks]
    assert main(TINY + ["--out", str(out)]) == 0
    assert [p.stat().st_mtime_ns for p in sorted((out / "chunks").iterdir())] == stamps
    capsys.readouterr()
    # Other settings into the same folder are refused with a clear error.
    assert main(TINY + ["--out", str(out), "--steps", "30"]) == 2
    assert "different configuration (differs in: config)" in capsys.readouterr().err


def test_bad_value_is_a_clear_error(capsys):
    assert main(["noise", "--seeds", "-3", "--no-progress"]) == 2
    assert "seeds must be a positive integer, got -3" in capsys.readouterr().err


def test_presets():
    paper = noise_config(build_parser().parse_args(["noise", "--preset", "paper"]))
    assert (paper.steps, paper.dh, paper.n, paper.n_train, paper.learning_rate) == (
        10_000,
        500,
        10_000,
        200,
        1e-2,
    )
    assert paper.powers == (-1.0, -0.5, 0.0, 0.5, 1.0)
    assert paper.snrs == (0.25, 0.5, 1.0, 2.0, 4.0)


def test_sizes_precision_and_group_size_from_the_command_line(tmp_path, capsys):
    sizes = ["--dx", "4", "--dh", "8", "--n", "300", "--n-train", "50", "--weight-decay", "0"]
    out = tmp_path / "run"
    args = TINY + sizes + ["--precision", "default", "--group-size", "2", "--out", str(out)]
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["dx"], config["dh"], config["n"], config["n_train"]) == (4, 8, 300, 50)
    assert config["precision"] == "default" and config["weight_decay"] == 0.0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["group_size"] == 2
    assert NoiseResults.load(out).test_mse.shape == (1, 2, 1, 2, 2)
    capsys.readouterr()
    assert main(TINY + ["--dx", "1"]) == 2
    assert "dx" in capsys.readouterr().err
