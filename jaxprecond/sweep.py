"""Sweeps: a grid of named axes × seeds, compiled once, chunked, sharded, resumable.

A sweep runs a *cell function* ``cell(key, values) -> pytree`` for every seed and every point
of a grid of named axes. Numeric axis values are traced (one compilation for the whole grid);
categorical axes (the input-spectrum case) are passed as an index. The seed axis is processed
in chunks (bounded by a memory budget), each chunk split evenly over the local devices (one
compiled program dispatched to each) and, with several processes (``jax.distributed``), chunks
are dealt round-robin to processes. Chunks are written atomically to a run folder; a
sweep started again skips the chunks already there.

Seed ``i``'s key is ``fold_in(key(root_seed), i)``: its data and init do not depend on the
chunk size, the device count or the process count.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxprecond.stats import SeedSummary, summarize_trajectories
from jaxprecond.store import environment, read_arrays, write_arrays, write_text

MANIFEST = "manifest.json"
CHUNKS = "chunks"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What a sweep runs.

    Attributes:
      name: the experiment's name (recorded in the manifest).
      config: a JSON-serialisable dict of every fixed setting (recorded and compared on resume).
      make_cell: ``axes -> cell``; ``cell(key, values)`` trains one run, ``values`` maps each
        axis name to a traced scalar (categorical axes: the index of the value). With ``data``
        the cell is ``cell(key, values, data)``.
      allowed_axes: axis name → ``"numeric"`` or a tuple of allowed categorical values.
      root_seed: the root of every seed's key.
      steps: the step index of each record of the cell's trajectories.
      float64: run under ``jax.enable_x64``.
      data: a pytree of arrays every run reads (a data set to draw from): passed to the
        compiled program as an argument, placed once on each device, never a compile-time
        constant. Not part of the manifest: name the data set (and its checksums) in ``config``.

    Example:
      A toy experiment whose run records ``lr × (1, 2)`` (two records), swept over two values:

      >>> import jax.numpy as jnp
      >>> toy = Experiment(
      ...     name="toy",
      ...     config={"records": 2},
      ...     make_cell=lambda names: lambda key, v: {"loss": v["lr"] * jnp.arange(1.0, 3.0)},
      ...     allowed_axes={"lr": "numeric"},
      ...     steps=(0, 1),
      ... )
      >>> res = run_sweep(SweepSpec(axes={"lr": (0.5, 2.0)}, seeds=1), toy, progress=False)
      >>> res.data["loss"][:, 0].tolist()  # (lr, seed, record) -> seed 0
      [[0.5, 1.0], [2.0, 4.0]]
    """

    name: str
    config: dict
    make_cell: Callable
    allowed_axes: Mapping[str, object]
    root_seed: int = 0
    steps: tuple[int, ...] = ()
    float64: bool = False
    data: object = None


def default_group_size(backend: str | None = None) -> int:
    """Runs trained side by side by default: 4 on a CPU (cache-sized), 4 096 on an accelerator.

    On a CPU a small group keeps its activations in cache (3× faster than one wide ``vmap``,
    ``benchmarks/RESULTS.md``); a GPU or TPU needs thousands of runs at once to be busy.

    Args:
      backend: ``"cpu"``, ``"gpu"``, ``"tpu"``...; ``None``: ``jax.default_backend()``.

    Returns:
      The group size.

    Example:
      >>> default_group_size("cpu"), default_group_size("gpu")
      (4, 4096)
    """
    backend = jax.default_backend() if backend is None else backend
    return 4 if backend == "cpu" else 4096


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """The grid and the seed axis of a sweep.

    Attributes:
      axes: ``((name, values), ...)`` in grid order.
      seeds: seeds per grid point.
      chunk_size: seeds per compiled call (rounded up to a multiple of the local device count);
        ``None``: from ``memory_budget``, else all seeds in one call.
      memory_budget: bytes a chunk may use on one device (estimated from the compiled program).
      group_size: runs trained side by side inside a device (see :func:`local_grid`);
        ``None``: :func:`default_group_size` of the default backend.

    Example:
      >>> spec = SweepSpec(axes={"lr": [0.1, 0.2, 0.4], "opt": ["sgd", "adam"]}, seeds=4)
      >>> spec.axes, spec.names, spec.shape
      ((('lr', (0.1, 0.2, 0.4)), ('opt', ('sgd', 'adam'))), ('lr', 'opt'), (3, 2))
      >>> SweepSpec(axes={"lr": [0.1]}, seeds=0)
      Traceback (most recent call last):
      ...
      ValueError: seeds must be a positive integer, got 0
      >>> SweepSpec(axes={"opt": "sgd"}, seeds=1)
      Traceback (most recent call last):
      ...
      ValueError: axis 'opt' needs a sequence of values, got the string 'sgd'
    """

    axes: tuple[tuple[str, tuple], ...]
    seeds: int
    chunk_size: int | None = None
    memory_budget: int | None = None
    group_size: int | None = None

    def __post_init__(self):
        axes = self.axes.items() if isinstance(self.axes, Mapping) else self.axes
        axes = tuple(axes)
        for name, values in axes:
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                what = "the string " if isinstance(values, str) else ""
                raise ValueError(f"axis {name!r} needs a sequence of values, got {what}{values!r}")
        object.__setattr__(self, "axes", tuple((str(n), tuple(v)) for n, v in axes))
        if self.group_size is None:
            object.__setattr__(self, "group_size", default_group_size())
        if not self.axes:
            raise ValueError("the grid needs at least one axis")
        names = [n for n, _ in self.axes]
        if len(set(names)) != len(names):
            raise ValueError(f"axis names repeat: {names}")
        for name, values in self.axes:
            if not values:
                raise ValueError(f"axis {name!r} is empty")
        for name in ("seeds", "chunk_size", "memory_budget", "group_size"):
            value = getattr(self, name)
            if value is None and name in ("chunk_size", "memory_budget"):
                continue
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """The axis names in grid order.

        Returns:
          A tuple of names, one per axis.

        Example:
          >>> SweepSpec(axes={"snr": [1.0, 4.0], "case": ["high"]}, seeds=2).names
          ('snr', 'case')
        """
        return tuple(n for n, _ in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        """The grid's shape: the number of values of each axis, in grid order.

        Returns:
          A tuple of lengths, one per axis (the seeds not included).

        Example:
          >>> spec = SweepSpec(axes={"snr": [1.0, 4.0], "case": ["high"], "p": [-1, 0, 1]},
          ...                  seeds=2)
          >>> spec.shape, math.prod(spec.shape) * spec.seeds  # and the runs of the sweep
          ((2, 1, 3), 12)
        """
        return tuple(len(v) for _, v in self.axes)


def validate_axes(spec: SweepSpec, experiment: Experiment) -> None:
    """Raise ``ValueError`` for unknown axis names or values an axis does not allow.

    Args:
      spec: the grid to check.
      experiment: its ``allowed_axes`` name each axis: ``"numeric"`` (finite numbers) or a
        tuple of allowed categorical values.

    Returns:
      ``None`` if every axis and value is allowed.

    Example:
      >>> toy = Experiment("toy", {}, make_cell=None,
      ...                  allowed_axes={"lr": "numeric", "opt": ("sgd", "adam")})
      >>> validate_axes(SweepSpec(axes={"lr": [0.1, 1], "opt": ["adam"]}, seeds=1), toy)
      >>> validate_axes(SweepSpec(axes={"opt": ["lbfgs"]}, seeds=1), toy)
      Traceback (most recent call last):
      ...
      ValueError: axis 'opt' takes values in ('sgd', 'adam'), got ['lbfgs']
      >>> validate_axes(SweepSpec(axes={"lr": [float("nan")]}, seeds=1), toy)
      Traceback (most recent call last):
      ...
      ValueError: axis 'lr' takes finite numbers, got [nan]
      >>> validate_axes(SweepSpec(axes={"wd": [0.0]}, seeds=1), toy)
      Traceback (most recent call last):
      ...
      ValueError: unknown axis 'wd' for experiment 'toy'; allowed: ['lr', 'opt']
    """
    for name, values in spec.axes:
        if name not in experiment.allowed_axes:
            raise ValueError(
                f"unknown axis {name!r} for experiment {experiment.name!r}; "
                f"allowed: {sorted(experiment.allowed_axes)}"
            )
        kind = experiment.allowed_axes[name]
        if kind == "numeric":
            bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))]
            if bad or not all(math.isfinite(v) for v in values):
                raise ValueError(f"axis {name!r} takes finite numbers, got {list(values)!r}")
        else:
            bad = [v for v in values if v not in kind]
            if bad:
                raise ValueError(f"axis {name!r} takes values in {kind}, got {bad!r}")


def axis_arrays(spec: SweepSpec, experiment: Experiment) -> dict:
    """Each axis's values as an array: numbers as floats, categories as their indices.

    Args:
      spec: the grid.
      experiment: the experiment, whose ``allowed_axes`` say which axes are categorical.

    Returns:
      ``{name: (len(values),) array}``, float32 (float64 with ``experiment.float64``) for a
      numeric axis, int32 indices into the allowed values for a categorical one.

    Example:
      >>> toy = Experiment(name="toy", config={}, make_cell=None, steps=(0,),
      ...                  allowed_axes={"lr": "numeric", "opt": ("sgd", "adam")})
      >>> spec = SweepSpec(axes={"lr": [0.1, 0.2], "opt": ["adam"]}, seeds=1)
      >>> arrays = axis_arrays(spec, toy)
      >>> arrays["lr"].dtype, arrays["opt"].tolist()
      (dtype('float32'), [1])
    """
    dtype = jnp.float64 if experiment.float64 else jnp.float32
    arrays = {}
    for name, values in spec.axes:
        kind = experiment.allowed_axes[name]
        if kind == "numeric":
            arrays[name] = jnp.asarray(values, dtype)
        else:
            arrays[name] = jnp.asarray([kind.index(v) for v in values], jnp.int32)
    return arrays


def local_grid(spec: SweepSpec, experiment: Experiment):
    """``(seed_indices (S,), axis_values) -> pytree`` with leading axes ``(S, *grid)``.

    ``axis_values`` maps each axis name to its values (:func:`axis_arrays`): they are
    arguments, so another sweep of the same shape reuses the compiled program.

    The grid × seeds is flattened into one list of runs, trained ``group_size`` at a time
    (``lax.map`` over groups, ``vmap`` inside a group): each group's activations then stay near
    the caches for the whole run, where one ``vmap`` over every run streams all of them through
    memory at every step (3× slower on a CPU; see ``benchmarks/RESULTS.md``).

    Args:
      spec: the grid (its ``group_size`` sets the runs per group).
      experiment: what each run computes.

    Returns:
      ``run(seed_indices, axis_values[, data])``, not jitted (:func:`chunk_function` jits it).

    Example:
      Runs that record ``lr × (1, 2)``: the output has axes ``(seed, lr, record)``.

      >>> import jax, jax.numpy as jnp
      >>> toy = Experiment("toy", {}, allowed_axes={"lr": "numeric"}, steps=(0, 1),
      ...                  make_cell=lambda names: lambda key, v: {
      ...                      "loss": v["lr"] * jnp.arange(1.0, 3.0)})
      >>> spec = SweepSpec(axes={"lr": (1.0, 2.0, 3.0)}, seeds=2, group_size=2)
      >>> run = jax.jit(local_grid(spec, toy))
      >>> out = run(jnp.arange(2, dtype=jnp.uint32), {"lr": jnp.array([1.0, 2.0, 3.0])})
      >>> out["loss"].shape, out["loss"][1].tolist()
      ((2, 3, 2), [[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    """
    cell = experiment.make_cell(spec.names)

    def run(seed_indices, axis_values, data=None):
        grids = jnp.meshgrid(
            jnp.arange(seed_indices.shape[0]),
            *(jnp.arange(n) for n in spec.shape),
            indexing="ij",
        )
        flat = [g.reshape(-1) for g in grids]
        root = jax.random.key(experiment.root_seed)
        keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(seed_indices[flat[0]])
        values = {
            name: axis_values[name][idx] for name, idx in zip(spec.names, flat[1:], strict=True)
        }
        if experiment.data is None:
            out = jax.lax.map(lambda a: cell(*a), (keys, values), batch_size=spec.group_size)
        else:
            out = jax.lax.map(lambda a: cell(*a, data), (keys, values), batch_size=spec.group_size)
        shape = (seed_indices.shape[0],) + spec.shape
        return jax.tree.map(lambda leaf: leaf.reshape(shape + leaf.shape[1:]), out)

    return run


def chunk_function(spec: SweepSpec, experiment: Experiment, devices=None):
    """The jitted per-device program and the devices a chunk is spread over.

    A chunk of seeds is split evenly over ``devices`` (default: this process's local devices);
    every device runs the *same* compiled single-device program on its slice, dispatched
    asynchronously so the devices work concurrently. (An SPMD-partitioned program, through
    ``shard_map`` or ``NamedSharding``, is compiled differently and was measured to differ from
    the single-device program in the last bits; dispatching the one program keeps a seed's
    result bitwise independent of the device count for a given per-device chunk.)

    Args:
      spec: the grid.
      experiment: what each run computes.
      devices: the devices a chunk is split over (default: ``jax.local_devices()``).

    Returns:
      ``(program, devices)``; ``program(seed_indices, axis_values[, data])`` as in
      :func:`local_grid`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> toy = Experiment("toy", {}, allowed_axes={"lr": "numeric"}, steps=(0,),
      ...                  make_cell=lambda names: lambda key, v: {"loss": v["lr"] * jnp.ones(1)})
      >>> spec = SweepSpec(axes={"lr": (0.5, 1.5)}, seeds=3)
      >>> program, devices = chunk_function(spec, toy, devices=jax.devices("cpu")[:1])
      >>> len(devices)
      1
      >>> out = program(jnp.arange(3, dtype=jnp.uint32), {"lr": jnp.array([0.5, 1.5])})
      >>> out["loss"].shape, out["loss"][0, :, 0].tolist()  # (seed, lr, record)
      ((3, 2, 1), [0.5, 1.5])
    """
    devices = list(devices if devices is not None else jax.local_devices())
    return jax.jit(local_grid(spec, experiment)), devices


def run_chunk(program, devices, seed_indices, axis_values, data=None):
    """Run one chunk: seed slices dispatched to their devices, results gathered to the host.

    Args:
      program, devices: from :func:`chunk_function`.
      seed_indices: ``(S,)`` seed indices, ``S`` a multiple of ``len(devices)``.
      axis_values: from :func:`axis_arrays`.
      data: ``None``, or one copy of the experiment's data per device (``device_put`` once
        per sweep, not per chunk).

    Returns:
      The program's output pytree as NumPy arrays, leading axes ``(S, *grid)``.

    Example:
      >>> import jax.numpy as jnp, numpy as np
      >>> toy = Experiment(name="toy", config={}, steps=(0,), allowed_axes={"lr": "numeric"},
      ...                  make_cell=lambda names: lambda key, v: {"x": v["lr"] * jnp.ones(1)})
      >>> spec = SweepSpec(axes={"lr": [1.0, 2.0]}, seeds=2)
      >>> program, devices = chunk_function(spec, toy)
      >>> out = run_chunk(program, devices[:1], np.arange(2), axis_arrays(spec, toy))
      >>> out["x"].shape, out["x"][0, :, 0].tolist()
      ((2, 2, 1), [1.0, 2.0])
    """
    slices = np.split(np.asarray(seed_indices), len(devices))
    copies = [()] * len(devices) if data is None else [(d,) for d in data]
    outputs = [
        program(jax.device_put(part, device), jax.device_put(axis_values, device), *copy)
        for part, device, copy in zip(slices, devices, copies, strict=True)
    ]
    return jax.tree.map(lambda *parts: np.concatenate(parts), *jax.device_get(outputs))


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _bytes(tree) -> int:
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


def choose_chunk_size(spec: SweepSpec, experiment: Experiment, program, n_devices: int) -> int:
    """Seeds per chunk (a multiple of ``n_devices``): given, or the most that fit the budget.

    The estimate compiles the per-device program for one seed: XLA's temporary bytes (one group
    of runs is live at a time) plus the outputs per seed, from ``jax.eval_shape``.

    Args:
      spec: its ``chunk_size``, else its ``memory_budget`` (bytes per device), else all seeds.
      experiment: what each run computes (its ``data`` counts against the budget).
      program: the jitted program of :func:`chunk_function`.
      n_devices: devices a chunk is split over.

    Returns:
      The seeds per chunk, a multiple of ``n_devices``, at most ``spec.seeds`` rounded up.

    Raises:
      ValueError: not even one seed per device fits ``memory_budget``.

    Example:
      >>> import jax.numpy as jnp
      >>> toy = Experiment("toy", {}, allowed_axes={"lr": "numeric"}, steps=(0,),
      ...                  make_cell=lambda names: lambda key, v: {"loss": v["lr"] * jnp.ones(1)})
      >>> def chunk(**kw):
      ...     spec = SweepSpec(axes={"lr": (0.1, 0.2)}, seeds=5, **kw)
      ...     program, _ = chunk_function(spec, toy)
      ...     return choose_chunk_size(spec, toy, program, n_devices=2)
      >>> chunk(chunk_size=3), chunk(), chunk(memory_budget=2**30)  # given; all; all fit
      (4, 6, 6)
      >>> chunk(memory_budget=1)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: memory_budget=1 bytes is too small for one seed per device: ...
    """
    if spec.chunk_size is not None:
        return _round_up(spec.chunk_size, n_devices)
    if spec.memory_budget is None:
        return _round_up(spec.seeds, n_devices)
    probe = (jnp.arange(1, dtype=jnp.uint32), axis_arrays(spec, experiment))
    if experiment.data is not None:
        probe += (experiment.data,)
    per_seed = _bytes(jax.eval_shape(program, *probe))
    analysis = program.lower(*probe).compile().memory_analysis()
    fixed = getattr(analysis, "temp_size_in_bytes", 0) if analysis is not None else 0
    if experiment.data is not None:
        fixed += _bytes(experiment.data)  # the data set's copy on the device
    fit = (spec.memory_budget - fixed) // per_seed
    if fit < 1:
        raise ValueError(
            f"memory_budget={spec.memory_budget} bytes is too small for one seed per device: "
            f"the program needs {fixed} bytes plus {per_seed} bytes per seed"
        )
    return min(int(fit) * n_devices, _round_up(spec.seeds, n_devices))


def _manifest_identity(spec: SweepSpec, experiment: Experiment) -> dict:
    """What must match for a run folder to be resumed (the chunk size is checked apart)."""
    return json.loads(
        json.dumps(
            {
                "experiment": experiment.name,
                "config": experiment.config,
                "axes": [[n, list(v)] for n, v in spec.axes],
                "seeds": spec.seeds,
                "group_size": spec.group_size,
                "root_seed": experiment.root_seed,
            }
        )
    )


def _read_manifest(directory, identity: dict) -> dict | None:
    """The manifest of ``directory`` if it exists; ``ValueError`` if it is another run's."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    existing = json.loads(path.read_text())
    changed = sorted(k for k in identity if existing.get(k) != identity[k])
    if changed:
        raise ValueError(
            f"{directory} holds a run with a different configuration (differs in: "
            f"{', '.join(changed)}); use another folder"
        )
    return existing


def _create_run_dir(directory, identity: dict, chunk_size: int) -> Path:
    """Write the manifest of a new run folder."""
    directory = Path(directory)
    (directory / CHUNKS).mkdir(parents=True, exist_ok=True)
    manifest = dict(
        identity,
        chunk_size=chunk_size,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        environment=environment(),  # of the creating process; each process also writes its own
    )
    write_text(directory / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return directory


def _chunk_path(directory: Path, start: int, stop: int) -> Path:
    return Path(directory) / CHUNKS / f"seeds-{start:08d}-{stop:08d}.npz"


@dataclasses.dataclass
class SweepResults:
    """Per-seed results of a sweep, labelled.

    Attributes:
      axes: ``((name, values), ...)`` of the grid.
      seeds: ``(S,)`` the seed indices present.
      steps: ``(R,)`` step index of each record.
      data: name → array with axes ``(*grid, seed, record, ...)``.
      config: the experiment's settings.
      total_seeds: the seeds the sweep asked for (more than ``len(seeds)`` while unfinished).

    Example:
      Two of four seeds finished, one ``lr`` axis, two records:

      >>> res = SweepResults(axes=(("lr", (0.1, 0.2)),), seeds=np.array([0, 2]),
      ...                    steps=np.array([0, 10]), data={"loss": np.ones((2, 2, 2))},
      ...                    config={}, total_seeds=4)
      >>> res.dims, res.missing_seeds.tolist()
      (('lr', 'seed', 'step'), [1, 3])
    """

    axes: tuple
    seeds: np.ndarray
    steps: np.ndarray
    data: dict
    config: dict
    total_seeds: int

    @property
    def missing_seeds(self) -> np.ndarray:
        """Seed indices not finished yet.

        Returns:
          The sorted indices of ``range(total_seeds)`` absent from ``seeds``.

        Example:
          >>> res = SweepResults(axes=(("lr", (0.1,)),), seeds=np.array([3, 0]),
          ...                    steps=np.array([0]), data={}, config={}, total_seeds=5)
          >>> res.missing_seeds.tolist()
          [1, 2, 4]
        """
        return np.setdiff1d(np.arange(self.total_seeds), self.seeds)

    @property
    def dims(self) -> tuple[str, ...]:
        """The names of the leading axes of every ``data`` array.

        Returns:
          The grid's axis names, then ``"seed"`` and ``"step"`` (one entry per record;
          ``steps`` gives each one's step), the same names as :meth:`to_xarray`.

        Example:
          >>> res = SweepResults(axes=(("lr", (0.1, 0.2)), ("opt", ("sgd",))),
          ...                    seeds=np.arange(3), steps=np.array([0, 10]),
          ...                    data={"loss": np.zeros((2, 1, 3, 2))}, config={}, total_seeds=3)
          >>> dict(zip(res.dims, res.data["loss"].shape))
          {'lr': 2, 'opt': 1, 'seed': 3, 'step': 2}
        """
        return tuple(n for n, _ in self.axes) + ("seed", "step")

    def summary(self, metric: str, *, final: bool = True, bootstrap: int = 0) -> SeedSummary:
        """Seed statistics of ``metric``'s final value (or trajectory); see
        :func:`~jaxprecond.stats.summarize_trajectories`.

        A seed whose trajectory holds a NaN or inf counts as diverged and is excluded.

        Args:
          metric: a key of ``data`` with axes ``(*grid, seed, record)``.
          final: summarise the last record only (else every record).
          bootstrap: bootstrap resamples for the interval (0: Student-t).

        Returns:
          A :class:`~jaxprecond.stats.SeedSummary` of shape ``grid`` (``(*grid, record)`` if
          not ``final``).

        Example:
          >>> loss = np.array([[[4.0, 1.0], [4.0, 3.0]], [[2.0, 2.0], [2.0, 4.0]]])
          >>> res = SweepResults(axes=(("lr", (0.1, 0.2)),), seeds=np.arange(2),
          ...                    steps=np.array([0, 10]), data={"loss": loss}, config={},
          ...                    total_seeds=2)
          >>> res.summary("loss").mean.tolist()  # final records: (1, 3) and (2, 4)
          [2.0, 3.0]
          >>> res.summary("loss", final=False).mean.tolist()
          [[4.0, 2.0], [2.0, 3.0]]
        """
        values = self.data[metric]
        if values.ndim != len(self.dims):
            raise ValueError(f"{metric!r} is not a scalar trajectory")
        return summarize_trajectories(
            values, len(self.axes), final=final, name=metric, bootstrap=bootstrap
        )

    def to_xarray(self):
        """An ``xarray.Dataset`` with dims ``(*axes, seed, step[, component])``.

        Returns:
          The dataset: one variable per metric, coordinates the axis values, seeds and steps,
          and the config as JSON in ``attrs["config"]``.

        Example:
          >>> res = SweepResults(axes=(("lr", (0.1, 0.2)),), seeds=np.arange(3),
          ...                    steps=np.array([0, 10]),
          ...                    data={"loss": np.arange(12.0).reshape(2, 3, 2),
          ...                          "energy": np.zeros((2, 3, 2, 4))},
          ...                    config={"dx": 4}, total_seeds=3)
          >>> ds = res.to_xarray()
          >>> dict(ds.sizes)
          {'lr': 2, 'seed': 3, 'step': 2, 'energy_component': 4}
          >>> float(ds["loss"].sel(lr=0.2, seed=1, step=10)), ds.attrs["config"]
          (9.0, '{"dx": 4}')
        """
        import xarray as xr

        coords = {n: list(v) for n, v in self.axes}
        coords.update(seed=self.seeds, step=self.steps)
        dims = tuple(n for n, _ in self.axes) + ("seed", "step")
        variables = {}
        for name, values in self.data.items():
            extra = tuple(f"{name}_component" for _ in range(values.ndim - len(dims)))
            variables[name] = (dims + extra, values)
        return xr.Dataset(variables, coords=coords, attrs={"config": json.dumps(self.config)})

    def to_dataframe(self):
        """A long ``pandas.DataFrame`` of the final value of every scalar metric per seed.

        Returns:
          One row per grid point and seed: a column per axis, ``seed``, and a column per scalar
          metric (metrics with extra component axes are left out).

        Example:
          >>> res = SweepResults(axes=(("lr", (0.1, 0.2)),), seeds=np.arange(2),
          ...                    steps=np.array([0, 10]),
          ...                    data={"loss": np.arange(8.0).reshape(2, 2, 2),
          ...                          "energy": np.zeros((2, 2, 2, 4))},
          ...                    config={}, total_seeds=2)
          >>> print(res.to_dataframe())
              lr  seed  loss
          0  0.1     0   1.0
          1  0.1     1   3.0
          2  0.2     0   5.0
          3  0.2     1   7.0
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


def _to_grid_major(tree, n_axes: int) -> dict:
    """Chunk outputs ``(seed, *grid, R, ...)`` → ``(*grid, seed, R, ...)``."""
    return {k: np.moveaxis(np.asarray(v), 0, n_axes) for k, v in tree.items()}


def load_sweep(directory) -> SweepResults:
    """Read every chunk of a run folder, complete or partial, into :class:`SweepResults`.

    Args:
      directory: a run folder written by :func:`run_sweep`.

    Returns:
      :class:`SweepResults` of the seeds whose chunks are there, in seed order.

    Raises:
      FileNotFoundError: no manifest, or no finished chunk yet.

    Example:
      >>> import tempfile
      >>> import jax.numpy as jnp
      >>> toy = Experiment("toy", {"a": 1}, allowed_axes={"lr": "numeric"}, steps=(0,),
      ...                  make_cell=lambda names: lambda key, v: {"loss": v["lr"] * jnp.ones(1)})
      >>> with tempfile.TemporaryDirectory() as d:
      ...     _ = run_sweep(SweepSpec(axes={"lr": (0.5, 1.5)}, seeds=3, chunk_size=2), toy,
      ...                   out=d, progress=False)
      ...     res = load_sweep(d)
      ...     try:
      ...         load_sweep(Path(d) / "chunks")
      ...     except FileNotFoundError:
      ...         print("not a run folder")
      not a run folder
      >>> res.seeds.tolist(), res.data["loss"][:, :, 0].tolist(), res.config
      ([0, 1, 2], [[0.5, 0.5, 0.5], [1.5, 1.5, 1.5]], {'a': 1})
    """
    directory = Path(directory)
    if not (directory / MANIFEST).exists():
        raise FileNotFoundError(f"{directory} is not a sweep run folder ({MANIFEST} missing)")
    manifest = json.loads((directory / MANIFEST).read_text())
    axes = tuple((n, tuple(v)) for n, v in manifest["axes"])
    paths = sorted((directory / CHUNKS).glob("seeds-*.npz"))
    if not paths:
        raise FileNotFoundError(f"{directory} holds no finished chunk yet")
    seeds, steps, data = _merge_chunks([read_arrays(p) for p in paths], len(axes))
    return SweepResults(axes, seeds, steps, data, manifest["config"], manifest["seeds"])


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


def run_sweep(
    spec: SweepSpec,
    experiment: Experiment,
    *,
    out=None,
    progress: bool = True,
    devices=None,
    process_index: int | None = None,
    process_count: int | None = None,
    merge_timeout: float = 3600.0,
) -> SweepResults | None:
    """Run (or resume) a sweep.

    Args:
      spec: the grid and seeds.
      experiment: what each run trains.
      out: run folder; chunks already written there are not recomputed. ``None``: keep the
        results in memory only.
      progress: show a progress bar with ETA over chunks.
      devices: the devices a chunk is sharded over (default: this process's local devices).
      process_index, process_count: this process's share of the chunks (default:
        ``jax.process_index()`` and ``jax.process_count()``, set by ``jax.distributed``).
      merge_timeout: with several processes, how long process 0 waits for the others' chunks
        before returning what is there.

    Returns:
      :class:`SweepResults` of all seeds (process 0, or a single process); ``None`` on the other
      processes of a multi-process run.

    Example:
      Each run records its seed's uniform draw times ``lr``; a run folder is resumed, and
      refused to a sweep with another configuration:

      >>> import tempfile
      >>> import jax, jax.numpy as jnp
      >>> toy = Experiment("toy", {}, allowed_axes={"lr": "numeric"}, steps=(0,),
      ...                  make_cell=lambda names: lambda key, v: {
      ...                      "u": v["lr"] * jax.random.uniform(key, (1,))})
      >>> spec = SweepSpec(axes={"lr": (1.0, 2.0)}, seeds=3, chunk_size=2)
      >>> with tempfile.TemporaryDirectory() as d:
      ...     res = run_sweep(spec, toy, out=d, progress=False)
      ...     again = run_sweep(spec, toy, out=d, progress=False)  # every chunk is there
      ...     try:
      ...         run_sweep(dataclasses.replace(spec, seeds=4), toy, out=d, progress=False)
      ...     except ValueError as error:
      ...         print(str(error).split("(")[1])
      differs in: seeds); use another folder
      >>> u = res.data["u"]
      >>> u.shape, res.seeds.tolist(), len(set(u[0, :, 0].tolist()))  # (lr, seed, record)
      ((2, 3, 1), [0, 1, 2], 3)
      >>> bool(np.allclose(u[1], 2 * u[0])), np.array_equal(u, again.data["u"])
      (True, True)
    """
    validate_axes(spec, experiment)
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if process_count > 1 and out is None:
        raise ValueError("a multi-process sweep needs a run folder (out=...) to merge results")
    identity = _manifest_identity(spec, experiment)
    existing = _read_manifest(out, identity) if out is not None else None
    with jax.enable_x64(experiment.float64):
        program, devices = chunk_function(spec, experiment, devices)
        n_devices = len(devices)
        if existing is not None:
            chunk = existing["chunk_size"]
            if spec.chunk_size is not None and chunk != _round_up(spec.chunk_size, n_devices):
                raise ValueError(
                    f"{out} was written with chunk_size={chunk}; resume it with that chunk size"
                )
            directory = Path(out)
        else:
            chunk = choose_chunk_size(spec, experiment, program, n_devices)
            directory = _create_run_dir(out, identity, chunk) if out is not None else None
        if chunk % n_devices:
            raise ValueError(f"chunk_size={chunk} is not a multiple of the {n_devices} devices")
        if directory is not None:
            write_text(
                directory / f"environment-{process_index}.json",
                json.dumps(environment(), indent=2) + "\n",
            )
        bounds = [(s, min(s + chunk, spec.seeds)) for s in range(0, spec.seeds, chunk)]
        mine = bounds[process_index::process_count]
        todo = [b for b in mine if directory is None or not _chunk_path(directory, *b).exists()]
        in_memory = []
        values = axis_arrays(spec, experiment)
        data = None
        if experiment.data is not None and todo:
            data = [jax.device_put(experiment.data, device) for device in devices]
        with tqdm(
            total=sum(b - a for a, b in mine),
            unit="seed",
            disable=not progress,
            desc=f"{experiment.name} sweep",
        ) as bar:
            bar.update(sum(b - a for a, b in mine) - sum(b - a for a, b in todo))
            for start, stop in todo:
                indices = np.arange(start, start + chunk, dtype=np.uint32)
                out_tree = run_chunk(program, devices, indices, values, data)
                keep = stop - start
                fields = out_tree._asdict() if hasattr(out_tree, "_asdict") else dict(out_tree)
                arrays = {k: v[:keep] for k, v in fields.items()}
                arrays = _to_grid_major(arrays, len(spec.axes))
                arrays["seed_index"] = np.arange(start, stop)
                arrays["steps"] = np.asarray(experiment.steps)
                if directory is not None:
                    write_arrays(_chunk_path(directory, start, stop), arrays)
                else:
                    in_memory.append(arrays)
                bar.update(keep)
    if directory is None:
        seeds, steps, data = _merge_chunks(in_memory, len(spec.axes))
        return SweepResults(spec.axes, seeds, steps, data, experiment.config, spec.seeds)
    if process_index != 0:
        return None
    deadline = time.monotonic() + merge_timeout
    while not all(_chunk_path(directory, *b).exists() for b in bounds):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return load_sweep(directory)


__all__ = [
    "Experiment",
    "SweepResults",
    "SweepSpec",
    "axis_arrays",
    "chunk_function",
    "choose_chunk_size",
    "default_group_size",
    "load_sweep",
    "local_grid",
    "run_chunk",
    "run_sweep",
    "validate_axes",
]
