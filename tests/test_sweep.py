"""The sweep engine: resumable run folders, devices, processes, static axes, labels, bad input."""

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sweep_case import TINY_AXES, run_tiny, tiny_config

from jaxprecond.checks import SettingError
from jaxprecond.engine import sweep as sweep_module
from jaxprecond.engine.config import NUMBER, POSITIVE_INT, Config, setting
from jaxprecond.engine.experiment import Experiment, grid_axes
from jaxprecond.engine.folder import load
from jaxprecond.engine.store import atomic_path, read_arrays
from jaxprecond.engine.sweep import axis_arrays, choose_chunk_size, program, static_points
from jaxprecond.experiments.noise import NOISE, NoiseConfig
from jaxprecond.report import write_reports

HERE = Path(__file__).parent
DIMS = ("case", "p", "snr", "learning_rate", "seed", "step")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted single-process, single-device run, 2 seeds per chunk."""
    out = tmp_path_factory.mktemp("reference") / "run"
    return run_tiny(2, out=out, devices=jax.local_devices()[:1]), out


def assert_same(a, b):
    np.testing.assert_array_equal(a.seeds, b.seeds)
    np.testing.assert_array_equal(a.steps, b.steps)
    assert a.data.keys() == b.data.keys()
    for key in a.data:
        np.testing.assert_array_equal(a.data[key], b.data[key], err_msg=key)


def tiny_program(config, axes=TINY_AXES):
    """The one compiled program of a sweep without static axes, and its axis values."""
    config, grid = grid_axes(NOISE, config, axes)
    [(own, at_point)] = static_points(config, grid)
    return program(NOISE, at_point, grid, own, config.group_size), axis_arrays(grid)


@dataclasses.dataclass(frozen=True)
class Table(Config):
    """A toy: each run draws one row of an experiment-wide table and scales it by p."""

    powers: tuple[float, ...] = setting((1.0,), "scales", NUMBER.many(), traced=True)
    rows: int = setting(50, "rows of the table", POSITIVE_INT)


def table_data(config):
    return jnp.arange(config.rows, dtype=jnp.float32) * 10


def pick_row(key, point, config, data):
    row = jax.random.randint(key, (), 0, data.shape[0])
    return {"picked": (data[row] * point["p"])[None]}


PICK = Experiment(
    "pick", Table, {"one": Table()}, run=pick_row, grid={"p": "powers"},
    steps=lambda config: (0,), data=table_data,
)  # fmt: skip


def test_layout_and_labels(reference):
    r, out = reference
    assert r.dims == DIMS
    assert r.data["test_mse"].shape == (2, 2, 1, 2, 4, 2)
    assert r.data["energy"].shape == (2, 2, 1, 2, 4, 2, 10)
    assert all(np.isfinite(v).all() for v in r.data.values())
    # energy is a distribution over Σ's eigenvectors
    np.testing.assert_allclose(r.data["energy"].sum(-1), 1.0, rtol=1e-5)
    assert r.values("learning_rate") == (0.01, 0.05) and r.values("case") == ("high", "low")
    np.testing.assert_array_equal(r.steps, [9, 19])
    assert r.total_seeds == 4 and not len(r.missing_seeds)
    ds = r.to_xarray()
    assert ds["test_mse"].dims == DIMS
    assert ds["energy"].dims == DIMS + ("energy_component",)
    assert list(ds.coords["case"].values) == ["high", "low"]
    np.testing.assert_array_equal(ds.coords["step"], [9, 19])
    assert json.loads(ds.attrs["config"])["dh"] == 8
    value = ds["test_mse"].sel(case="low", p=1.0, snr=1.0, learning_rate=0.05, seed=3)
    assert float(value.isel(step=-1)) == r.data["test_mse"][1, 1, 0, 1, 3, -1]
    df = r.to_dataframe()
    assert len(df) == 2 * 2 * 2 * 4 and "energy" not in df
    row = df[(df.case == "low") & (df.p == 1.0) & (df.learning_rate == 0.05) & (df.seed == 3)]
    assert float(row.test_mse.iloc[0]) == r.data["test_mse"][1, 1, 0, 1, 3, -1]
    # The run folder: manifest, two chunks, the merged arrays and the report.
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["experiment"] == "noise" and manifest["chunk_size"] == 2
    assert manifest["config"]["seeds"] == 4 and manifest["config"]["steps"] == 20
    assert manifest["axes"][-1] == ["learning_rate", [0.01, 0.05]]
    assert manifest["traced"] == ["case", "p", "snr", "learning_rate"]
    chunks = sorted(p.name for p in (out / "chunks").iterdir())
    assert chunks == ["seeds-00000000-00000002.npz", "seeds-00000002-00000004.npz"]
    arrays = read_arrays(out / "arrays.npz")
    np.testing.assert_array_equal(arrays["test_mse"], r.data["test_mse"])
    assert "all 4 seeds finished" in (out / "report.md").read_text()
    assert (out / "figure.png").stat().st_size > 10_000
    assert_same(load(out, NOISE), r)


def test_learning_rate_axis_changes_the_run(reference):
    mse = reference[0].final("test_mse")  # (case, p, snr, lr, seed)
    assert not np.allclose(mse[:, :, :, 0], mse[:, :, :, 1])


def test_axis_values_are_arguments_not_constants(reference):
    """Other values of the traced axes reuse the one compiled program: reversing every axis's
    values reverses the results along every axis."""
    run, values = tiny_program(tiny_config(2))
    seeds = jnp.arange(2, dtype=jnp.uint32)
    first = run(seeds, values, None)
    reversed_values = {name: v[::-1] for name, v in values.items()}
    second = run(seeds, reversed_values, None)
    assert run._cache_size() == 1
    # The program is the sweep's: (seed, case, p, snr, lr) against the reference's seeds 0, 1.
    expected = np.moveaxis(reference[0].data["test_mse"][..., :2, :], 4, 0)
    np.testing.assert_array_equal(first["test_mse"], expected)
    flipped = np.asarray(first["test_mse"])[:, ::-1, ::-1, ::-1, ::-1]
    assert not np.allclose(second["test_mse"], first["test_mse"])
    np.testing.assert_allclose(second["test_mse"], flipped, rtol=1e-6)


def test_sweeps_differing_in_values_only_share_one_program():
    """The program is one group of runs whose values are all arguments: other powers, cases,
    SNRs, seeds, a teacher scale, a learning-rate axis or another root seed lower to the same
    program (so the persistent cache compiles it once); a static setting does not."""

    def text(config, axes=None):
        config, grid = grid_axes(NOISE, config, axes)
        [(own, at_point)] = static_points(config, grid)
        return program(NOISE, at_point, grid, own, 4).lower().as_text()

    base = tiny_config(2)
    same = text(base)
    other_values = dataclasses.replace(
        base, powers=(-3.0, -1.0, 0.5), cases=("low",), snrs=(0.25, 1.0, 4.0), seeds=7,
        teacher_scale=10.0, root_seed=5,
    )  # fmt: skip
    assert text(other_values) == same
    assert text(base, {"learning_rate": [0.01, 0.1, 1.0]}) == same
    assert text(dataclasses.replace(base, dh=base.dh + 1)) != same


def interrupted_copy(reference, folder):
    """The reference run folder as an interrupted run left it: only the first chunk written."""
    shutil.copytree(reference[1], folder)
    (folder / "chunks" / "seeds-00000002-00000004.npz").unlink()
    for name in ("arrays.npz", "report.md", "figure.png"):
        (folder / name).unlink()
    return folder


def test_resume_recomputes_nothing_written_and_matches(reference, tmp_path, monkeypatch):
    out = interrupted_copy(reference, tmp_path / "run")
    partial = load(out, NOISE)
    assert list(partial.seeds) == [0, 1] and list(partial.missing_seeds) == [2, 3]
    assert "2 of 4 seeds finished (partial run)" in write_reports(out)
    first = out / "chunks" / "seeds-00000000-00000002.npz"
    written, stamp = read_arrays(first), first.stat().st_mtime_ns
    for key, values in partial.data.items():
        assert np.isfinite(values).all(), key
        np.testing.assert_array_equal(values, written[key], key)

    computed = []
    run_chunk = sweep_module.run_chunk

    def counting(compiled, devices, seed_indices, *args):
        computed.extend(np.asarray(seed_indices).tolist())
        return run_chunk(compiled, devices, seed_indices, *args)

    monkeypatch.setattr(sweep_module, "run_chunk", counting)
    resumed = run_tiny(2, out=out, devices=jax.local_devices()[:1])
    assert computed == [2, 3]  # only the missing chunk
    assert first.stat().st_mtime_ns == stamp
    again = read_arrays(first)
    assert again.keys() == written.keys()
    for key in written:
        np.testing.assert_array_equal(again[key], written[key], err_msg=key)
    for key in partial.data:
        np.testing.assert_array_equal(resumed.data[key][:, :, :, :, :2], written[key], key)
    assert all(np.isfinite(v).all() for v in resumed.data.values())
    assert_same(resumed, reference[0])
    assert_same(load(out, NOISE), reference[0])
    np.testing.assert_array_equal(
        read_arrays(out / "arrays.npz")["test_mse"], reference[0].data["test_mse"]
    )
    assert "all 4 seeds finished" in (out / "report.md").read_text()
    # Finished: started again, it computes nothing at all.
    computed.clear()
    assert_same(run_tiny(2, out=out), reference[0])
    assert computed == []


def test_a_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "chunk.npz"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("changes", "axes", "differs"),
    [
        ({"seeds": 2}, TINY_AXES, "config.seeds"),
        ({"steps": 30}, TINY_AXES, "config.steps"),
        ({"snrs": (2.0,)}, TINY_AXES, "axes, config.snrs"),
        ({}, {"learning_rate": [0.01]}, "axes"),
    ],
)
def test_other_settings_in_folder_are_refused_before_compiling(
    reference, tmp_path, monkeypatch, changes, axes, differs
):
    out = interrupted_copy(reference, tmp_path / "run")
    manifest = (out / "manifest.json").read_text()

    def no_program(*args, **kwargs):
        raise AssertionError("compiled before checking the folder")

    monkeypatch.setattr(sweep_module, "program", no_program)
    config = dataclasses.replace(tiny_config(2), **changes)
    message = f"holds a run with other settings (differs in: {differs}); use another folder"
    with pytest.raises(SettingError, match=re.escape(message)):
        sweep_module.run(NOISE, config, axes=axes, out=out, progress=False)
    assert len(list((out / "chunks").iterdir())) == 1  # nothing written was lost
    assert (out / "manifest.json").read_text() == manifest


def test_another_chunk_size_is_refused_on_resume(reference, tmp_path, monkeypatch):
    out = interrupted_copy(reference, tmp_path / "run")
    monkeypatch.setattr(sweep_module, "run_chunk", None)  # must fail before running
    with pytest.raises(SettingError, match=re.escape("written with chunk_size=2")):
        run_tiny(1, out=out)
    assert len(list((out / "chunks").iterdir())) == 1


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({"temperature": [1.0]}, "axes.temperature is not an axis of 'noise'; axes: case, p, snr"),
        ({"seeds": [2, 4]}, "axes.seeds is not an axis of 'noise'"),
        ({"case": ["middle"]}, "axes.case: every value of cases must be one of ('high', 'low')"),
        ({"p": ["one"]}, "axes.p: every value of powers must be a finite number, got 'one'"),
        ({"p": [float("nan")]}, "axes.p: every value of powers must be a finite number, got nan"),
        ({"p": []}, "axes.p: powers must not be empty"),
        ({"snr": [0.0]}, "axes.snr: every value of snrs must be a positive number, got 0.0"),
        (
            {"learning_rate": 0.1},
            "axes.learning_rate: learning_rate must be a list of values, got 0.1",
        ),
        ({"learning_rate": [0.1, 0.1]}, "axes.learning_rate: learning_rate repeats 0.1"),
        (
            {"learning_rate": [-1.0]},
            "axes.learning_rate: every value of learning_rate must be a positive number, got -1.0",
        ),
        ({"steps": [25]}, "axes.steps: steps=25 must be a multiple of log_every=10"),
    ],
)
def test_bad_axes(axes, message, monkeypatch, tmp_path):
    monkeypatch.setattr(sweep_module, "program", None)  # must fail before compiling
    with pytest.raises(SettingError, match=re.escape(message)):
        sweep_module.run(NOISE, tiny_config(2), axes=axes, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seeds": 0}, "seeds must be a positive integer, got 0"),
        ({"chunk_size": -1}, "chunk_size must be a positive integer, got -1"),
        ({"group_size": 0}, "group_size must be a positive integer, got 0"),
        ({"memory_budget": 1.5}, "memory_budget must be a positive integer, got 1.5"),
        ({"root_seed": -1}, "root_seed must be an integer in [0, 4294967296), got -1"),
        ({"powers": ()}, "powers must not be empty"),
        ({"cases": ("high", "high")}, "cases repeats 'high'"),
        ({"snrs": 4.0}, "snrs must be a list of values, got 4.0"),
    ],
)
def test_bad_settings(changes, message):
    with pytest.raises(SettingError, match=re.escape(message)):
        NoiseConfig(**changes)


def test_memory_budget(tmp_path):
    """The chunk size from a budget, on the toy (the same rule for every experiment): XLA's
    temporary bytes and the table's are paid once, each seed adds its outputs' bytes."""
    tight = Table(seeds=64, memory_budget=100)  # the table alone takes 200 bytes
    with pytest.raises(SettingError, match="memory_budget=100 bytes is too small for one seed"):
        sweep_module.run(PICK, tight, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    roomy = Table(powers=(1.0, 2.0), seeds=6, memory_budget=2**30)
    config, axes = grid_axes(PICK, roomy)
    run = program(PICK, config, axes, {}, 2)
    values, data = axis_arrays(axes), table_data(roomy)
    assert choose_chunk_size(roomy, [run], values, data, 1) == 6  # every seed
    assert choose_chunk_size(roomy, [run], values, data, 4) == 8  # a multiple of the devices
    per_seed = 2 * 4  # (1 seed, 2 values of p, 1 record) float32
    outputs = jax.tree.leaves(run.output_shapes(data))  # one group of 2 runs
    assert sum(x.size * x.dtype.itemsize for x in outputs) == per_seed
    fixed = run.lower(data).compile().memory_analysis().temp_size_in_bytes + 50 * 4
    snug = dataclasses.replace(roomy, memory_budget=fixed + 2 * per_seed + per_seed // 2)
    assert choose_chunk_size(snug, [run], values, data, 1) == 2
    with pytest.raises(SettingError, match="too small for one seed per device"):
        choose_chunk_size(dataclasses.replace(roomy, memory_budget=fixed), [run], values, data, 1)


def _worker(out, chunk, *extra, env=None):
    return subprocess.Popen(
        [sys.executable, str(HERE / "sweep_worker.py"), str(out), str(chunk), *map(str, extra)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process):
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, output
    return output


def test_four_devices_match_one(reference, tmp_path):
    """4 fake CPU devices with 4 seeds per chunk run 1 seed per device, like a 1-device run
    with 1 seed per chunk: bitwise equal."""
    one = run_tiny(1, devices=jax.local_devices()[:1])
    flags = "--xla_force_host_platform_device_count=4"
    output = _finish(_worker(tmp_path / "run", 4, env={"XLA_FLAGS": flags}))
    assert "devices=4" in output
    four = load(tmp_path / "run", NOISE)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["chunk_size"] == 4
    assert_same(four, one)
    np.testing.assert_allclose(one.data["test_mse"], reference[0].data["test_mse"], rtol=1e-4)


def test_two_processes_merge_to_the_single_process_result(reference, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workers = [_worker(tmp_path / "run", 2, port, pid, 2) for pid in (0, 1)]
    outputs = [_finish(w) for w in workers]
    assert "process=0/2" in outputs[0] and "process=1/2" in outputs[1]
    assert (tmp_path / "run" / "environment-1.json").exists()
    merged = load(tmp_path / "run", NOISE)
    assert_same(merged, reference[0])
    arrays = read_arrays(tmp_path / "run" / "arrays.npz")  # written by process 0 after merging
    np.testing.assert_array_equal(arrays["test_mse"], reference[0].data["test_mse"])


def test_a_static_axis_is_one_program_per_value(reference, monkeypatch):
    """dh is not traced: one compiled program per value, the results stacked in axis order,
    each slice the run with that dh alone."""
    built = []

    def counting(experiment, config, *args):
        built.append(config.dh)
        return program(experiment, config, *args)

    monkeypatch.setattr(sweep_module, "program", counting)
    axes = dict(TINY_AXES, dh=[16, 8])
    results = sweep_module.run(NOISE, tiny_config(2), axes=axes, progress=False)
    assert built == [16, 8]
    assert results.dims == DIMS[:4] + ("dh", "seed", "step")
    assert results.values("dh") == (16, 8)
    wider = sweep_module.run(NOISE, tiny_config(2, dh=16), axes=TINY_AXES, progress=False)
    alone = {8: reference[0], 16: wider}
    for i, dh in enumerate((16, 8)):
        for key, values in alone[dh].data.items():
            assert np.isfinite(values).all()
            np.testing.assert_array_equal(results.data[key][:, :, :, :, i], values, err_msg=key)
    mse = results.final("test_mse")
    assert not np.allclose(mse[:, :, :, :, 0], mse[:, :, :, :, 1])


STATIC = tiny_config(2, seeds=2)


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({"dx": [4, 6]}, "a static axis changes the metrics' shapes"),
        ({"steps": [20, 40]}, "a static axis changes the recorded steps"),
    ],
)
def test_a_static_axis_that_changes_shapes_is_refused(axes, message, monkeypatch, tmp_path):
    def no_compile(*args, **kwargs):
        raise AssertionError("compiled before checking the shapes")

    monkeypatch.setattr(sweep_module, "run_chunk", no_compile)
    monkeypatch.setattr(sweep_module, "choose_chunk_size", no_compile)
    with pytest.raises(SettingError, match=re.escape(message)):
        sweep_module.run(NOISE, STATIC, axes=axes, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_experiment_data_is_an_argument_on_every_device(tmp_path):
    config = Table(powers=(1.0, 2.0), seeds=6, chunk_size=3)
    device = jax.local_devices()[0]
    # Two entries of one device: the chunk is rounded up to 4 seeds, 2 per entry, the last
    # chunk's padding seeds dropped.
    out = tmp_path / "run"
    results = sweep_module.run(PICK, config, out=out, devices=[device, device], progress=False)
    assert json.loads((out / "manifest.json").read_text())["chunk_size"] == 4
    root = jax.random.key(0)
    rows = [int(jax.random.randint(jax.random.fold_in(root, i), (), 0, 50)) for i in range(6)]
    table = np.arange(50, dtype=np.float32) * 10
    expected = np.array([[table[r] * p for r in rows] for p in (1.0, 2.0)])
    np.testing.assert_array_equal(results.data["picked"][..., 0], expected)
    np.testing.assert_array_equal(results.seeds, np.arange(6))
    # The table is not baked into the program: another table, the same compiled program.
    config, axes = grid_axes(PICK, config)
    run = program(PICK, config, axes, {}, 2)
    values = axis_arrays(axes)
    seeds = jnp.arange(3, dtype=jnp.uint32)
    first = run(seeds, values, table)
    second = run(seeds, values, table + 1)
    assert run._cache_size() == 1
    np.testing.assert_array_equal(first["picked"][..., 0], expected[:, :3].T)
    np.testing.assert_array_equal(second["picked"], first["picked"] + values["p"][None, :, None])
