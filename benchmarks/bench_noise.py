"""Microseconds per seed-step of the Fig. 1 protocol, the machine's matmul peak, memory per seed.

A "seed-step" is one gradient step of one training run (one seed of one cell): dx 10, dh 500,
200 training points, full batch, test MSE on 9 800 points every 100 steps. Timings are medians
over repeats of an already compiled program; the first call (compile) is reported separately.

Usage:
    python benchmarks/bench_noise.py [--seeds 1 16 64 256] [--steps 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxprecond.engine.experiment import grid_axes
from jaxprecond.engine.sweep import axis_arrays, default_group_size, program, static_points
from jaxprecond.experiments.noise import NOISE, NoiseConfig


def matmul_peak(sizes=(256, 512, 1024, 2048), repeats: int = 5) -> dict[int, float]:
    """float32 GFLOP/s of a square matmul of each size (best of ``repeats``)."""
    square = jax.jit(lambda a: jnp.matmul(a, a, precision=jax.lax.Precision.HIGHEST))
    out = {}
    for n in sizes:
        a = jnp.ones((n, n), jnp.float32)
        square(a).block_until_ready()
        best = min(_timed(lambda a=a: square(a).block_until_ready()) for _ in range(repeats))
        out[n] = 2 * n**3 / best / 1e9
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def noise_program(config: NoiseConfig):
    """The sweep engine's jitted program of ``config``'s grid and its traced axis values.

    Built as :func:`jaxprecond.engine.sweep.run` builds it (one static point: every axis of the
    noise grid is traced): ``program(seed_indices, axis_values, data)``, outputs with leading
    axes ``(seed, case, p, snr)``.
    """
    config, axes = grid_axes(NOISE, config)
    config = dataclasses.replace(config, group_size=config.group_size or default_group_size())
    [(own, point)] = static_points(config, axes)
    return program(NOISE, point, axes, own, config.group_size), axis_arrays(axes, config.float64)


def seed_step_time(seeds: int, steps: int, repeats: int, group_size: int) -> dict:
    """Median µs per seed-step, compile time and temp memory of one cell with ``seeds`` seeds."""
    config = NoiseConfig(
        cases=("high",), powers=(1.0,), snrs=(1.0,), seeds=seeds, steps=steps,
        group_size=group_size,
    )  # fmt: skip
    run, values = noise_program(config)
    indices = np.arange(seeds, dtype=np.uint32)
    start = time.perf_counter()
    memory = run.lower().compile().memory_analysis()  # one group; the calls below reuse it
    compile_s = time.perf_counter() - start
    temp = getattr(memory, "temp_size_in_bytes", None) if memory is not None else None
    run(indices, values)
    times = [_timed(lambda: run(indices, values)) for _ in range(repeats)]
    median = statistics.median(times)
    return {
        "seeds": seeds,
        "us_per_seed_step": median / (seeds * steps) * 1e6,
        "compile_s": compile_s,
        "temp_bytes": temp,
        "times": times,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--group-size", type=int, default=4)
    args = parser.parse_args(argv)
    print(f"devices: {jax.devices()}")
    peak = matmul_peak()
    print("matmul peak (float32 GFLOP/s): " + ", ".join(f"{n}: {g:.0f}" for n, g in peak.items()))
    rows = [seed_step_time(s, args.steps, args.repeats, args.group_size) for s in args.seeds]
    print(
        f"\n| seeds | µs per seed-step (median of {args.repeats}) | compile s | temp MB | "
        "temp MB per seed |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        temp = r["temp_bytes"]
        mb = "n/a" if temp is None else f"{temp / 2**20:.1f}"
        per = "n/a" if temp is None else f"{temp / 2**20 / r['seeds']:.2f}"
        us, compile_s = r["us_per_seed_step"], r["compile_s"]
        print(f"| {r['seeds']} | {us:.1f} | {compile_s:.1f} | {mb} | {per} |")
    biggest = rows[-1]
    minutes = biggest["us_per_seed_step"] * 1e-6 * biggest["seeds"] * 10_000 / 60
    print(
        f"\n10 000 steps of {biggest['seeds']} seeds: about {minutes:.1f} min "
        f"(spread of repeats: {np.ptp(biggest['times']) / np.median(biggest['times']):.1%})"
    )


if __name__ == "__main__":
    main()
