"""The console script: a thin layer over the experiments' definitions and the sweep engine."""

import argparse
import dataclasses
import json

import numpy as np
import pytest

from jaxprecond import cli
from jaxprecond.checks import MissingFile, SettingError
from jaxprecond.cli import build_parser, main
from jaxprecond.engine.config import checked_fields, preset_with
from jaxprecond.experiments import find
from jaxprecond.experiments.noise import NOISE, PRESETS
from jaxprecond.report import load_run

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
    assert "| high | 1 | 1 |" in printed and "| high | 0 | 1 |" in printed
    results = load_run(out)
    assert results.dims == ("case", "p", "snr", "seed", "step")
    assert results.data["test_mse"].shape == (1, 2, 1, 2, 2)
    assert np.all(np.isfinite(results.data["test_mse"]))
    np.testing.assert_array_equal(results.steps, [9, 19])
    manifest = json.loads((out / "manifest.json").read_text())
    config = manifest["config"]
    assert config["powers"] == [0.0, 1.0] and config["dh"] == PRESETS["cpu"].dh
    assert config["snrs"] == [1.0] and config["cases"] == ["high"] and config["seeds"] == 2
    assert "jax" in json.loads((out / "environment-0.json").read_text())["versions"]
    assert "jax" in manifest["environment"]["versions"]
    for name in ("arrays.npz", "report.md", "figure.png"):
        assert (out / name).stat().st_size > 0, name
    # The same command again resumes: every chunk is there, nothing is recomputed.
    chunks = sorted((out / "chunks").iterdir())
    assert chunks
    stamps = [p.stat().st_mtime_ns for p in chunks]
    assert main(TINY + ["--out", str(out)]) == 0
    assert [p.stat().st_mtime_ns for p in sorted((out / "chunks").iterdir())] == stamps
    again = load_run(out)  # and the values read back are the same, finite
    for metric, values in results.data.items():
        assert np.all(np.isfinite(again.data[metric]))
        np.testing.assert_array_equal(again.data[metric], values)
    capsys.readouterr()
    # Other settings into the same folder are refused with a clear error.
    assert main(TINY + ["--out", str(out), "--steps", "30"]) == 2
    err = capsys.readouterr().err
    assert "holds a run with other settings (differs in: config.steps)" in err
    assert err.startswith("jaxprecond: error: ") and err.count("\n") == 1


def test_bad_value_is_a_clear_error(capsys):
    assert main(["noise", "--seeds", "-3", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "jaxprecond: error: seeds must be a positive integer, got -3\n"
    assert captured.out == ""  # refused before anything runs or is printed


def test_presets():
    paper = preset_with(NOISE.presets, build_parser().parse_args(["noise", "--preset", "paper"]))
    assert paper == PRESETS["paper"]
    assert (paper.steps, paper.dh, paper.n, paper.n_train, paper.learning_rate) == (
        10_000,
        500,
        10_000,
        200,
        1e-2,
    )
    assert paper.powers == (-1.0, -0.5, 0.0, 0.5, 1.0)
    assert paper.snrs == (0.25, 0.5, 1.0, 2.0, 4.0)
    # an option given replaces the preset's value, the rest is the preset's
    args = build_parser().parse_args(["noise", "--preset", "paper", "--lr", "0.1", "--snr", "2"])
    tuned = preset_with(NOISE.presets, args)
    assert tuned.learning_rate == 0.1 and tuned.snrs == (2.0,)
    assert tuned == dataclasses.replace(PRESETS["paper"], learning_rate=0.1, snrs=(2.0,))


def test_sizes_precision_and_group_size_from_the_command_line(tmp_path, capsys):
    sizes = ["--dx", "4", "--dh", "8", "--n", "300", "--n-train", "50", "--weight-decay", "0"]
    out = tmp_path / "run"
    args = TINY + sizes + ["--precision", "default", "--group-size", "2", "--out", str(out)]
    assert main(args) == 0
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert (config["dx"], config["dh"], config["n"], config["n_train"]) == (4, 8, 300, 50)
    assert config["precision"] == "default" and config["weight_decay"] == 0.0
    assert config["group_size"] == 2
    results = load_run(out)
    assert results.config.group_size == 2 and results.config.dx == 4
    assert results.data["test_mse"].shape == (1, 2, 1, 2, 2)
    assert results.data["energy"].shape[-1] == 4  # one fraction per input dimension
    assert np.all(np.isfinite(results.data["test_mse"]))
    capsys.readouterr()
    assert main(TINY + ["--dx", "1"]) == 2
    assert "need k < dx, got k=1, dx=1" in capsys.readouterr().err


#: Every option string of the old commands (before the redesign): noise from cli.py and
#: options.py, transfer from transfer.py and options.py, ood from ood.py.
STUDENT_OPTIONS = [
    "--seeds",
    "--p",
    "--lr",
    "--dx",
    "--dh",
    "--precision",
    "--normalize",
    "--init",
    "--preconditioner",
    "--probe",
    "--chunk-size",
    "--group-size",
    "--rotate",
    "--root-seed",
    "--float64",
    "--out",
    "--no-progress",
]
OLD_OPTIONS = {
    "noise": [
        "-h",
        "--help",
        "--preset",
        "--steps",
        "--log-every",
        "--snr",
        "--cases",
        "--weight-decay",
        "--n",
        "--n-train",
        "--batch-size",
        *STUDENT_OPTIONS,
    ],
    "transfer": [
        "-h",
        "--help",
        "--preset",
        "--steps",
        "--log-every",
        "--pairs",
        "--snr",
        "--ridge",
        "--n",
        "--n-train",
        *STUDENT_OPTIONS,
    ],
    "ood": [
        "-h",
        "--help",
        "--preset",
        "--dataset",
        "--optimizers",
        "--p",
        "--seeds",
        "--steps",
        "--log-every",
        "--hidden",
        "--lr",
        "--lr-for",
        "--weight-decay",
        "--damping",
        "--normalize",
        "--data-dir",
        "--download",
        "--test-split-only",
        "--chunk-size",
        "--group-size",
        "--root-seed",
        "--out",
        "--no-progress",
    ],
}


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices[name]


@pytest.mark.parametrize("command", sorted(OLD_OPTIONS))
def test_commands_keep_their_old_options(command):
    parser = _subparser(command)
    actions = parser._option_string_actions
    missing = [option for option in OLD_OPTIONS[command] if option not in actions]
    assert not missing, f"{command} lost {missing}"
    # each old option still sets one of the experiment's settings (or runs the command)
    settings = checked_fields(find(command).config)
    for option in OLD_OPTIONS[command]:
        dest = actions[option].dest
        assert dest in settings or dest in {"help", "preset", "out", "no_progress"}, option


def test_main_keeps_tracebacks_of_bugs_and_reports_user_errors_in_one_line(
    monkeypatch, capsys, tmp_path
):
    def bug(args):
        raise RuntimeError("a bug, not the user's")

    monkeypatch.setattr(cli, "report_command", bug)
    with pytest.raises(RuntimeError, match="a bug, not the user's") as caught:
        main(["report", str(tmp_path)])
    assert caught.traceback[-1].name == "bug"  # the traceback reaches where it was raised

    def plain_value_error(args):
        raise ValueError("not a SettingError")

    monkeypatch.setattr(cli, "report_command", plain_value_error)
    with pytest.raises(ValueError, match="not a SettingError"):
        main(["report", str(tmp_path)])
    assert capsys.readouterr().err == ""

    for error in (SettingError("steps must be a positive integer, got 0"), MissingFile("gone")):

        def user_error(args, error=error):
            raise error

        monkeypatch.setattr(cli, "report_command", user_error)
        assert main(["report", str(tmp_path)]) == 2
        assert capsys.readouterr().err == f"jaxprecond: error: {error}\n"
