"""Where the Σ^p noise arm's time goes: the same program with parts taken away, alternated.

One cell (Case High, p = 1, SNR 1), 16 seeds × 500 steps, one host device, the sweep engine's
program (``jaxprecond.engine.sweep.program``); medians of 3 alternated runs, compile excluded.

Usage:
    JAXPRECOND_HOST_DEVICES=1 python benchmarks/noise_arm_ablation.py   # about 1 minute
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import numpy as np

from jaxprecond.engine import sweep
from jaxprecond.engine.experiment import grid_axes
from jaxprecond.experiments.noise import NOISE, NoiseConfig

SEEDS, STEPS = 16, 500
BASE = NoiseConfig(
    cases=("high",), powers=(1.0,), snrs=(1.0,), seeds=SEEDS, steps=STEPS, log_every=100,
    group_size=4,
)  # fmt: skip
VARIANTS = {
    "as benchmarked (test MSE on 9 800 points every 100 steps)": BASE,
    "test evaluation once": dataclasses.replace(BASE, log_every=STEPS),
    "... and 800 test points": dataclasses.replace(BASE, log_every=STEPS, n=1_000),
    "... and hidden width 250": dataclasses.replace(BASE, log_every=STEPS, n=1_000, dh=250),
}


def main() -> None:
    programs = {}
    for name, config in VARIANTS.items():
        config, axes = grid_axes(NOISE, config)
        [(own, point)] = sweep.static_points(config, axes)
        program = sweep.program(NOISE, point, axes, own, config.group_size)
        values = sweep.axis_arrays(axes)
        program(np.arange(4), values)  # compile
        programs[name] = program, values
    times = {name: [] for name in programs}
    for _ in range(3):
        for name, (program, values) in programs.items():
            start = time.perf_counter()
            program(np.arange(SEEDS), values)
            times[name].append(time.perf_counter() - start)
    print("| variant | µs per seed-step |\n|---|---|")
    for name, measured in times.items():
        print(f"| {name} | {statistics.median(measured) / (SEEDS * STEPS) * 1e6:.1f} |")


if __name__ == "__main__":
    main()
