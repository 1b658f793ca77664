"""Fig. 1 on one GPU: the whole noise grid × 1024 seeds through the sweep engine, timed.

The paper's Fig. 1a,b protocol (Case High/Low × p ∈ {−1, −0.5, 0, 0.5, 1} × SNR ∈ {0.25, 0.5,
1, 2, 4}; dx 10, dh 500, 200 training and 9 800 test points, full-batch GD with Σ^p on W1, lr
1e-2, wd 1e-6, test MSE every 100 steps) at ``--seeds`` seeds per cell, built on the sweep
engine (the ``NOISE`` experiment's grid → ``jaxprecond.engine.sweep.program``, as
``sweep.run`` builds it: one compiled program of a group of runs, every chunk's runs dealt to
it group by group). Reports
seed-steps per second, wall and compile time, and the fraction of the device's peak FLOP rate
and memory bandwidth reached, from an analytic count of FLOPs and bytes per seed-step (see
:func:`flops_per_seed_step` and :func:`bytes_per_seed_step`: estimates, not counters).

Budget guard: the whole script must fit ``--budget-s`` seconds (default 330, under 6 minutes
with the interpreter's start). A short timed warm-up (one group of runs, ``--warmup-steps``)
gives the rate; the steps of the main run are then the most that fit (a multiple of
``--log-every``, at most ``--steps``), and chunks of seeds stop early if the run falls behind.
Whatever was cut is reported, with the wall time ``--seeds`` × ``--project-steps`` (default
10 000) would have taken at the measured rate (compile included).

Matmul precision: ``--precision highest`` (full float32, the fidelity setting) or ``default``
(TF32 on an H100/H200: report it separately; it is not the reference arithmetic).

Writes a JSON summary (and an ``.npz`` of each seed's final test MSE and train loss) to
``$OUT`` if set, else the working directory: ``gpu_fig1.json`` for ``--precision highest``,
``gpu_fig1_<precision>.json`` otherwise (``--json`` overrides).

Usage (H200):
    python benchmarks/gpu_fig1.py                         # 1024 seeds, up to 10 000 steps, FP32
    python benchmarks/gpu_fig1.py --precision default     # the same in TF32
    python benchmarks/gpu_fig1.py --seeds 4 --steps 20 --log-every 10 --cases high \\
        --powers 1 --snrs 1                               # CPU smoke test (paper sizes)
    python benchmarks/gpu_fig1.py --seeds 4 --steps 20 --log-every 10 --warmup-steps 20 \\
        --dx 4 --dh 16 --n 96 --n-train 32 --precision default   # tiny (tests/test_gpu_script.py)
"""

from __future__ import annotations

import time

START = time.perf_counter()  # before importing JAX: the budget covers its start-up too

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

#: H200 SXM peaks (dense): FP32 on CUDA cores, TF32 on tensor cores, HBM3e bandwidth.
H200_FP32_TFLOPS = 67.0
H200_TF32_TFLOPS = 495.0
H200_HBM_TBS = 4.8
#: Size options (a tiny size for a CPU test); left out, NoiseConfig's (the paper's) sizes.
SIZES = {
    "--dx": "input dimension",
    "--dh": "hidden width",
    "--n": "points per seed (training + test)",
    "--n-train": "training points",
}


def flops_per_seed_step(dx: int, dh: int, n_train: int, n_test: int, log_every: int) -> dict:
    """Matmul FLOPs (2 per multiply-add) of one training step of one run, by part.

    Forward ``X W1ᵀ`` and ``H W2``; backward ``dW2 = Hᵀ r``, the rank-one ``r W2ᵀ`` (one multiply
    per element) and ``dW1 = G_Zᵀ X``; the preconditioning ``dW1 Pᵀ``; and, amortised over
    ``log_every`` steps, the test set's forward pass and the feature projections ``W1 [Q, β]``.
    Element-wise work (bias, ReLU and its mask, the update) is not counted.
    """
    parts = {
        "forward": 2 * n_train * dx * dh + 2 * n_train * dh,
        "backward": 2 * n_train * dh + n_train * dh + 2 * n_train * dx * dh,
        "precondition": 2 * dh * dx * dx,
        "evaluation": (2 * n_test * dx * dh + 2 * n_test * dh + 2 * dh * dx * (dx + 1)) / log_every,
    }
    parts["total"] = sum(parts.values())
    return parts


def bytes_per_seed_step(
    dx: int, dh: int, n_train: int, n_test: int, log_every: int, passes: int = 6
) -> dict:
    """A model of HBM traffic (float32 bytes) of one training step of one run.

    The (n_train, dh) activations dominate: with the runs of a group far beyond the L2 cache,
    each pass over them goes to HBM. ``passes`` = 6: the pre-activation written by the first
    matmul, read by the ReLU/output fusion, read again for ``dW2``, read and the masked
    gradient written, and that gradient read by the ``dW1`` matmul. The test pass writes and
    reads its (n_test, dh) pre-activation once per ``log_every`` steps. Parameters, inputs and
    the (dh, dx) gradient are added once each.
    """
    act = 4 * n_train * dh
    parts = {
        "activations": passes * act,
        "evaluation": 2 * 4 * n_test * dh / log_every,
        "parameters_and_inputs": 4 * (3 * dh * dx + 4 * dh + n_train * dx),
    }
    parts["total"] = sum(parts.values())
    return parts


def auto_group_size(runs: int, target: int) -> int:
    """The largest divisor of ``runs`` not above ``target`` (or ``target`` if that is tiny)."""
    best = max(d for d in range(1, min(runs, target) + 1) if runs % d == 0)
    return best if best * 4 >= min(runs, target) else target


def out_path(args) -> Path:
    if args.json is not None:
        return args.json
    name = "gpu_fig1.json" if args.precision == "highest" else f"gpu_fig1_{args.precision}.json"
    return Path(os.environ.get("OUT") or ".") / name


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1024, help="seeds per cell")
    parser.add_argument("--steps", type=int, default=10_000, help="steps wanted (target)")
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument(
        "--project-steps", type=int, default=10_000, help="steps of the projected full run"
    )
    parser.add_argument("--cases", nargs="+", default=["high", "low"])
    parser.add_argument("--powers", type=float, nargs="+", default=[-1.0, -0.5, 0.0, 0.5, 1.0])
    parser.add_argument("--snrs", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--precision", choices=["highest", "high", "default"], default="highest")
    for flag, what in SIZES.items():  # default: NoiseConfig's, the paper's sizes
        parser.add_argument(flag, type=int, default=None, help=f"{what} (default: the paper's)")
    parser.add_argument("--budget-s", type=float, default=330.0, help="wall-clock budget")
    parser.add_argument("--chunk-size", type=int, default=256, help="seeds per compiled call")
    parser.add_argument(
        "--group-size", type=int, default=0, help="runs vmapped together (0: auto, ≤ target)"
    )
    parser.add_argument("--group-target", type=int, default=4096)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--safety", type=float, default=0.85, help="fraction of time planned")
    parser.add_argument("--peak-fp32-tflops", type=float, default=H200_FP32_TFLOPS)
    parser.add_argument("--peak-tf32-tflops", type=float, default=H200_TF32_TFLOPS)
    parser.add_argument("--peak-hbm-tbs", type=float, default=H200_HBM_TBS)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.steps < args.log_every:
        print(f"--steps {args.steps} < --log-every {args.log_every}: logging every step block")
        args.log_every = args.steps
    if args.steps % args.log_every:
        parser.error("--steps must be a multiple of --log-every")
    args.chunk_size = min(args.chunk_size, args.seeds)
    return args


def main(argv=None) -> int:
    args = parse(argv)
    deadline = START + args.budget_s
    finish_margin = 10.0  # summaries, the result files, interpreter exit

    import jax
    import numpy as np

    from jaxprecond.engine.experiment import grid_axes
    from jaxprecond.engine.sweep import axis_arrays, program, run_chunk, static_points
    from jaxprecond.experiments.noise import NOISE, NoiseConfig

    device = jax.local_devices()[0]
    cells = len(args.cases) * len(args.powers) * len(args.snrs)
    runs_per_chunk = args.chunk_size * cells
    group = args.group_size or auto_group_size(runs_per_chunk, args.group_target)
    base = NoiseConfig(
        cases=tuple(args.cases),
        powers=tuple(args.powers),
        snrs=tuple(args.snrs),
        seeds=args.seeds,
        steps=args.steps,
        log_every=args.log_every,
        chunk_size=args.chunk_size,
        precision=args.precision,
        **{k: v for k in ("dx", "dh", "n", "n_train") if (v := getattr(args, k)) is not None},
    )
    flops = flops_per_seed_step(
        base.dx, base.dh, base.n_train, base.n - base.n_train, base.log_every
    )
    traffic = bytes_per_seed_step(
        base.dx, base.dh, base.n_train, base.n - base.n_train, base.log_every
    )
    startup_s = time.perf_counter() - START
    print(
        f"device: {device.device_kind} ({device.platform}), jax {jax.__version__}; "
        f"precision {args.precision}; grid {len(args.cases)}×{len(args.powers)}×"
        f"{len(args.snrs)} = {cells} cells × {args.seeds} seeds; chunk {args.chunk_size} seeds "
        f"({runs_per_chunk} runs), group {group} runs; start-up {startup_s:.1f} s",
        flush=True,
    )

    def build(config, seeds_per_call):
        config = dataclasses.replace(
            config, chunk_size=seeds_per_call, group_size=min(group, seeds_per_call * cells)
        )
        # the program jaxprecond.engine.sweep.run compiles for this grid (every axis traced)
        config, axes = grid_axes(NOISE, config)
        [(own, point)] = static_points(config, axes)
        jitted = program(NOISE, point, axes, own, config.group_size)
        values = axis_arrays(axes, config.float64)
        start = time.perf_counter()
        memory = jitted.lower().compile().memory_analysis()  # the executable the runs reuse
        compile_s = time.perf_counter() - start
        temp = getattr(memory, "temp_size_in_bytes", None) if memory is not None else None
        return jitted, values, compile_s, temp

    def timed(call):
        start = time.perf_counter()
        out = jax.block_until_ready(call())
        return out, time.perf_counter() - start

    # ---- warm-up: one group of runs, a few blocks, timed twice after compiling
    warm_steps = min(max(args.warmup_steps // args.log_every, 1) * args.log_every, args.steps)
    warm_seeds = min(args.chunk_size, max(1, math.ceil(group / cells)))
    warm_config = dataclasses.replace(base, steps=warm_steps, seeds=warm_seeds)
    compiled, values, warm_compile_s, warm_temp = build(warm_config, warm_seeds)
    idx = np.arange(warm_seeds, dtype=np.uint32)
    warm_times = [timed(lambda: run_chunk(compiled, [device], idx, values))[1] for _ in range(2)]
    warm_rate = warm_seeds * cells * warm_steps / min(warm_times)
    print(
        f"warm-up: {warm_seeds} seeds × {cells} cells × {warm_steps} steps; compile "
        f"{warm_compile_s:.1f} s; runs {', '.join(f'{t:.2f}' for t in warm_times)} s "
        f"→ {warm_rate:,.0f} seed-steps/s",
        flush=True,
    )

    # ---- plan the main run's steps from the warm-up rate and the time left
    left = deadline - time.perf_counter() - 1.1 * warm_compile_s - 2.0 - finish_margin
    affordable = max(left, 0.0) * args.safety * warm_rate / (args.seeds * cells)
    steps = min(args.steps, max(1, int(affordable // args.log_every)) * args.log_every)
    print(
        f"plan: {left:.0f} s left for running → {steps} of {args.steps} steps "
        f"(seeds stop early if the run falls behind)",
        flush=True,
    )
    if (steps, args.chunk_size) == (warm_steps, warm_seeds):  # the warm-up program is the one
        compile_s, temp = warm_compile_s, warm_temp
    else:
        compiled, values, compile_s, temp = build(
            dataclasses.replace(base, steps=steps), args.chunk_size
        )
    print(f"main program: compile {compile_s:.1f} s, XLA temp {temp and temp / 2**30:.2f} GiB")

    # ---- main run: chunks of seeds, stopped before the budget runs out
    n_chunks = math.ceil(args.seeds / args.chunk_size)
    chunk_times, finals, trains, curves, done = [], [], [], [], 0
    for k in range(n_chunks):
        if chunk_times and time.perf_counter() + max(chunk_times) > deadline - finish_margin:
            print(f"budget: stopping after {k} of {n_chunks} chunks")
            break
        start = k * args.chunk_size
        idx = np.arange(start, start + args.chunk_size, dtype=np.uint32)
        t0 = time.perf_counter()
        out = run_chunk(compiled, [device], idx, values)
        test_mse = out["test_mse"]  # (seed, case, p, snr, R)
        train_loss = out["train_loss"][..., -1]
        chunk_times.append(time.perf_counter() - t0)
        keep = min(args.chunk_size, args.seeds - start)
        finals.append(test_mse[:keep, ..., -1])
        trains.append(train_loss[:keep])
        curves.append(np.nansum(test_mse[:keep], axis=0))
        done += keep
        print(
            f"  chunk {k + 1}/{n_chunks}: {keep} seeds in {chunk_times[-1]:.1f} s "
            f"({keep * cells * steps / chunk_times[-1]:,.0f} seed-steps/s)",
            flush=True,
        )
    run_s = sum(chunk_times)
    rate = done * cells * steps / run_s
    wall_s = time.perf_counter() - START

    peak_flops = (
        args.peak_fp32_tflops if args.precision == "highest" else args.peak_tf32_tflops
    ) * 1e12
    achieved_flops = rate * flops["total"]
    achieved_bytes = rate * traffic["total"]
    full_run_s = compile_s + args.seeds * cells * args.project_steps / rate
    final = np.concatenate(finals)  # (seed, case, p, snr)
    train_final = np.concatenate(trains)
    diverged = ~np.isfinite(final)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(np.where(diverged, np.nan, final), axis=0)
        std = np.nanstd(np.where(diverged, np.nan, final), axis=0, ddof=1) if done > 1 else None
    curve = np.sum(curves, axis=0) / done  # (case, p, snr, R), mean over seeds
    cells_out = []
    for i, case in enumerate(args.cases):
        for j, p in enumerate(args.powers):
            for m, snr in enumerate(args.snrs):
                cells_out.append(
                    {
                        "case": case,
                        "p": p,
                        "snr": snr,
                        "final_test_mse_mean": float(mean[i, j, m]),
                        "final_test_mse_std": None if std is None else float(std[i, j, m]),
                        "diverged": int(diverged[:, i, j, m].sum()),
                        "test_mse_curve_mean": [float(v) for v in curve[i, j, m]],
                    }
                )
    stats = device.memory_stats() or {}
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "argv": sys.argv[1:],
        "device": {
            "kind": device.device_kind,
            "platform": device.platform,
            "count": jax.local_device_count(),
        },
        "jax": jax.__version__,
        "precision": args.precision,
        "grid": {"cases": args.cases, "powers": args.powers, "snrs": args.snrs, "cells": cells},
        "sizes": {
            "dx": base.dx,
            "dh": base.dh,
            "n_train": base.n_train,
            "n_test": base.n - base.n_train,
        },
        "seeds_requested": args.seeds,
        "seeds_done": done,
        "steps_target": args.steps,
        "steps_run": steps,
        "log_every": args.log_every,
        "chunk_size": args.chunk_size,
        "group_size": group,
        "budget_s": args.budget_s,
        "startup_s": startup_s,
        "warmup": {
            "seeds": warm_seeds,
            "steps": warm_steps,
            "compile_s": warm_compile_s,
            "run_s": warm_times,
            "seed_steps_per_s": warm_rate,
            "xla_temp_bytes": warm_temp,
        },
        "compile_s": compile_s,
        "xla_temp_bytes": temp,
        "peak_bytes_in_use": stats.get("peak_bytes_in_use"),
        "chunk_s": chunk_times,
        "run_s": run_s,
        "wall_s": wall_s,
        "seed_steps_per_s": rate,
        "us_per_seed_step": 1e6 / rate,
        "flops_per_seed_step": flops,
        "bytes_per_seed_step_model": traffic,
        "achieved_tflops": achieved_flops / 1e12,
        "peak_tflops_used": peak_flops / 1e12,
        "fraction_of_peak_flops": achieved_flops / peak_flops,
        "fraction_of_fp32_peak": achieved_flops / (args.peak_fp32_tflops * 1e12),
        "achieved_tb_per_s_model": achieved_bytes / 1e12,
        "fraction_of_peak_bandwidth_model": achieved_bytes / (args.peak_hbm_tbs * 1e12),
        "projected_full_run_s": full_run_s,
        "projected_steps": args.project_steps,
        "cells": cells_out,
    }
    path = out_path(args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    np.savez_compressed(
        path.with_suffix(".npz"),
        final_test_mse=final,
        final_train_loss=train_final,
        cases=np.array(args.cases),
        powers=np.array(args.powers),
        snrs=np.array(args.snrs),
    )

    peak_name = "FP32" if args.precision == "highest" else "TF32"
    print(
        f"\n{done} seeds × {cells} cells × {steps} steps in {run_s:.1f} s "
        f"(+ compile {compile_s:.1f} s; wall {wall_s:.1f} s of the {args.budget_s:.0f} s budget)\n"
        f"  {rate:,.0f} seed-steps/s = {1e6 / rate:.3f} µs per seed-step\n"
        f"  {flops['total'] / 1e6:.2f} MFLOP per seed-step → {achieved_flops / 1e12:.2f} TFLOP/s "
        f"= {achieved_flops / peak_flops:.1%} of the {peak_name} peak "
        f"({peak_flops / 1e12:.0f} TFLOP/s)\n"
        f"  {traffic['total'] / 1e6:.2f} MB per seed-step (model) → "
        f"{achieved_bytes / 1e12:.2f} TB/s = {achieved_bytes / (args.peak_hbm_tbs * 1e12):.1%} "
        f"of {args.peak_hbm_tbs:g} TB/s\n"
        f"  the full {args.seeds} seeds × {args.project_steps} steps: about {full_run_s:.0f} s "
        f"at this rate (compile included)\n"
        f"  XLA temp {temp and temp / 2**30:.2f} GiB, peak in use "
        f"{stats.get('peak_bytes_in_use', 0) / 2**30:.2f} GiB; "
        f"diverged runs {int(diverged.sum())}\n"
        f"  wrote {path} and {path.with_suffix('.npz')}"
    )
    print("\n| case | p | SNR | final test MSE (mean ± sd over seeds) |\n|---|---|---|---|")
    for c in cells_out:
        sd = "" if c["final_test_mse_std"] is None else f" ± {c['final_test_mse_std']:.4f}"
        print(f"| {c['case']} | {c['p']:g} | {c['snr']:g} | {c['final_test_mse_mean']:.4f}{sd} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
