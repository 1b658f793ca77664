"""Sweeps: an experiment over a grid × seeds, compiled once per program, chunked, resumable.

:func:`run` trains an :class:`~jaxprecond.engine.experiment.Experiment` at every point of its
grid (:func:`~jaxprecond.engine.experiment.grid_axes`) for every seed. Traced axes are
arguments of one compiled program; each combination of the other (static) axes is one more
program. The seed axis is processed in chunks (bounded by a memory budget), each chunk split
evenly over the local devices (one compiled program dispatched to each) and, with several
processes (``jax.distributed``), chunks are dealt round-robin to processes. Chunks are written
atomically to the run folder; a sweep started again skips the chunks already there.

Seed ``i``'s key is ``fold_in(key(root_seed), i)``: its data and init do not depend on the
chunk size, the device count or the process count.

The run folder, the same for every experiment::

    manifest.json        the experiment, its settings, the axes (which are traced), the chunks
    chunks/seeds-A-B.npz seeds A..B-1 of every grid point: seed_index, steps, every metric
    environment-K.json   package versions and devices of process K
    arrays.npz           every seed once finished (the chunks merged)
    report.md, figure.png  the experiment's table and figure (finished or partial)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxprecond.checks import MissingFile, SettingError
from jaxprecond.engine.config import checked_fields, from_mapping, substitute, to_json
from jaxprecond.engine.experiment import Experiment, grid_axes
from jaxprecond.engine.stats import SeedSummary, summarize_trajectories
from jaxprecond.engine.store import environment, read_arrays, write_arrays, write_text

MANIFEST = "manifest.json"
CHUNKS = "chunks"
ARRAYS = "arrays.npz"


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


@dataclasses.dataclass
class SweepResults:
    """Per-seed results of a sweep, labelled.

    Attributes:
      experiment: the :class:`~jaxprecond.engine.experiment.Experiment` (its table, figure).
      config: its settings.
      axes: ``((name, values), ...)`` of the grid.
      seeds: ``(S,)`` the seed indices present.
      steps: ``(R,)`` step index of each record.
      data: metric → array with axes ``(*grid, seed, record, ...)``.
      total_seeds: the seeds the sweep asked for (more than ``len(seeds)`` while unfinished).

    Example:
      Two of four seeds finished, one ``lr`` axis, two records:

      >>> res = SweepResults(None, None, axes=(("lr", (0.1, 0.2)),), seeds=np.array([0, 2]),
      ...                    steps=np.array([0, 10]), data={"loss": np.ones((2, 2, 2))},
      ...                    total_seeds=4)
      >>> res.dims, res.missing_seeds.tolist(), res.values("lr")
      (('lr', 'seed', 'step'), [1, 3], (0.1, 0.2))
    """

    experiment: Experiment | None
    config: object
    axes: tuple
    seeds: np.ndarray
    steps: np.ndarray
    data: dict
    total_seeds: int

    @property
    def missing_seeds(self) -> np.ndarray:
        """Seed indices not finished yet, sorted."""
        return np.setdiff1d(np.arange(self.total_seeds), self.seeds)

    @property
    def dims(self) -> tuple[str, ...]:
        """The names of the leading axes of every ``data`` array: the grid, seed, step."""
        return tuple(n for n, _ in self.axes) + ("seed", "step")

    def values(self, axis: str) -> tuple:
        """The values of grid axis ``axis``."""
        return dict(self.axes)[axis]

    def final(self, metric: str) -> np.ndarray:
        """``metric`` at the last record: axes ``(*grid, seed, ...)``.

        Example:
          >>> res = SweepResults(None, None, (("lr", (0.1,)),), np.arange(2), np.array([0, 9]),
          ...                    {"loss": np.array([[[3.0, 1.0], [4.0, 2.0]]])}, 2)
          >>> res.final("loss").tolist()
          [[1.0, 2.0]]
        """
        return self.data[metric][(slice(None),) * (len(self.axes) + 1) + (-1,)]

    def summary(self, metric: str, *, final: bool = True, bootstrap: int = 0) -> SeedSummary:
        """Seed statistics of ``metric``'s final value (or of every record).

        A seed whose trajectory holds a NaN or inf counts as diverged: it is excluded and
        reported (:func:`~jaxprecond.engine.stats.summarize_trajectories`).

        Args:
          metric: a key of ``data`` with axes ``(*grid, seed, record)``.
          final: summarise the last record only (else every record).
          bootstrap: bootstrap resamples for the interval (0: Student-t).

        Returns:
          A :class:`~jaxprecond.engine.stats.SeedSummary` of shape ``grid``
          (``(*grid, record)`` if not ``final``).

        Example:
          >>> loss = np.array([[[4.0, 1.0], [4.0, 3.0]], [[2.0, 2.0], [2.0, 4.0]]])
          >>> res = SweepResults(None, None, (("lr", (0.1, 0.2)),), np.arange(2),
          ...                    np.array([0, 10]), {"loss": loss}, 2)
          >>> res.summary("loss").mean.tolist(), res.summary("loss", final=False).mean.tolist()
          ([2.0, 3.0], [[4.0, 2.0], [2.0, 3.0]])
        """
        values = self.data[metric]
        if values.ndim != len(self.dims):
            raise ValueError(f"{metric!r} is not a scalar trajectory")
        return summarize_trajectories(
            values, len(self.axes), final=final, name=metric, bootstrap=bootstrap
        )

    def table(self) -> str:
        """The experiment's Markdown table (its own, or the generic one of its metrics)."""
        from jaxprecond.engine.views import table

        return table(self)

    def figure(self):
        """The experiment's figure (its own, or the generic one), a matplotlib ``Figure``."""
        from jaxprecond.engine.views import figure

        return figure(self)

    def to_xarray(self):
        """An ``xarray.Dataset`` with dims ``(*axes, seed, step[, component])``.

        Returns:
          The dataset: one variable per metric, coordinates the axis values, seeds and steps,
          and the settings as JSON in ``attrs["config"]``.

        Example:
          >>> res = SweepResults(None, None, (("lr", (0.1, 0.2)),), np.arange(3), np.array([0, 10]),
          ...                    {"loss": np.arange(12.0).reshape(2, 3, 2),
          ...                     "energy": np.zeros((2, 3, 2, 4))}, 3)
          >>> ds = res.to_xarray()
          >>> dict(ds.sizes), float(ds["loss"].sel(lr=0.2, seed=1, step=10))
          ({'lr': 2, 'seed': 3, 'step': 2, 'energy_component': 4}, 9.0)
        """
        import xarray as xr

        coords = {n: list(v) for n, v in self.axes}
        coords.update(seed=self.seeds, step=self.steps)
        variables = {}
        for name, values in self.data.items():
            extra = tuple(f"{name}_component" for _ in range(values.ndim - len(self.dims)))
            variables[name] = (self.dims + extra, values)
        config = {} if self.config is None else to_json(self.config)
        return xr.Dataset(variables, coords=coords, attrs={"config": json.dumps(config)})

    def to_dataframe(self):
        """A long ``pandas.DataFrame``: one row per grid point and seed, the final value of
        every scalar metric (metrics with component axes are left out).

        Example:
          >>> res = SweepResults(None, None, (("lr", (0.1, 0.2)),), np.arange(2),
          ...                    np.array([0, 10]), {"loss": np.arange(8.0).reshape(2, 2, 2)}, 2)
          >>> res.to_dataframe().loss.tolist()
          [1.0, 3.0, 5.0, 7.0]
        """
        import pandas as pd

        index = pd.MultiIndex.from_product(
            [list(v) for _, v in self.axes] + [self.seeds],
            names=[n for n, _ in self.axes] + ["seed"],
        )
        columns = {
            name: values[..., -1].reshape(-1)
            for name, values in self.data.items()
            if values.ndim == len(self.dims)
        }
        return pd.DataFrame(columns, index=index).reset_index()


def _identity(experiment: Experiment, config, axes) -> dict:
    """The experiment, every setting and the axes, as the manifest holds them (JSON)."""
    grid = [[a.name, list(a.values)] for a in axes]
    return json.loads(
        json.dumps({"experiment": experiment.name, "config": to_json(config), "axes": grid})
    )


def read_manifest(directory) -> dict | None:
    """The manifest of a run folder, or ``None`` if it has none."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SettingError(f"{path} cannot be read: {error}") from None


def _differences(existing: dict, identity: dict, config) -> list[str]:
    """What differs between a folder's run and this one (the chunk size is checked apart)."""
    changed = [k for k in ("experiment", "axes") if existing.get(k) != identity[k]]
    old, new, fields = existing.get("config", {}), identity["config"], checked_fields(config)
    for name in new:
        if fields[name].metadata["identity"] and name not in ("chunk_size", "memory_budget"):
            changed += [f"config.{name}"] if old.get(name) != new[name] else []
    return changed


def _chunk_path(directory: Path, start: int, stop: int) -> Path:
    return Path(directory) / CHUNKS / f"seeds-{start:08d}-{stop:08d}.npz"


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


def _merge_chunks(chunks: list[dict], n_axes: int):
    """Chunk dicts (``seed_index``, ``steps``, metrics) → seeds, steps and metrics by seed."""
    seeds = np.concatenate([c["seed_index"] for c in chunks])
    order = np.argsort(seeds, kind="stable")
    names = [k for k in chunks[0] if k not in ("seed_index", "steps")]
    data = {
        k: np.take(np.concatenate([c[k] for c in chunks], axis=n_axes), order, axis=n_axes)
        for k in names
    }
    return seeds[order], chunks[0]["steps"], data


def load(directory, experiment: Experiment) -> SweepResults:
    """Read a run folder, finished or partial, into :class:`SweepResults`.

    Args:
      directory: a run folder written by :func:`run`.
      experiment: the experiment that wrote it.

    Returns:
      :class:`SweepResults` of the seeds whose chunks are there, in seed order.

    Raises:
      MissingFile: no manifest, or no finished chunk yet.
      SettingError: the folder holds another experiment's run.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        raise MissingFile(f"{directory} is not a run folder ({MANIFEST} missing)")
    if manifest.get("experiment") != experiment.name:
        raise SettingError(f"{directory} holds a {manifest.get('experiment')!r} run")
    config = from_mapping(
        experiment.config(), manifest["config"], where=f"{directory / MANIFEST}: config."
    )
    axes = tuple((n, tuple(v)) for n, v in manifest["axes"])
    paths = sorted((directory / CHUNKS).glob("seeds-*.npz"))
    if not paths:
        raise MissingFile(f"{directory} holds no finished chunk yet")
    seeds, steps, data = _merge_chunks([read_arrays(p) for p in paths], len(axes))
    return SweepResults(experiment, config, axes, seeds, steps, data, config.seeds)


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
    config, axes = grid_axes(experiment, config, axes)
    config = dataclasses.replace(config, group_size=config.group_size or default_group_size())
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if process_count > 1 and out is None:
        raise SettingError("a multi-process sweep needs a run folder (out=...) to merge results")
    points = static_points(config, axes)
    steps = np.asarray(experiment.steps(config))
    if any(tuple(experiment.steps(cfg)) != tuple(steps) for _, cfg in points):
        raise SettingError("a static axis changes the recorded steps; sweep it in separate runs")
    identity = _identity(experiment, config, axes)
    existing = _existing_run(out, identity, config)
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
        directory = None if out is None else Path(out)
        if directory is not None:
            if existing is None:
                _create_run_folder(directory, identity, experiment, axes, chunk)
            environment_file = directory / f"environment-{process_index}.json"
            write_text(environment_file, json.dumps(environment(), indent=2) + "\n")
        bounds = [(s, min(s + chunk, config.seeds)) for s in range(0, config.seeds, chunk)]
        mine = bounds[process_index::process_count]
        todo = [b for b in mine if directory is None or not _chunk_path(directory, *b).exists()]
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
                    write_arrays(_chunk_path(directory, start, stop), arrays)
                bar.update(stop - start)
    if directory is None:
        seeds, steps, data = _merge_chunks(in_memory, len(axes))
        grid = tuple((a.name, a.values) for a in axes)
        return SweepResults(experiment, config, grid, seeds, steps, data, config.seeds)
    if process_index != 0:
        return None
    deadline = time.monotonic() + merge_timeout
    while not all(_chunk_path(directory, *b).exists() for b in bounds):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return _finish(directory, experiment)


def _existing_run(out, identity: dict, config) -> dict | None:
    """The manifest of the run in ``out`` (``None``: none yet); refused if its settings differ."""
    existing = read_manifest(out) if out is not None else None
    if existing is not None:
        changed = _differences(existing, identity, config)
        if changed:
            raise SettingError(
                f"{out} holds a run with other settings (differs in: {', '.join(changed)}); "
                "use another folder"
            )
    return existing


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


def _create_run_folder(directory: Path, identity: dict, experiment, axes, chunk: int) -> None:
    manifest = dict(
        identity,
        config=dict(identity["config"], chunk_size=chunk),
        traced=[a.name for a in axes if a.traced],
        source=experiment.source,
        chunk_size=chunk,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        environment=environment(),  # of the creating process; each process writes its own
    )
    (directory / CHUNKS).mkdir(parents=True, exist_ok=True)
    write_text(directory / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def _finish(directory: Path, experiment) -> SweepResults:
    """Load the folder's chunks; write ``arrays.npz`` once every seed is there, and the report."""
    from jaxprecond.engine.views import write_report

    results = load(directory, experiment)
    if not len(results.missing_seeds):
        arrays = dict(results.data, seed_index=results.seeds, steps=results.steps)
        write_arrays(directory / ARRAYS, arrays)
    write_report(results, directory)
    return results


__all__ = [
    "SweepResults",
    "axis_arrays",
    "choose_chunk_size",
    "default_group_size",
    "load",
    "read_manifest",
    "program",
    "run",
    "run_chunk",
    "static_points",
]
