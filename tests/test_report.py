"""Sweeps from TOML files, reports of finished and partial runs, bootstrap intervals."""

import textwrap

import numpy as np
import pytest

from jaxprecond.cli import main
from jaxprecond.report import load_sweep_file, run_sweep_file, write_report
from jaxprecond.engine.stats import summarize_seeds

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
    spec, experiment, out = load_sweep_file(path)
    assert spec.names == ("case", "learning_rate") and spec.seeds == 4 and out is None
    assert experiment.config["steps"] == 40 and experiment.config["dh"] == 16
    run_dir = tmp_path / "run"
    assert main(["sweep", str(path), "--out", str(run_dir), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "all 4 seeds finished" in printed and "| low | 0.05 |" in printed
    assert (run_dir / "report.png").stat().st_size > 5_000
    # A partial run (one chunk lost) is reported as such, from the chunks that exist.
    (run_dir / "chunks" / "seeds-00000002-00000004.npz").unlink()
    text = write_report(run_dir)
    assert "2 of 4 seeds finished (partial run)" in text
    assert main(["report", str(run_dir)]) == 0
    # Running the file again completes the run, recomputing only the lost chunk.
    results = run_sweep_file(path, out=run_dir, progress=False)
    assert list(results.seeds) == [0, 1, 2, 3] and len(results.missing_seeds) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('experiment = "noise"\nseeds = 2\ncolour = 1\n[axes]\np = [1.0]', "unknown keys"),
        ('experiment = "vision"\n[axes]\np = [1.0]', "experiment must be one of"),
        ('experiment = "noise"\n[config]\nwidth = 3\n[axes]\np = [1.0]', "unknown config"),
        ('experiment = "noise"\n[config]\npreset = "huge"\n[axes]\np = [1.0]', "preset must be"),
        ('experiment = "noise"\nseeds = 2\n', "axes] table is missing"),
        ('experiment = "noise"\nseeds = 0\n[axes]\np = [1.0]', "seeds must be a positive"),
    ],
)
def test_bad_sweep_files(tmp_path, text, message, capsys):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message):
        load_sweep_file(path)
    assert main(["sweep", str(path), "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert message.split()[0] in capsys.readouterr().err


def test_report_of_a_folder_without_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a sweep run folder" in capsys.readouterr().err


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
    # The preset has 3 SNRs and 5 powers; the file's axes have 1 and 2: the figure and table
    # must follow the axes (this crashed in plot_noise before).
    text = SMALL.split("[axes]")[0] + '[axes]\ncase = ["low"]\np = [0.0, 1.0]\nsnr = [2.0]\n'
    path = write(tmp_path, text.replace("seeds = 4", "seeds = 2"))
    run_dir = tmp_path / "run"
    assert main(["sweep", str(path), "--out", str(run_dir), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| low | 1 | 2 |" in printed and "| low | 0 | 2 |" in printed
    assert "0.25" not in printed.split("all 2 seeds finished")[-1]
    assert (run_dir / "report.png").stat().st_size > 5_000
