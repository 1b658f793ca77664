"""Sweeps: an experiment over a grid × seeds, compiled once per program, chunked, resumable.

:func:`run` trains an :class:`~jaxprecond.engine.experiment.Experiment` at every point of its
grid (:func:`~jaxprecond.engine.experiment.grid_axes`) for every seed. Traced axes are
arguments of one compiled program; each combination of the other (static) axes is one more
program. The seed axis is processed in chunks (bounded by a memory budget), each chunk split
evenly over the local devices (one program dispatched to each) and, with several processes
(``jax.distributed``), chunks are dealt round-robin to processes. Chunks are written to the run
folder (:mod:`jaxprecond.engine.folder`) as they finish; a sweep started again computes only
the chunks that are not there.

Seed ``i``'s key is ``fold_in(key(root_seed), i)``: its data and init do not depend on the
chunk size, the device count or the process count.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxprecond.checks import SettingError
from jaxprecond.engine import compile_cache, folder
from jaxprecond.engine.config import substitute
from jaxprecond.engine.experiment import Experiment, grid_axes
from jaxprecond.engine.results import SweepResults
from jaxprecond.engine.store import environment, write_text


def default_group_size(backend: str | None = None) -> int:
    """Runs trained side by side by default: 4 on a CPU (cache-sized), 4 096 on an accelerator.

    On a CPU a small group keeps its activations in cache (3× faster than one wide ``vmap``,
    ``benchmarks/RESULTS.md``); a GPU or TPU needs thousands of runs at once to be busy.

    Example:
      >>> default_group_size("cpu"), default_group_size("gpu")
      (4, 4096)
    """
    backend = jax.default_backend() if backend is None else backend
    return 4 if backend == "cpu" else 4096


def axis_arrays(axes, float64: bool = False) -> dict:
    """The traced axes' values as arrays: numbers as floats, names as indices into the choices.

    Example:
      >>> from jaxprecond.engine.experiment import Axis
      >>> arrays = axis_arrays([Axis("p", (0.0, 1.0), "powers", True),
      ...                       Axis("case", ("low",), "cases", True, ("high", "low"))])
      >>> arrays["p"].dtype, arrays["case"].tolist()
      (dtype('float32'), [1])
    """
    dtype = jnp.float64 if float64 else jnp.float32
    return {
        a.name: jnp.asarray([a.choices.index(v) for v in a.values], jnp.int32)
        if a.categorical
        else jnp.asarray(a.values, dtype)
        for a in axes
        if a.traced
    }


def static_points(config, axes) -> list[tuple[dict, object]]:
    """Every combination of the static axes: ``(own axes' values, config)`` for each program.

    Example:
      >>> from jaxprecond.engine.config import Config
      >>> from jaxprecond.engine.experiment import Axis
      >>> axes = [Axis("seeds", (2, 3), "seeds", False, own=False)]
      >>> [cfg.seeds for _, cfg in static_points(Config(), axes)]
      [2, 3]
    """
    static = [a for a in axes if not a.traced]
    points = []
    for values in itertools.product(*(a.values for a in static)):
        own = {a.name: v for a, v in zip(static, values, strict=True) if a.own}
        scalars = {a.setting: v for a, v in zip(static, values, strict=True) if not a.own}
        points.append((own, dataclasses.replace(config, **scalars)))
    return points


def program(experiment: Experiment, config, axes, own: dict, group_size: int):
    """The jitted program of one static point: ``(seed_indices, axis_values, data) -> metrics``.

    The seeds × traced grid is flattened into one list of runs, trained ``group_size`` at a
    time (``lax.map`` over groups, ``vmap`` inside a group): a group's activations stay near
    the caches for the whole run (3× faster on a CPU than one ``vmap`` over every run).

    Args:
      experiment: what each run computes.
      config: the settings at this static point.
      axes: every axis of the sweep (the traced ones are the program's).
      own: the experiment's own static axes' values at this point.
      group_size: runs per group.

    Returns:
      The jitted program; its outputs have leading axes ``(seed, *traced axes)``.
    """
    traced = [a for a in axes if a.traced]
    shape = tuple(len(a.values) for a in traced)

    def run(seed_indices, axis_values, data):
        grids = jnp.meshgrid(
            jnp.arange(seed_indices.shape[0]), *(jnp.arange(n) for n in shape), indexing="ij"
        )
        flat = [g.reshape(-1) for g in grids]
        root = jax.random.key(config.root_seed)
        keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(seed_indices[flat[0]])
        values = {a.name: axis_values[a.name][i] for a, i in zip(traced, flat[1:], strict=True)}

        def cell(args):
            key, value = args
            point = dict(own, **{a.name: value[a.name] for a in traced if a.own})
            swept = substitute(config, **{a.setting: value[a.name] for a in traced if not a.own})
            out = experiment.run(key, point, swept, data)
            return out._asdict() if hasattr(out, "_asdict") else dict(out)

        out = jax.lax.map(cell, (keys, values), batch_size=group_size)
        lead = (seed_indices.shape[0],) + shape
        return jax.tree.map(lambda leaf: leaf.reshape(lead + leaf.shape[1:]), out)

    return jax.jit(run)


def run_chunk(compiled, devices, seed_indices, axis_values, data=None):
    """Run one chunk: seed slices dispatched to their devices, results gathered to the host.

    Every device runs the same single-device program (JAX compiles it once per device) on its
    slice, dispatched asynchronously so the devices work concurrently (an SPMD-partitioned
    program differs from it in the last bits; this keeps a seed's result independent of the
    device count).

    Args:
      compiled: a :func:`program`.
      devices: the devices the chunk is split over.
      seed_indices: ``(S,)`` seed indices, ``S`` a multiple of ``len(devices)``.
      axis_values: from :func:`axis_arrays`.
      data: ``None``, or one copy of the experiment's data per device.

    Returns:
      The program's outputs as NumPy arrays, leading axes ``(S, *traced axes)``.
    """
    slices = np.split(np.asarray(seed_indices), len(devices))
    copies = [None] * len(devices) if data is None else data
    outputs = [
        compiled(jax.device_put(part, device), jax.device_put(axis_values, device), copy)
        for part, device, copy in zip(slices, devices, copies, strict=True)
    ]
    return jax.tree.map(lambda *parts: np.concatenate(parts), *jax.device_get(outputs))


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _bytes(tree) -> int:
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


def choose_chunk_size(config, programs, axis_values, data, n_devices: int) -> int:
    """Seeds per chunk (a multiple of ``n_devices``): given, or the most that fit the budget.

    The estimate compiles each program for one seed: XLA's temporary bytes (one group of runs
    is live at a time) plus the outputs per seed, and the data set's copy.

    Raises:
      SettingError: not even one seed per device fits ``config.memory_budget``.
    """
    if config.chunk_size is not None:
        return _round_up(config.chunk_size, n_devices)
    if config.memory_budget is None:
        return _round_up(config.seeds, n_devices)
    probe = (jnp.arange(1, dtype=jnp.uint32), axis_values, data)
    per_seed = sum(_bytes(jax.eval_shape(p, *probe)) for p in programs)
    analyses = [p.lower(*probe).compile().memory_analysis() for p in programs]
    fixed = max(getattr(a, "temp_size_in_bytes", 0) if a else 0 for a in analyses)
    fixed += _bytes(data)
    fit = (config.memory_budget - fixed) // per_seed
    if fit < 1:
        raise SettingError(
            f"memory_budget={config.memory_budget} bytes is too small for one seed per device: "
            f"the program needs {fixed} bytes plus {per_seed} bytes per seed"
        )
    return min(int(fit) * n_devices, _round_up(config.seeds, n_devices))


def run(
    experiment: Experiment,
    config,
    *,
    axes=None,
    out=None,
    progress: bool = True,
    devices=None,
    process_index: int | None = None,
    process_count: int | None = None,
    merge_timeout: float = 3600.0,
) -> SweepResults | None:
    """Run (or resume) ``experiment`` over its grid × ``config.seeds`` seeds.

    JAX's persistent compilation cache is turned on first (:func:`compile_cache.enable`; off
    with ``JAXPRECOND_COMPILE_CACHE=0`` or :func:`compile_cache.disable`).

    Args:
      experiment: the definition.
      config: its settings.
      axes: more axes, or other values of the experiment's own (see
        :func:`~jaxprecond.engine.experiment.grid_axes`).
      out: run folder; chunks already written there are not recomputed, and a finished run
        gets ``arrays.npz``, ``report.md`` and ``figure.png``. ``None``: in memory only.
      progress: show a progress bar with ETA over seeds.
      devices: the devices a chunk is split over (default: this process's local devices).
      process_index, process_count: this process's share of the chunks (default: those of
        ``jax.distributed``).
      merge_timeout: with several processes, how long process 0 waits for the others' chunks.

    Returns:
      :class:`SweepResults` of all seeds (process 0, or a single process); ``None`` on the
      other processes of a multi-process run.

    Raises:
      SettingError: a bad axis or setting, or a folder holding another run (before anything is
        compiled or written).
    """
    compile_cache.enable()
    config, axes = grid_axes(experiment, config, axes)
    config = dataclasses.replace(config, group_size=config.group_size or default_group_size())
    directory = folder.folder(out)
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if process_count > 1 and directory is None:
        raise SettingError("a multi-process sweep needs a run folder (out=...) to merge results")
    points = static_points(config, axes)
    steps = np.asarray(experiment.steps(config))
    if any(tuple(experiment.steps(cfg)) != tuple(steps) for _, cfg in points):
        raise SettingError("a static axis changes the recorded steps; sweep it in separate runs")
    existing = folder.existing_run(directory, folder.record(experiment, config, axes), config)
    float64 = bool(getattr(config, "float64", False))
    with jax.enable_x64(float64):
        programs = [program(experiment, cfg, axes, own, config.group_size) for own, cfg in points]
        devices = list(devices if devices is not None else jax.local_devices())
        values = axis_arrays(axes, float64)
        data = experiment.data(config) if experiment.data is not None else None
        probe = (jnp.arange(1, dtype=jnp.uint32), values, data)
        shapes = [jax.eval_shape(p, *probe) for p in programs]
        if any(s != shapes[0] for s in shapes):
            raise SettingError("a static axis changes the metrics' shapes; sweep it apart")
        if existing is None:
            chunk = choose_chunk_size(config, programs, values, data, len(devices))
        else:
            chunk = _resumed_chunk_size(existing, config, len(devices), out)
        run_record = folder.record(experiment, config, axes, chunk)
        if directory is not None:
            manifest = folder.create(directory, run_record, config)
            chunk = _resumed_chunk_size(manifest, config, len(devices), out)
            run_record = folder.record(experiment, config, axes, chunk)
            folder.check_chunks(directory, run_record, config)
            environment_file = directory / f"environment-{process_index}.json"
            write_text(environment_file, json.dumps(environment(), indent=2) + "\n")
        bounds = [(s, min(s + chunk, config.seeds)) for s in range(0, config.seeds, chunk)]
        mine = bounds[process_index::process_count]
        done = folder.chunk_path
        todo = [b for b in mine if directory is None or not done(directory, *b).exists()]
        copies = None if data is None or not todo else [jax.device_put(data, d) for d in devices]
        in_memory = []
        total = sum(b - a for a, b in mine)
        with tqdm(total=total, unit="seed", disable=not progress, desc=experiment.name) as bar:
            bar.update(total - sum(b - a for a, b in todo))
            for start, stop in todo:
                indices = np.arange(start, start + chunk, dtype=np.uint32)
                parts = [run_chunk(p, devices, indices, values, copies) for p in programs]
                arrays = dict(_assemble(parts, axes, stop - start), steps=steps)
                arrays["seed_index"] = np.arange(start, stop)
                if directory is None:
                    in_memory.append(arrays)
                else:
                    folder.write_chunk(directory, start, stop, arrays, run_record)
                bar.update(stop - start)
    if directory is None:
        seeds, steps, data = folder.merge(in_memory, len(axes))
        grid = tuple((a.name, a.values) for a in axes)
        return SweepResults(experiment, config, grid, seeds, steps, data, config.seeds)
    if process_index != 0:
        return None
    deadline = time.monotonic() + merge_timeout
    while not all(done(directory, *b).exists() for b in bounds):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return folder.finish(directory, experiment)


def _assemble(parts: list[dict], axes, keep: int) -> dict:
    """Outputs ``(seed, *traced, ...)`` of every static point → ``(*grid, seed, ...)``."""
    static = [a.name for a in axes if not a.traced]
    traced = [a.name for a in axes if a.traced]
    static_shape = tuple(len(a.values) for a in axes if not a.traced)
    current = static + ["seed"] + traced
    order = [current.index(a.name) for a in axes] + [current.index("seed")]
    arrays = {}
    for name in parts[0]:
        stacked = np.stack([np.asarray(p[name])[:keep] for p in parts])
        stacked = stacked.reshape(static_shape + stacked.shape[1:])
        arrays[name] = stacked.transpose(order + list(range(len(order), stacked.ndim)))
    return arrays


def _resumed_chunk_size(existing: dict, config, n_devices: int, out) -> int:
    """A resumed run keeps its chunks: ``config.chunk_size``, if given, must be the folder's."""
    chunk = existing["chunk_size"]
    if config.chunk_size is not None and chunk != _round_up(config.chunk_size, n_devices):
        raise SettingError(
            f"{out} was written with chunk_size={chunk} (differs in: config.chunk_size); "
            "resume it with that chunk size"
        )
    if chunk % n_devices:
        raise SettingError(f"chunk_size={chunk} is not a multiple of the {n_devices} devices")
    return chunk


__all__ = [
    "axis_arrays",
    "choose_chunk_size",
    "default_group_size",
    "program",
    "run",
    "run_chunk",
    "static_points",
]
