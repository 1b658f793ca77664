"""Fault injection: a run folder never mixes runs and never loses written results (issue 12).

Each test breaks a run as a careful user would (kill -9, a deleted or corrupted file, two
writers, a full disk, a read-only folder, leftovers of another chunk size) and checks what
happens: refused with a message naming the cause, repaired, or resumed bitwise.
"""

import dataclasses
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import shared

from jaxprecond.checks import FolderError, SettingError
from jaxprecond.cli import main
from jaxprecond.engine import folder as folder_module
from jaxprecond.engine import store
from jaxprecond.engine.experiment import grid_axes
from jaxprecond.engine.folder import ARRAYS, CHUNKS, MANIFEST, RunFolderWarning
from jaxprecond.experiments.noise import NOISE, NoiseConfig
from jaxprecond.report import load_run, save_reports, write_reports

TINY = NoiseConfig(
    cases=("high",), powers=(1.0,), snrs=(1.0,), seeds=4, chunk_size=2, steps=20, log_every=10,
    dh=8, n=300, n_train=50,
)  # fmt: skip
COMMAND = ["noise", "--cases", "high", "--p", "1", "--snr", "1", "--seeds", "4", "--steps", "20"]
COMMAND += ["--log-every", "10", "--dh", "8", "--n", "300", "--n-train", "50", "--no-progress"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of TINY, and its folder (copied by the tests that break it)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    return NOISE.sweep(TINY, out=out, progress=False), out


def same(results, reference):
    np.testing.assert_array_equal(results.seeds, reference.seeds)
    for name, values in reference.data.items():
        assert np.all(np.isfinite(values)), name
        np.testing.assert_array_equal(results.data[name], values, err_msg=name)


def copy_of(reference, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(reference[1], out)
    return out


def files(out: Path) -> dict:
    return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_kill_9_mid_run_then_resume_is_bitwise(tmp_path):
    """A process killed between chunks loses only its unfinished chunk; resumed, every seed
    equals an uninterrupted run's (here 8 seeds in chunks of 1, each chunk a few steps)."""
    config = dataclasses.replace(
        TINY, seeds=8, chunk_size=1, steps=2000, log_every=1000, dh=64, n=1000, n_train=200
    )
    out = tmp_path / "run"
    code = (
        "from jaxprecond.experiments.noise import NOISE, NoiseConfig\n"
        f"NOISE.sweep(NoiseConfig(**{dataclasses.asdict(config)!r}), out={str(out)!r}, "
        "progress=False)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 240
    while not list((out / CHUNKS).glob("seeds-*.npz")):
        assert process.poll() is None and time.monotonic() < deadline, "no chunk was written"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = len(list((out / CHUNKS).glob("seeds-*.npz")))
    assert 1 <= written < 8, f"{written} of 8 chunks at the kill: nothing was interrupted"
    resumed = NOISE.sweep(config, out=out, progress=False)
    same(resumed, NOISE.sweep(config, progress=False))
    assert "all 8 seeds finished" in (out / "report.md").read_text()


def test_deleted_manifest_other_settings_refused_same_settings_rebuilt(reference, tmp_path):
    out = copy_of(reference, tmp_path)
    (out / MANIFEST).unlink()
    (out / ARRAYS).unlink()
    before = files(out)
    other = dataclasses.replace(TINY, learning_rate=0.05)
    with pytest.raises(SettingError, match=r"differs in: config\.learning_rate"):
        NOISE.sweep(other, out=out, progress=False)
    assert files(out) == before  # nothing written, nothing deleted
    with pytest.warns(RunFolderWarning, match="rebuilt from the run's chunks"):
        again = NOISE.sweep(TINY, out=out, progress=False)
    same(again, reference[0])
    assert (out / MANIFEST).exists()


def test_leftover_chunks_of_another_chunk_size_are_refused(reference, tmp_path):
    """Refused in one message, with no warning of a manifest "rebuilt" that never was."""
    out = copy_of(reference, tmp_path)
    (out / MANIFEST).unlink()
    (out / ARRAYS).unlink()
    before = files(out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SettingError, match="chunk_size=2 .*config.chunk_size"):
            NOISE.sweep(dataclasses.replace(TINY, chunk_size=4), out=out, progress=False)
    assert [str(w.message) for w in caught if w.category is RunFolderWarning] == []
    assert files(out) == before


def test_a_chunk_of_another_run_is_refused_naming_what_differs(reference, tmp_path):
    out = copy_of(reference, tmp_path)
    other = NOISE.sweep(
        dataclasses.replace(TINY, seeds=2, init_scale=0.01), out=tmp_path / "other", progress=False
    )
    assert other.config.seeds == 2
    stranger = out / CHUNKS / "seeds-00000000-00000001.npz"
    shutil.copy(tmp_path / "other" / CHUNKS / "seeds-00000000-00000002.npz", stranger)
    message = f"{stranger} was written by a run with other settings (differs in: "
    with pytest.raises(SettingError, match="config.seeds, config.init_scale") as error:
        NOISE.sweep(TINY, out=out, progress=False)
    assert str(error.value).startswith(message)
    with pytest.raises(SettingError, match="config.seeds, config.init_scale"):
        load_run(out)  # never merged into a report either
    assert stranger.exists()  # refused, never deleted


def test_overlapping_chunks_are_refused(reference, tmp_path):
    out = copy_of(reference, tmp_path)
    first = out / CHUNKS / "seeds-00000000-00000002.npz"
    shutil.copy(first, out / CHUNKS / "seeds-00000000-00000001.npz")  # the same seeds again
    with pytest.raises(SettingError, match=r"chunks overlap \(seeds \[0, 1\] twice\)"):
        load_run(out)


def test_two_writers_with_other_settings_one_is_refused(tmp_path):
    """Two processes started at once into one folder with other learning rates: one runs,
    the other is refused (exit 2), and every chunk in the folder is the winner's."""
    out = tmp_path / "run"
    env = dict(os.environ, JAXPRECOND_HOST_DEVICES="1")
    argv = [sys.executable, "-m", "jaxprecond.cli", *COMMAND, "--out", str(out)]
    processes = [
        subprocess.Popen(argv + ["--lr", lr], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for lr in ("0.01", "0.02")
    ]  # fmt: skip
    results = [(p.wait(timeout=240), p.stderr.read()) for p in processes]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "other settings (differs in: config.learning_rate)" in refused
    winner = load_run(out)
    assert len(winner.seeds) == 4 and np.isfinite(winner.data["test_mse"]).all()


def test_the_manifest_is_created_exclusively(tmp_path):
    """The race itself: a manifest already there is never replaced by another run's."""
    out = tmp_path / "run"
    config, axes = grid_axes(NOISE, TINY)
    mine = folder_module.record(NOISE, config, axes, 2)
    theirs = folder_module.record(NOISE, dataclasses.replace(config, learning_rate=0.5), axes, 2)
    folder_module.create(out, theirs, config)
    folder_module._create_exclusively(out / MANIFEST, "not json")  # loses: the file is there
    assert folder_module.read_manifest(out)["config"]["learning_rate"] == 0.5
    with pytest.raises(SettingError, match=r"differs in: config\.learning_rate"):
        folder_module.create(out, mine, config)


def test_a_truncated_chunk_is_named_moved_aside_and_recomputed(reference, tmp_path):
    out = copy_of(reference, tmp_path)
    chunk = out / CHUNKS / "seeds-00000002-00000004.npz"
    chunk.write_bytes(chunk.read_bytes()[:300])
    with pytest.warns(RunFolderWarning, match=f"skipping {chunk}: corrupt or truncated"):
        partial = load_run(out)  # a report sees the other chunk only
    assert partial.seeds.tolist() == [0, 1]
    with pytest.warns(RunFolderWarning, match=f"{chunk} is corrupt or truncated: moved to"):
        again = NOISE.sweep(TINY, out=out, progress=False)
    same(again, reference[0])
    aside = list((out / CHUNKS).glob("seeds-00000002-00000004.npz.corrupt-*"))
    assert len(aside) == 1 and aside[0].stat().st_size == 300  # moved, not deleted


def test_a_truncated_chunk_is_named_once_by_report(reference, tmp_path, capsys):
    """``jaxprecond report`` loads the folder twice (the report, then its results): the
    skipped chunk is named once."""
    out = copy_of(reference, tmp_path)
    chunk = out / CHUNKS / "seeds-00000002-00000004.npz"
    chunk.write_bytes(chunk.read_bytes()[:300])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["report", str(out)]) == 0
    named = [str(w.message) for w in caught if w.category is RunFolderWarning]
    assert named == [f"skipping {chunk}: corrupt or truncated"]
    assert "2 of 4 seeds finished (partial run)" in capsys.readouterr().out


def test_the_command_names_a_truncated_chunk_in_one_line(reference, tmp_path):
    out = copy_of(reference, tmp_path)
    chunk = out / CHUNKS / "seeds-00000002-00000004.npz"
    chunk.write_bytes(chunk.read_bytes()[:300])
    env = dict(os.environ, JAXPRECOND_HOST_DEVICES="1")
    argv = [sys.executable, "-m", "jaxprecond.cli", "report", str(out), "--no-compile-cache"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1 and f"{chunk}: corrupt or truncated" in done.stderr


def test_a_full_disk_leaves_nothing_partial(tmp_path, monkeypatch, capsys):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.np, "savez", full)
    out = tmp_path / "run"
    assert main([*COMMAND, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err
    assert f"cannot write {out / CHUNKS}" in err
    assert not list((out / CHUNKS).iterdir())  # no chunk, no temporary file


def test_a_read_only_folder_loads_and_reports(reference, tmp_path, monkeypatch, capsys):
    out = copy_of(reference, tmp_path)
    before = files(out)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store.tempfile, "mkstemp", read_only)  # every write starts there
    same(load_run(out), reference[0])
    message = f"the report is not saved: cannot write {out / 'report.md'}: Read-only file system"
    with pytest.warns(RunFolderWarning, match=message):
        text, saved = save_reports(out)
    assert "all 4 seeds finished" in text and saved == []
    with pytest.warns(RunFolderWarning, match=message):
        assert write_reports(out) == text
        assert main(["report", str(out)]) == 0
    assert "| high | 1 | 1 |" in capsys.readouterr().out
    assert files(out) == before
    with pytest.raises(FolderError, match="Read-only file system"):  # running needs writing
        NOISE.sweep(dataclasses.replace(TINY, seeds=6), out=tmp_path / "new", progress=False)


def test_the_report_command_does_not_claim_a_read_only_report_is_written(
    reference, tmp_path, monkeypatch, capsys
):
    out = copy_of(reference, tmp_path)
    before = files(out)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store.tempfile, "mkstemp", read_only)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["report", str(out)]) == 0
    printed, err = capsys.readouterr()
    said = printed + err + "".join(str(w.message) for w in caught)
    assert "| high | 1 | 1 |" in printed and "not saved" in printed  # said plainly, at the end
    assert "report written to" not in printed and str(out / "report.md") in said
    assert files(out) == before


def test_a_file_where_the_chunks_folder_should_be(reference, tmp_path, capsys):
    """One line naming ``chunks`` (not the manifest), exit 2, nothing written."""
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / CHUNKS).write_text("")
    assert main([*COMMAND, "--out", str(fresh)]) == 2
    err = capsys.readouterr().err
    assert err == f"jaxprecond: error: {fresh / CHUNKS} is a file, not the run's folder of chunks\n"
    assert files(fresh) == {Path(CHUNKS): b""}
    out = copy_of(reference, tmp_path)
    shutil.rmtree(out / CHUNKS)
    (out / CHUNKS).write_text("")
    before = files(out)
    with pytest.raises(FolderError, match=f"{out / CHUNKS} is a file"):
        NOISE.sweep(TINY, out=out, progress=False)
    assert main(["report", str(out)]) == 2
    assert f"{out / CHUNKS} is a file" in capsys.readouterr().err
    assert files(out) == before


def test_out_that_is_a_file_or_empty(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("")
    assert main([*COMMAND, "--out", str(target)]) == 2
    assert f"{target} is a file, not a run folder" in capsys.readouterr().err
    assert main([*COMMAND, "--out", ""]) == 2
    assert "out must name a folder, got ''" in capsys.readouterr().err


def test_a_cell_whose_seeds_all_diverge_is_loud(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*COMMAND, "--lr", "1e30", "--seeds", "2", "--out", str(out)]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "jaxprecond: warning: noise, case=high, p=1, snr=1: 2 of 2 seeds diverged" in err
    assert "- case=high, p=1, snr=1: 2 of 2 seeds" in (out / "report.md").read_text()
    assert main(["report", str(out)]) == 3


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_files_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        out = tmp_path / "run"
        store.write_text(out / "report.md", "x")
        store.write_arrays(out / "a.npz", {"x": np.zeros(2)})
    finally:
        os.umask(old)
    for name in ("report.md", "a.npz"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_missing_shared_files_fail_under_ci(monkeypatch):
    monkeypatch.setattr(shared, "REQUIRED", True)
    with pytest.raises(pytest.fail.Exception, match="JAXPRECOND_REQUIRE_SHARED=1"):
        shared.need(False, "a fixture")
    shared.need(True, "a fixture")  # present: nothing happens


def test_the_slow_tests_have_a_script_that_runs_them():
    root = Path(__file__).parent.parent
    script = root / "benchmarks" / "slow_tests.sh"
    assert os.access(script, os.X_OK) and "-m slow" in script.read_text()
    marker = next(line for line in (root / "setup.cfg").read_text().splitlines() if "slow:" in line)
    assert "benchmarks/slow_tests.sh" in marker and "RESULTS.md" in marker


TOML = 'experiment = "noise"\nseeds = 2\n[config]\nsteps = 20\nlog_every = 10\ncases = ["high"]\n'


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "inf"], "learning_rate must be a positive number, got inf"),
        (["--weight-decay", "inf"], "weight_decay must be a non-negative number, got inf"),
        (["--p", "1", "1"], "powers repeats 1.0"),
        (["--snr", "1", "1"], "snrs repeats 1.0"),
        (["--batch-size", "80"], "batch_size=80 is larger than n_train=50"),
        (["--root-seed", str(2**63)], "root_seed must be an integer in [0, 4294967296)"),
        (["transfer", "--snr", "inf"], "snr must be a positive number, got inf"),
        (["ood", "--optimizers", "gd", "--p", "--lr-for", "adam", "0.1"], "which this run"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(argv, message, tmp_path, capsys):
    command = argv if argv[0] in ("transfer", "ood") else [*COMMAND, *argv]
    assert main([*command, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxprecond: error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[axes]\nsnr = [0.0]\n", "axes.snr: every value of snrs must be a positive number"),
        ("[axes]\nlearning_rate = [-0.01]\n", "axes.learning_rate: every value of learning_rate"),
        ("[axes]\nweight_decay = [-1.0]\n", "every value of weight_decay must be a non-negative"),
        ("[axes]\np = [1, 1]\n", "axes.p: powers repeats 1.0"),
        ("[axes]\nlearning_rate = ['0.01']\n", "must be a positive number, got '0.01'"),
        ('dh = "5"\n', "config.dh must be a positive integer, got '5'"),
        ("[axes\n", "cannot be read as TOML"),
    ],
)
def test_bad_sweep_files_name_the_file_and_the_key(text, message, tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    in_config = text.startswith("dh")
    path.write_text(TOML.replace("[config]\n", "[config]\n" + text) if in_config else TOML + text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: " in err and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_config_lists_run_as_given_and_run_settings_count(tmp_path):
    from jaxprecond.report import load_sweep_file

    path = tmp_path / "sweep.toml"
    path.write_text(TOML + "powers = [-1, 0, 1]\nchunk_size = 1\n")
    _, config, axes, _ = load_sweep_file(path)
    assert config.powers == (-1.0, 0.0, 1.0) and config.chunk_size == 1 and config.seeds == 2
    assert [len(a.values) for a in grid_axes(NOISE, config, axes)[1]] == [1, 3, 3]  # case, p, snr


def test_a_folder_for_a_file_and_a_broken_manifest_are_one_line(reference, tmp_path, capsys):
    assert main(["sweep", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert f"{tmp_path}: cannot be read as TOML" in capsys.readouterr().err
    out = copy_of(reference, tmp_path)
    (out / MANIFEST).write_text("{")
    assert main(["report", str(out)]) == 2
    assert f"{out / MANIFEST} cannot be read" in capsys.readouterr().err


def test_a_folder_where_the_manifest_should_be(tmp_path, capsys):
    (tmp_path / "run" / MANIFEST).mkdir(parents=True)
    assert main([*COMMAND, "--out", str(tmp_path / "run")]) == 2
    assert f"{tmp_path / 'run' / MANIFEST} is a folder" in capsys.readouterr().err
