"""The sweep engine: resumable run folders, devices, processes, labels, bad input."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from sweep_case import TINY_EXPERIMENT, tiny_spec

from jaxprecond.engine import sweep as sweep_module
from jaxprecond.engine.store import atomic_path
from jaxprecond.engine.sweep import (
    SweepSpec,
    axis_arrays,
    chunk_function,
    load_sweep,
    run_sweep,
)

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted single-process, single-device run, 2 seeds per chunk."""
    out = tmp_path_factory.mktemp("reference")
    return run_sweep(tiny_spec(2), TINY_EXPERIMENT, out=out, progress=False)


def assert_same(a, b):
    np.testing.assert_array_equal(a.seeds, b.seeds)
    assert a.data.keys() == b.data.keys()
    for key in a.data:
        np.testing.assert_array_equal(a.data[key], b.data[key], err_msg=key)


def test_layout_and_labels(reference):
    r = reference
    assert r.dims == ("case", "p", "learning_rate", "seed", "step")
    assert r.data["test_mse"].shape == (2, 2, 2, 4, 2)
    assert r.data["energy"].shape == (2, 2, 2, 4, 2, 10)
    ds = r.to_xarray()
    assert ds["test_mse"].dims == ("case", "p", "learning_rate", "seed", "step")
    assert list(ds.coords["case"].values) == ["high", "low"]
    np.testing.assert_array_equal(ds.coords["step"], [9, 19])
    value = ds["test_mse"].sel(case="low", p=1.0, learning_rate=0.05, seed=3).isel(step=-1)
    assert float(value) == r.data["test_mse"][1, 1, 1, 3, -1]
    df = r.to_dataframe()
    assert len(df) == 2 * 2 * 2 * 4
    row = df[(df.case == "low") & (df.p == 1.0) & (df.learning_rate == 0.05) & (df.seed == 3)]
    assert float(row.test_mse.iloc[0]) == r.data["test_mse"][1, 1, 1, 3, -1]


def test_learning_rate_axis_changes_the_run(reference):
    mse = reference.data["test_mse"][..., -1]
    assert not np.allclose(mse[:, :, 0], mse[:, :, 1])


def test_axis_values_are_arguments_not_constants():
    """Another sweep of the same shape reuses the compiled program."""
    spec = tiny_spec(2)
    run, _ = chunk_function(spec, TINY_EXPERIMENT)
    seeds = jax.numpy.arange(2, dtype=jax.numpy.uint32)  # one program for every value
    values = axis_arrays(spec, TINY_EXPERIMENT)
    first = run(seeds, values)
    other = dict(values, learning_rate=values["learning_rate"] * 2)
    second = run(seeds, other)
    assert run._cache_size() == 1
    assert not np.allclose(first.test_mse, second.test_mse)


def test_resume_recomputes_nothing_written_and_matches(reference, tmp_path):
    out = tmp_path / "run"
    # An interrupted run: only the first chunk got written (as process 0 of 2 would).
    partial = run_sweep(
        tiny_spec(2),
        TINY_EXPERIMENT,
        out=out,
        progress=False,
        process_index=0,
        process_count=2,
        merge_timeout=0,
    )
    assert list(partial.seeds) == [0, 1]
    first = out / "chunks" / "seeds-00000000-00000002.npz"
    stamp = first.stat().st_mtime_ns
    resumed = run_sweep(tiny_spec(2), TINY_EXPERIMENT, out=out, progress=False)
    assert first.stat().st_mtime_ns == stamp
    assert_same(resumed, reference)
    assert_same(load_sweep(out), reference)


def test_a_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "chunk.npz"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_other_config_in_folder_is_refused_before_compiling(reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    run_sweep(tiny_spec(2, seeds=2), TINY_EXPERIMENT, out=out, progress=False)

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled before checking the folder")

    monkeypatch.setattr(sweep_module, "chunk_function", no_compile)
    with pytest.raises(ValueError, match="differs in: seeds"):
        run_sweep(tiny_spec(2, seeds=4), TINY_EXPERIMENT, out=out, progress=False)
    assert len(list((out / "chunks").iterdir())) == 1  # nothing written was lost


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ((("temperature", (1.0,)),), "unknown axis 'temperature'"),
        ((("case", ("middle",)),), "axis 'case' takes values in"),
        ((("p", ("one",)),), "axis 'p' takes finite numbers"),
        ((("p", (float("nan"),)),), "axis 'p' takes finite numbers"),
    ],
)
def test_bad_axes(axes, message, monkeypatch):
    monkeypatch.setattr(sweep_module, "chunk_function", None)  # must fail before compiling
    with pytest.raises(ValueError, match=message):
        run_sweep(SweepSpec(axes=axes, seeds=2), TINY_EXPERIMENT, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"axes": ()}, "at least one axis"),
        ({"axes": (("p", ()),)}, "axis 'p' is empty"),
        ({"seeds": 0}, "seeds must be a positive integer, got 0"),
        ({"chunk_size": -1}, "chunk_size must be a positive integer"),
        ({"axes": (("p", (1.0,)), ("p", (2.0,)))}, "axis names repeat"),
    ],
)
def test_bad_spec(kwargs, message):
    options = {"axes": (("p", (1.0,)),), "seeds": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        SweepSpec(**options)


def test_memory_budget():
    spec = SweepSpec(axes=(("p", (1.0,)),), seeds=64, memory_budget=2_000)
    with pytest.raises(ValueError, match="memory_budget=2000 bytes is too small for one seed"):
        run_sweep(spec, TINY_EXPERIMENT, progress=False)
    roomy = SweepSpec(axes=(("p", (1.0,)),), seeds=6, memory_budget=2**30)
    program, devices = chunk_function(roomy, TINY_EXPERIMENT)
    assert sweep_module.choose_chunk_size(roomy, TINY_EXPERIMENT, program, len(devices)) == 6


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
    one = run_sweep(tiny_spec(1), TINY_EXPERIMENT, progress=False)
    flags = "--xla_force_host_platform_device_count=4"
    output = _finish(_worker(tmp_path / "run", 4, env={"XLA_FLAGS": flags}))
    assert "devices=4" in output
    assert_same(load_sweep(tmp_path / "run"), one)
    np.testing.assert_allclose(one.data["test_mse"], reference.data["test_mse"], rtol=1e-4)


def test_two_processes_merge_to_the_single_process_result(reference, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workers = [_worker(tmp_path / "run", 2, port, pid, 2) for pid in (0, 1)]
    outputs = [_finish(w) for w in workers]
    assert "process=0/2" in outputs[0] and "process=1/2" in outputs[1]
    assert_same(load_sweep(tmp_path / "run"), reference)


def data_experiment(table):
    """Each run draws one row of ``table`` (an experiment-wide data set) and scales it by p."""

    def make_cell(names):
        def cell(key, values, data):
            row = jax.random.randint(key, (), 0, data.shape[0])
            return {"picked": (data[row] * values["p"])[None]}

        return cell

    return sweep_module.Experiment(
        name="data",
        config={"table": "arange"},
        make_cell=make_cell,
        allowed_axes={"p": "numeric"},
        steps=(0,),
        data=table,
    )


def test_experiment_data_is_an_argument_on_every_device(tmp_path):
    table = np.arange(50, dtype=np.float32) * 10
    spec = SweepSpec(axes=(("p", (1.0, 2.0)),), seeds=6, chunk_size=3, memory_budget=None)
    out = run_sweep(spec, data_experiment(table), out=tmp_path / "run", progress=False)
    root = jax.random.key(0)
    rows = [int(jax.random.randint(jax.random.fold_in(root, i), (), 0, 50)) for i in range(6)]
    expected = np.array([[table[r] * p for r in rows] for p in (1.0, 2.0)])
    np.testing.assert_array_equal(out.data["picked"][..., 0], expected)
    # The table is not baked into the program: another table, same compiled program.
    program, devices = chunk_function(spec, data_experiment(table))
    values = axis_arrays(spec, data_experiment(table))
    seeds = jax.numpy.arange(3, dtype=jax.numpy.uint32)
    first = program(seeds, values, table)
    second = program(seeds, values, table + 1)
    assert program._cache_size() == 1
    np.testing.assert_array_equal(second["picked"], first["picked"] + values["p"][None, :, None])
