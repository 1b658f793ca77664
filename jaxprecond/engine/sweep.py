"""Sweeps: an experiment over a grid × seeds, compiled once per program, chunked, resumable.

:func:`run` trains an :class:`~jaxprecond.engine.experiment.Experiment` at every point of its
grid (:func:`~jaxprecond.engine.experiment.grid_axes`) for every seed. Each combination of the
static axes is one :class:`Program`: one group of runs compiled once, whose arguments are every
run's seed, traced axes and traced settings, so that it does not depend on the grid's shape,
the seed count or any traced value (sweeps that differ only in values share it through the
persistent compilation cache). The seed axis is processed in chunks (bounded by a memory
budget), a chunk's runs dealt group by group to the local devices and, with several processes
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
from jaxprecond.engine.experiment import Experiment, grid_axes, traced_settings
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


class Program:
    """One static point's compiled program: a group of runs trained side by side.

    The program is jitted once for ``group_size`` runs and is the same whatever the grid's
    shape, the seed count or the root seed: every run's seed index, own-axis values and traced
    settings (swept or not, see :func:`~jaxprecond.engine.experiment.traced_settings`) are its
    arguments. Two sweeps that differ only in values (other powers, another teacher scale, a
    learning-rate axis, the tuning seeds' root) therefore share one compiled program, in this
    process (JAX's cache) and across processes (the persistent cache). A chunk's runs (seeds ×
    traced grid, flattened) are padded to whole groups and dealt to the devices; a group's
    activations stay near the caches for the whole run (3× faster on a CPU than one ``vmap``
    over every run).

    Calling it runs one chunk on the default device: ``program(seed_indices, axis_values,
    data)`` → outputs with leading axes ``(seed, *traced axes)`` (:func:`run_chunk` spreads
    the groups over several devices).

    Args:
      experiment: what each run computes.
      config: the settings at this static point.
      axes: every axis of the sweep (the traced ones are the chunk's grid).
      own: the experiment's own static axes' values at this point.
      group_size: runs per group.

    Example:
      >>> from jaxprecond.experiments.noise import NOISE, NoiseConfig
      >>> from jaxprecond.engine.experiment import grid_axes
      >>> config, axes = grid_axes(NOISE, NoiseConfig(steps=10, log_every=10, dh=4, n=64,
      ...                                                n_train=32, seeds=2))
      >>> run = Program(NOISE, config, axes, {}, group_size=4)
      >>> run.arguments
      ('case', 'p', 'snr', 'learning_rate', 'weight_decay', 'init_scale', 'teacher_scale')
    """

    def __init__(self, experiment: Experiment, config, axes, own: dict, group_size: int):
        self.traced = tuple(a for a in axes if a.traced)
        self.group_size = int(group_size)
        self.config = config
        self.float64 = bool(getattr(config, "float64", False))
        self.root = jax.random.key(config.root_seed)
        self.settings = tuple(s for s in traced_settings(config) if s not in own)
        own_traced = tuple(a.name for a in self.traced if a.own)
        self.arguments = own_traced + self.settings

        def group(root, seed_indices, values, data):
            keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(seed_indices)

            def cell(key, value):
                point = dict(own, **{name: value[name] for name in own_traced})
                swept = substitute(config, **{s: value[s] for s in self.settings})
                out = experiment.run(key, point, swept, data)
                return out._asdict() if hasattr(out, "_asdict") else dict(out)

            return jax.vmap(cell)(keys, values)

        self.group = jax.jit(group)

    def runs(self, seed_indices, axis_values) -> tuple[np.ndarray, dict, int]:
        """A chunk's runs, flattened in ``(seed, *traced axes)`` order and padded (by repeating
        the last run) to whole groups: ``(seed indices, argument values, count)``."""
        shape = tuple(len(axis_values[a.name]) for a in self.traced)
        seed_indices = np.asarray(seed_indices, np.uint32)
        grid = np.meshgrid(
            np.arange(len(seed_indices)), *(np.arange(n) for n in shape), indexing="ij"
        )
        flat = [g.reshape(-1) for g in grid]
        count = flat[0].size
        pad = np.minimum(np.arange(_round_up(count, self.group_size)), count - 1)
        seeds = seed_indices[flat[0]][pad]
        values = {
            a.name: np.asarray(axis_values[a.name])[i][pad]
            for a, i in zip(self.traced, flat[1:], strict=True)
        }
        dtype = np.float64 if self.float64 else np.float32
        for name in self.settings:
            if name not in values:
                values[name] = np.full(pad.size, getattr(self.config, name), dtype)
        return seeds, values, count

    def abstract_arguments(self, data=None) -> tuple:
        """One group's arguments as shapes: for :func:`jax.eval_shape` and lowering."""
        seeds, values, _ = self.runs(np.zeros(1, np.uint32), axis_arrays(self.traced, self.float64))
        group = (seeds[: self.group_size], {k: v[: self.group_size] for k, v in values.items()})
        shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), group)
        return (self.root, *shapes, data)

    def lower(self, data=None):
        """The group program lowered (``.compile()`` it for XLA's memory analysis)."""
        return self.group.lower(*self.abstract_arguments(data))

    def output_shapes(self, data=None):
        """One group's outputs as shapes (leading axis ``group_size``), without compiling."""
        return jax.eval_shape(self.group, *self.abstract_arguments(data))

    def __call__(self, seed_indices, axis_values, data=None):
        return run_chunk(self, jax.local_devices()[:1], seed_indices, axis_values, data)

    def _cache_size(self) -> int:
        return self.group._cache_size()


def program(experiment: Experiment, config, axes, own: dict, group_size: int) -> Program:
    """The :class:`Program` of one static point (see there)."""
    return Program(experiment, config, axes, own, group_size)


def run_chunk(compiled: Program, devices, seed_indices, axis_values, data=None):
    """Run one chunk: its groups of runs dealt round-robin to the devices, gathered to the host.

    Every device runs the same single-device program, dispatched asynchronously so that the
    devices work concurrently; for a given group size, a run's result does not depend on the
    device, the chunk size or its place in a group
    (``tests/test_sweep.py::test_four_devices_match_one``). The group size is part of the
    arithmetic (XLA vectorises a group of 2 runs and one of 16 differently, in the last bits),
    and a group is padded with repeated runs when a chunk has fewer runs than a group.

    Args:
      compiled: a :class:`Program`.
      devices: the devices the chunk's groups are dealt to.
      seed_indices: ``(S,)`` seed indices.
      axis_values: from :func:`axis_arrays`.
      data: ``None``, a data set, or a list of one copy of it per device.

    Returns:
      The program's outputs as NumPy arrays, leading axes ``(S, *traced axes)``.
    """
    seeds, values, count = compiled.runs(seed_indices, axis_values)
    copies = data if isinstance(data, list) else [data] * len(devices)
    size = compiled.group_size
    outputs = []
    for k, start in enumerate(range(0, seeds.size, size)):
        device = devices[k % len(devices)]
        group = (
            seeds[start : start + size],
            {n: v[start : start + size] for n, v in values.items()},
        )
        root, group = jax.device_put((compiled.root, group), device)
        outputs.append(compiled.group(root, *group, copies[k % len(devices)]))
    lead = (len(seed_indices),) + tuple(len(axis_values[a.name]) for a in compiled.traced)
    gathered = jax.device_get(outputs)
    return jax.tree.map(
        lambda *parts: np.concatenate(parts)[:count].reshape(lead + parts[0].shape[1:]),
        *gathered,
    )


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _bytes(tree) -> int:
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


def choose_chunk_size(config, programs, axis_values, data, n_devices: int) -> int:
    """Seeds per chunk (a multiple of ``n_devices``): given, or the most that fit the budget.

    The estimate compiles each group program (the one the sweep then runs): XLA's temporary
    bytes of one group plus the data set's copy, and the outputs per seed.

    Raises:
      SettingError: not even one seed per device fits ``config.memory_budget``.
    """
    if config.chunk_size is not None:
        return _round_up(config.chunk_size, n_devices)
    if config.memory_budget is None:
        return _round_up(config.seeds, n_devices)
    cells = int(np.prod([len(v) for v in axis_values.values()], dtype=np.int64))
    per_seed = sum(_bytes(p.output_shapes(data)) // p.group_size * cells for p in programs)
    analyses = [p.lower(data).compile().memory_analysis() for p in programs]
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
        shapes = [p.output_shapes(data) for p in programs]
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
    "Program",
    "choose_chunk_size",
    "default_group_size",
    "program",
    "run",
    "run_chunk",
    "static_points",
]
