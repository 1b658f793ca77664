"""Sweep-engine throughput: seed-steps per second against seeds and against device count.

Each measurement runs the noise experiment's sweep (one cell: Case High, p = 1, SNR 1; dx 10,
dh 500, 200 training points, test MSE every 100 steps) in memory, compiled once; the time of a
second call is reported (median of repeats), with the compile time and XLA's temporary memory.
Device counts are fake CPU devices (``--xla_force_host_platform_device_count``), each count in a
fresh process.

Usage:
    python benchmarks/bench_sweep.py [--seeds 1 16 256 4096] [--devices 1 2 4] [--steps 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def measure(seeds: int, steps: int, repeats: int) -> dict:
    import dataclasses

    import jax
    import numpy as np

    from jaxprecond.engine.experiment import grid_axes
    from jaxprecond.engine.sweep import axis_arrays, default_group_size, run_chunk, static_points
    from jaxprecond.engine.sweep import program as sweep_program
    from jaxprecond.experiments.noise import NOISE, NoiseConfig

    config = NoiseConfig(cases=("high",), powers=(1.0,), snrs=(1.0,), seeds=seeds, steps=steps)
    # the program jaxprecond.engine.sweep.run compiles for this grid (every axis traced)
    config, axes = grid_axes(NOISE, config)
    config = dataclasses.replace(config, group_size=config.group_size or default_group_size())
    [(own, point)] = static_points(config, axes)
    program = sweep_program(NOISE, point, axes, own, config.group_size)
    devices = jax.local_devices()
    chunk = -(-seeds // len(devices)) * len(devices)
    indices = np.arange(chunk, dtype=np.uint32)
    values = axis_arrays(axes)
    start = time.perf_counter()
    run_chunk(program, devices, indices, values)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_chunk(program, devices, indices, values)
        times.append(time.perf_counter() - start)
    analysis = program.lower().compile().memory_analysis()  # one group of runs
    median = statistics.median(times)
    return {
        "seeds": seeds,
        "devices": len(devices),
        "seed_steps_per_s": chunk * steps / median,
        "compile_and_first_s": first,
        "temp_mb_per_device": getattr(analysis, "temp_size_in_bytes", 0) / 2**20,
        "spread": (max(times) - min(times)) / median,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 16, 256, 4096])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--device-seeds", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # worker mode
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args.steps, args.repeats)))
        return
    print(
        "| seeds | devices | seed-steps/s | µs per seed-step | compile+first s | temp MB | spread |"
    )
    print("|---|---|---|---|---|---|---|")
    runs = [(s, 1) for s in args.seeds] + [(args.device_seeds, d) for d in args.devices]
    for seeds, devices in runs:
        env = dict(os.environ)
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                str(seeds),
                "--steps",
                str(args.steps),
                "--repeats",
                str(args.repeats),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"| {r['seeds']} | {r['devices']} | {r['seed_steps_per_s']:.0f} | "
            f"{1e6 / r['seed_steps_per_s']:.1f} | {r['compile_and_first_s']:.1f} | "
            f"{r['temp_mb_per_device']:.1f} | {r['spread']:.0%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
