"""Sweeps from TOML files, reports of finished and partial runs, bootstrap intervals."""

import json
import re
import textwrap

import numpy as np
import pytest

from jaxprecond.checks import SettingError
from jaxprecond.cli import main
from jaxprecond.engine.stats import summarize_seeds
from jaxprecond.engine.store import read_arrays
from jaxprecond.report import load_run, load_sweep_file, run_sweep_file, write_reports

# The old grid: case x learning_rate at the first p and SNR of the cpu preset.
SMALL = """
experiment = "noise"
seeds = 4
chunk_size = 2
[config]
steps = 40
log_every = 20
dh = 16
n = 400
n_train = 100
powers = [-1.0]
snrs = [0.25]
[axes]
case = ["high", "low"]
learning_rate = [0.01, 0.05]
"""


def write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_toml_sweep_and_reports(tmp_path, capsys):
    path = write(tmp_path, SMALL)
    experiment, config, axes, out = load_sweep_file(path)
    assert experiment.name == "noise" and out is None
    assert axes == {"case": ["high", "low"], "learning_rate": [0.01, 0.05]}
    assert (config.seeds, config.chunk_size, config.steps, config.dh) == (4, 2, 40, 16)
    assert config.powers == (-1.0,) and config.snrs == (0.25,)
    run_dir = tmp_path / "run"
    assert main(["sweep", str(path), "--out", str(run_dir), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "all 4 seeds finished" in printed and "| low | -1 | 0.25 | 0.05 |" in printed
    assert (run_dir / "figure.png").stat().st_size > 5_000
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [name for name, _ in manifest["axes"]] == ["case", "p", "snr", "learning_rate"]
    assert set(manifest["traced"]) == {"case", "p", "snr", "learning_rate"}
    finished = load_run(run_dir)
    assert finished.data["test_mse"].shape == (2, 1, 1, 2, 4, 2)
    assert np.all(np.isfinite(finished.data["test_mse"]))
    # A partial run (one chunk lost) is reported as such, from the chunks that exist.
    lost = run_dir / "chunks" / "seeds-00000002-00000004.npz"
    kept = run_dir / "chunks" / "seeds-00000000-00000002.npz"
    lost_arrays, kept_stamp = read_arrays(lost), kept.stat().st_mtime_ns
    lost.unlink()
    text = write_reports(run_dir)
    assert "2 of 4 seeds finished (partial run)" in text
    assert (run_dir / "report.md").read_text() == text
    partial = load_run(run_dir)
    np.testing.assert_array_equal(partial.seeds, [0, 1])
    np.testing.assert_array_equal(partial.missing_seeds, [2, 3])
    np.testing.assert_array_equal(partial.data["test_mse"], finished.data["test_mse"][..., :2, :])
    assert main(["report", str(run_dir)]) == 0
    assert "2 of 4 seeds finished (partial run)" in capsys.readouterr().out
    # Running the file again completes the run, recomputing only the lost chunk.
    results = run_sweep_file(path, out=run_dir, progress=False)
    assert list(results.seeds) == [0, 1, 2, 3] and len(results.missing_seeds) == 0
    assert kept.stat().st_mtime_ns == kept_stamp
    redone = read_arrays(lost)
    for name, values in lost_arrays.items():
        np.testing.assert_array_equal(redone[name], values, err_msg=name)
    np.testing.assert_array_equal(results.data["test_mse"], finished.data["test_mse"])
    assert "all 4 seeds finished" in (run_dir / "report.md").read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'experiment = "noise"\nseeds = 2\ncolour = 1\n[axes]\np = [1.0]',
            "unknown keys ['colour']",
        ),
        (
            'experiment = "vision"\n[axes]\np = [1.0]',
            "experiment must be one of ('noise', 'transfer', 'ood', 'rotated')",
        ),
        (
            'experiment = "noise"\n[config]\nwidth = 3\n[axes]\np = [1.0]',
            "config.width is not a setting of NoiseConfig",
        ),
        (
            'experiment = "noise"\n[config]\npreset = "huge"\n[axes]\np = [1.0]',
            "config.preset must be one of ['cpu', 'paper'], got 'huge'",
        ),
        (
            'experiment = "noise"\n[axes]\ncolour = [1.0]',
            "axes.colour is not an axis of 'noise'",
        ),
        (
            'experiment = "noise"\n[axes]\nsnr = [1.0, 0.0]',
            "axes.snr: every value of snrs must be a positive number, got 0.0",
        ),
        (
            'experiment = "noise"\nseeds = 0\n[axes]\np = [1.0]',
            "config.seeds must be a positive integer, got 0",
        ),
        (
            'experiment = "noise"\nseeds = 2\n[config]\nseeds = 3\n',
            "seeds is given twice (at the top and in [config])",
        ),
    ],
)
def test_bad_sweep_files(tmp_path, text, message, capsys):
    path = write(tmp_path, text)
    with pytest.raises(SettingError, match=re.escape(message)):
        load_sweep_file(path)
    assert main(["sweep", str(path), "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxprecond: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()  # refused before anything is written


@pytest.mark.parametrize(
    "text",
    [
        'experiment = "noise"\n[config]\nsteps = 0\n',
        'experiment = "noise"\n[axes]\nlearning_rate = [0.0]\n',
        "experiment = 3\n",
        'experiment = "vision"\n',
    ],
)
def test_sweep_file_errors_name_the_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(SettingError, match=f"^{re.escape(str(path))}: "):
        load_sweep_file(path)


def test_axes_table_is_optional(tmp_path):
    """Without [axes] the grid is the experiment's own axes at the config's values."""
    path = write(tmp_path, 'experiment = "noise"\nseeds = 2\n[config]\nsnrs = [1.0]\n')
    experiment, config, axes, out = load_sweep_file(path)
    assert experiment.name == "noise" and axes == {} and out is None
    assert config.seeds == 2 and config.snrs == (1.0,)
    assert config.powers == experiment.presets["cpu"].powers


def test_report_of_a_folder_without_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"jaxprecond: error: {tmp_path} is not a run folder (manifest.json missing)\n"


def test_bootstrap_interval_agrees_with_student_t_for_normal_data():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, size=(4, 400))
    t = summarize_seeds(values)
    b = summarize_seeds(values, bootstrap=2000)
    np.testing.assert_allclose(b.ci_low, t.ci_low, atol=0.05)
    np.testing.assert_allclose(b.ci_high, t.ci_high, atol=0.05)
    # the bootstrap interval covers the mean and is reproducible
    assert np.all((b.ci_low < b.mean) & (b.mean < b.ci_high))
    again = summarize_seeds(values, bootstrap=2000)
    np.testing.assert_array_equal(again.ci_low, b.ci_low)


def test_noise_grid_report_takes_its_labels_from_the_axes(tmp_path, capsys):
    # The config has p = -1 and SNR 0.25 (the preset 5 powers and 3 SNRs); the file's axes
    # have 2 powers and 1 SNR: the figure and the table must follow the axes (this crashed
    # in plot_noise before).
    text = SMALL.split("[axes]")[0] + '[axes]\ncase = ["low"]\np = [0.0, 1.0]\nsnr = [2.0]\n'
    path = write(tmp_path, text.replace("seeds = 4", "seeds = 2"))
    run_dir = tmp_path / "run"
    assert main(["sweep", str(path), "--out", str(run_dir), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| low | 1 | 2 |" in printed and "| low | 0 | 2 |" in printed
    report = printed.split("all 2 seeds finished")[-1]
    assert "0.25" not in report and "| -1 |" not in report
    assert (run_dir / "figure.png").stat().st_size > 5_000
    results = load_run(run_dir)
    assert results.config.snrs == (2.0,) and results.config.powers == (0.0, 1.0)
    top = results.figure().axes[0]  # final test MSE against SNR, one line per p
    assert [line.get_label() for line in top.lines] == ["p = 0", "p = 1"]
    for line in top.lines:
        np.testing.assert_array_equal(line.get_xdata(), [2.0])
        assert np.all(np.isfinite(line.get_ydata()))
