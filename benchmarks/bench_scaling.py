"""Scaling of the noise experiment: seed-steps per second against seeds, hidden width and input
dimension; compile time; XLA memory per run of a group; the cost of one eigendecomposition of a
dx × dx Σ̂.

One cell (Case High, p = 1, SNR 1, Σ^p on W1) is swept over one axis while the others keep the
reference settings (dx 10, dh 500, 200 training points, 9 800 test points evaluated every
``--log-every`` steps). For each value the program is lowered and compiled (timed: "compile s"),
run once, then timed over ``--repeats`` further runs (median). The model's FLOPs per seed-step are
counted analytically (``gpu_fig1.flops_per_seed_step``: forward, gradients, ``P g``, the
amortised test evaluation) to give the arithmetic rate reached. Memory is XLA's own account of
the compiled program of one group of runs (arguments + outputs + temporaries); on a GPU the
allocator's peak is reported too.

The population ``Σ^p`` of the experiment needs no eigendecomposition (the spectrum is built from
its eigenpairs); an estimated ``Σ̂`` does. "eigh ms" is the median time of ``eigh_psd`` on a
dx × dx SPD matrix, and "eigh / run" its share of one seed's 10 000-step run at the measured rate.

Usage:
    python benchmarks/bench_scaling.py --axis seeds --values 1 16 256 4096
    python benchmarks/bench_scaling.py --axis dh --values 100 500 1000 2000 4000 --seeds 16
    python benchmarks/bench_scaling.py --axis dx --values 10 100 300 1000 --seeds 16
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxprecond.engine.experiment import grid_axes
from jaxprecond.engine.sweep import axis_arrays, default_group_size, program, static_points
from jaxprecond.experiments.noise import NOISE, NoiseConfig
from jaxprecond.linalg import eigh_psd

sys.path.insert(0, str(Path(__file__).parent))
from gpu_fig1 import flops_per_seed_step  # noqa: E402  (the same FLOP model as the GPU run)

AXES = ("seeds", "dh", "dx")


def flops(config: NoiseConfig) -> float:
    """Matmul FLOPs of one seed-step of ``config`` (``gpu_fig1.flops_per_seed_step``)."""
    n_test = config.n - config.n_train
    parts = flops_per_seed_step(config.dx, config.dh, config.n_train, n_test, config.log_every)
    return float(parts["total"])


def _median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def eigh_time(dx: int, repeats: int = 5) -> float:
    """Median seconds of one compiled ``eigh_psd`` of a random dx × dx SPD matrix."""
    a = jax.random.normal(jax.random.key(0), (dx, dx))
    matrix = a @ a.T / dx + jnp.eye(dx)
    decompose = jax.jit(lambda m: eigh_psd(m).eigenvectors)
    jax.block_until_ready(decompose(matrix))
    return _median_time(lambda: decompose(matrix), repeats)[0]


def noise_program(config: NoiseConfig):
    """The sweep engine's jitted program of ``config``'s grid and its traced axis values.

    Built as :func:`jaxprecond.engine.sweep.run` builds it (one static point: every axis of the
    noise grid is traced): ``program(seed_indices, axis_values, data)``.
    """
    config, axes = grid_axes(NOISE, config)
    config = dataclasses.replace(config, group_size=config.group_size or default_group_size())
    [(own, point)] = static_points(config, axes)
    return program(NOISE, point, axes, own, config.group_size), axis_arrays(axes, config.float64)


def measure(config: NoiseConfig, seeds: int, repeats: int, group_size: int) -> dict:
    """Compile and time one cell of ``config`` with ``seeds`` seeds on the first local device."""
    run, values = noise_program(dataclasses.replace(config, seeds=seeds, group_size=group_size))
    indices = np.arange(seeds, dtype=np.uint32)
    start = time.perf_counter()
    analysis = run.lower().compile().memory_analysis()  # one group; the calls below reuse it
    compile_s = time.perf_counter() - start
    run(indices, values)
    median, times = _median_time(lambda: run(indices, values), repeats)
    seed_steps = seeds * config.steps
    memory = {
        name: int(getattr(analysis, f"{name}_size_in_bytes", 0) or 0)
        for name in ("argument", "output", "temp", "alias")
    }
    total = memory["argument"] + memory["output"] + memory["temp"] - memory["alias"]
    stats = jax.local_devices()[0].memory_stats() or {}
    return {
        "dx": config.dx,
        "dh": config.dh,
        "seeds": seeds,
        "steps": config.steps,
        "compile_s": compile_s,
        "run_s": median,
        "spread": (max(times) - min(times)) / median,
        "seed_steps_per_s": seed_steps / median,
        "us_per_seed_step": median / seed_steps * 1e6,
        "gflops": flops(config) * seed_steps / median / 1e9,
        "xla_bytes": total,
        "xla_bytes_per_seed": total / min(seeds, group_size),  # the program is one group
        "temp_bytes": memory["temp"],
        "peak_bytes": stats.get("peak_bytes_in_use"),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--axis", choices=AXES, required=True)
    parser.add_argument("--values", type=int, nargs="+", required=True)
    parser.add_argument("--seeds", type=int, default=16, help="seeds when the axis is dh or dx")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if any(v < 1 for v in args.values):
        raise ValueError(f"--values must be positive, got {args.values}")

    base = NoiseConfig(
        cases=("high",), powers=(1.0,), snrs=(1.0,), steps=args.steps, log_every=args.log_every
    )
    base.validate()
    print(f"devices: {jax.devices()}  jax {jax.__version__}")
    rows = []
    for value in args.values:
        if args.axis == "seeds":
            config, seeds = base, value
        else:
            config, seeds = dataclasses.replace(base, **{args.axis: value}), args.seeds
        row = measure(config, seeds, args.repeats, args.group_size)
        row["eigh_ms"] = eigh_time(config.dx) * 1e3
        run_s = 10_000 * row["us_per_seed_step"] * 1e-6
        row["eigh_share"] = row["eigh_ms"] * 1e-3 / run_s
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(
        "\n| dx | dh | seeds | seed-steps/s | µs per seed-step | GFLOP/s | compile s | XLA MB | "
        "XLA MB per seed | eigh ms | eigh / 10k-step run | spread |"
    )
    print("|" + "---|" * 12)
    for r in rows:
        print(
            f"| {r['dx']} | {r['dh']} | {r['seeds']} | "
            f"{r['seed_steps_per_s']:.0f} | {r['us_per_seed_step']:.1f} | {r['gflops']:.1f} | "
            f"{r['compile_s']:.1f} | {r['xla_bytes'] / 2**20:.1f} | "
            f"{r['xla_bytes_per_seed'] / 2**20:.3f} | {r['eigh_ms']:.2f} | "
            f"{r['eigh_share']:.1e} | {r['spread']:.0%} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            record = {"args": vars(args), "devices": str(jax.devices()), "rows": rows}
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
