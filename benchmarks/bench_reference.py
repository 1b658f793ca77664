"""Seed-runs per hour: jaxprecond's sweep engine, the authors' PyTorch loop, a plain JAX loop.

Three arms run the same protocol (the noise experiment's Fig. 1 cell Case High, p = 1, SNR 1:
dx 10, dh 500, n 10 000 with 200 training points, full-batch GD, lr 1e-2, wd 1e-6, kaiming-uniform
× 1e-3 init with zero biases, first-layer weight gradient right-multiplied by Pᵀ with
P = diag(λ^p), train loss and test MSE on the 9 800 test points recorded every ``log_every``
steps, float32, fresh data and init per seed):

* ``jaxprecond``: many seeds in one compiled call of the sweep engine (the noise experiment's
  grid → ``jaxprecond.engine.sweep.program`` / ``run_chunk``, as ``sweep.run`` builds them; matmul
  precision HIGHEST), on ``--host-devices`` XLA host devices (default: one per core, as the
  ``jaxprecond`` console script does).
* ``torch``: the authors' training loop in PyTorch (``torch.set_num_threads(--threads)``), one
  seed at a time: data, ``nn.Sequential(Linear, ReLU, Linear)``, ``kaiming_uniform_`` × 1e-3,
  ``loss.backward()``, ``W1.grad ← W1.grad Pᵀ``, ``torch.optim.SGD``. The authors ran one seed per
  process; the start-up of such a process (``python -c "import torch"``) is measured separately
  and reported as a second figure.
* ``torch-1t``: the same loop with ``torch.set_num_threads(1)`` (on a loaded machine, two
  OpenMP threads on two busy cores can be far slower than one).
* ``jaxloop``: plain per-seed JAX, ``jax.jit`` of one step function and a Python loop over the
  steps, one seed at a time, one device.

Each measurement runs in a fresh process; arms alternate (A B C A B C ...) so that load on a
shared machine hits them alike; figures are medians over ``--repeats``. Compile time (JAX) and
one warm-up seed (torch, jaxloop) are excluded from the steady-state rate and reported apart.

Before timing, the torch loop replays the reference fixture
``../shared/reference/ref_high_p1_snr1_seed42.npz`` for 300 steps from its stored data and initial
weights and prints the largest relative deviation from the stored trajectories (skipped if the
fixture is absent).

Without torch installed the torch arm is skipped with a message (``pip install -e ".[bench]"``).

Usage:
    python benchmarks/bench_reference.py [--steps 2000] [--log-every 100] [--jax-seeds 64]
        [--torch-seeds 16] [--loop-seeds 16] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ARMS = ("jaxprecond", "torch", "torch-1t", "jaxloop")
FIXTURE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference"
FIXTURE = FIXTURE / "ref_high_p1_snr1_seed42.npz"

# The protocol (the reference's defaults); one cell of Fig. 1.
DX, DH, N, N_TRAIN, SCALE = 10, 500, 10_000, 200, 10.0
LR, WD, INIT_SCALE = 1e-2, 1e-6, 1e-3
CASE, POWER, SNR = "high", 1.0, 1.0


# --------------------------------------------------------------------------- torch arm


def torch_task(seed: int, torch):
    """One seed's data as the authors draw it: Case High spectrum, softplus teacher, noise."""
    gen = torch.Generator().manual_seed(seed)
    eigenvalues = torch.full((DX,), 1.0 / SCALE)
    eigenvalues[0] = SCALE  # Case High: the teacher on the large eigenvalue's axis
    x = torch.randn(N, DX, generator=gen) * eigenvalues.sqrt()
    beta = torch.zeros(DX)
    beta[0] = torch.randn(1, generator=gen)
    signal = torch.nn.functional.softplus(10.0 * (x @ beta))
    y = signal + torch.randn(N, generator=gen) * (signal.std(unbiased=False) / SNR)
    y_train, y_test = y[:N_TRAIN], y[N_TRAIN:]
    mean, std = y_train.mean(), y_train.std()  # unbiased, as the reference
    p_matrix = torch.diag(eigenvalues**POWER)
    return x[:N_TRAIN], (y_train - mean) / std, x[N_TRAIN:], (y_test - mean) / std, p_matrix


def torch_model(seed: int, torch):
    """``Linear(dx, dh) → ReLU → Linear(dh, 1)``, kaiming-uniform (a = 0) × 1e-3, zero biases."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(DX, DH), torch.nn.ReLU(), torch.nn.Linear(DH, 1))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            torch.nn.init.kaiming_uniform_(layer.weight, a=0)
            layer.weight.mul_(INIT_SCALE)
            layer.bias.zero_()
    return model


def torch_train(model, data, steps: int, log_every: int, torch):
    """The authors' loop: full-batch GD with the first-layer gradient right-multiplied by Pᵀ.

    Returns the train loss (before the step) and the test MSE (after it) at every
    ``log_every``-th step, as Python floats.
    """
    x_train, y_train, x_test, y_test, p_matrix = data
    w1, w2 = model[0].weight, model[2].weight
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    mse = torch.nn.functional.mse_loss
    train_loss, test_mse = [], []
    for t in range(steps):
        optimizer.zero_grad()
        out = model(x_train).squeeze(-1)
        loss = mse(out, y_train) + 0.5 * WD * (w1.pow(2).sum() + w2.pow(2).sum()) / N_TRAIN
        loss.backward()
        with torch.no_grad():
            w1.grad.copy_(w1.grad @ p_matrix.T)
        optimizer.step()
        if (t + 1) % log_every == 0:
            train_loss.append(loss.item())
            with torch.no_grad():
                test_mse.append(mse(model(x_test).squeeze(-1), y_test).item())
    return train_loss, test_mse


def torch_fixture_check(path: Path, steps: int = 300) -> dict:
    """Replay ``steps`` steps of a fixture with :func:`torch_train`: largest relative deviations."""
    import numpy as np
    import torch

    with np.load(path) as f:
        fx = {k: f[k] for k in f.files}
    meta = json.loads(str(fx["meta"]))
    assert (meta["lr"], meta["wd"], meta["dh"]) == (LR, WD, DH), meta
    model = torch_model(0, torch)
    with torch.no_grad():
        for layer, name in ((model[0], "1"), (model[2], "2")):
            layer.weight.copy_(torch.from_numpy(fx[f"W{name}_init"]))
            layer.bias.copy_(torch.from_numpy(fx[f"b{name}_init"]))
    data = tuple(
        torch.from_numpy(np.asarray(fx[k], np.float32))
        for k in ("X_train", "y_train", "X_test", "y_test", "P")
    )
    train_loss, test_mse = torch_train(model, data, steps, 1, torch)

    def deviation(ours, ref):
        ours, ref = np.asarray(ours, np.float64), np.asarray(ref[:steps], np.float64)
        return float(np.max(np.abs(ours - ref) / np.abs(ref)))

    return {
        "fixture": path.name,
        "steps": steps,
        "train_loss_max_rel_dev": deviation(train_loss, fx["train_loss"]),
        "test_mse_max_rel_dev": deviation(test_mse, fx["test_mse"]),
    }


def measure_torch(seeds: int, steps: int, log_every: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    # warm-up seed (not timed): allocator, MKL/oneDNN kernels
    torch_train(torch_model(10**6, torch), torch_task(10**6, torch), log_every, log_every, torch)
    finals = []
    start = time.perf_counter()
    for seed in range(seeds):
        data = torch_task(seed, torch)
        _, test_mse = torch_train(torch_model(seed, torch), data, steps, log_every, torch)
        finals.append(test_mse[-1])
    run_s = time.perf_counter() - start
    return {
        "seeds": seeds,
        "run_s": run_s,
        "overhead_s": 0.0,
        "final_test_mse_mean": statistics.fmean(finals),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


# --------------------------------------------------------------------------- jaxprecond arm


def measure_jaxprecond(seeds: int, steps: int, log_every: int) -> dict:
    import dataclasses

    import jax
    import numpy as np

    from jaxprecond.engine.experiment import grid_axes
    from jaxprecond.engine.sweep import axis_arrays, default_group_size, run_chunk, static_points
    from jaxprecond.engine.sweep import program as sweep_program
    from jaxprecond.experiments.noise import NOISE, NoiseConfig

    config = NoiseConfig(
        cases=(CASE,),
        powers=(POWER,),
        snrs=(SNR,),
        seeds=seeds,
        steps=steps,
        log_every=log_every,
        precision="highest",
    )
    # the program jaxprecond.engine.sweep.run compiles for this grid (every axis traced)
    config, axes = grid_axes(NOISE, config)
    config = dataclasses.replace(config, group_size=config.group_size or default_group_size())
    [(own, point)] = static_points(config, axes)
    program = sweep_program(NOISE, point, axes, own, config.group_size)
    devices = jax.local_devices()
    indices = np.arange(-(-seeds // len(devices)) * len(devices), dtype=np.uint32)
    values = axis_arrays(axes)
    start = time.perf_counter()
    run_chunk(program, devices, indices, values)  # compile + one full run
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    out = run_chunk(program, devices, indices, values)
    run_s = time.perf_counter() - start
    return {
        "seeds": len(indices),
        "run_s": run_s,
        "overhead_s": max(first_s - run_s, 0.0),  # compile (first call minus a warm call)
        "final_test_mse_mean": float(np.mean(out["test_mse"][..., -1])),
        "devices": len(devices),
        "jax": jax.__version__,
    }


# --------------------------------------------------------------------------- plain JAX loop arm


def measure_jaxloop(seeds: int, steps: int, log_every: int) -> dict:
    import jax
    import jax.numpy as jnp

    from jaxprecond.tasks.single_index import case_spectrum, sample_task
    from jaxprecond.tasks.student import init_mlp, mlp_apply, regression_loss

    highest = jax.lax.Precision.HIGHEST
    spectrum = case_spectrum(CASE, dx=DX, scale=SCALE)
    q = spectrum.eigenvectors
    p_matrix = jnp.matmul(q * spectrum.eigenvalues**POWER, q.T, precision=highest)

    @jax.jit
    def make_seed(key):
        key_data, key_init, _ = jax.random.split(key, 3)
        task = sample_task(key_data, spectrum, SNR, n=N, n_train=N_TRAIN)
        return task, init_mlp(key_init, DX, DH, scale=INIT_SCALE)

    def loss_fn(params, x, y):
        return regression_loss(params, x, y, weight_decay=WD, n_train=N_TRAIN, precision=highest)

    @jax.jit
    def step(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        grads = dict(grads, W1=jnp.matmul(grads["W1"], p_matrix.T, precision=highest))
        return jax.tree.map(lambda p, g: p - LR * g, params, grads), loss

    @jax.jit
    def test_mse(params, x, y):
        return jnp.mean((mlp_apply(params, x, highest) - y) ** 2)

    def one_seed(index, n_steps):
        task, params = make_seed(jax.random.fold_in(jax.random.key(0), index))
        train_loss, mse = [], []
        for t in range(n_steps):
            params, loss = step(params, task.x_train, task.y_train)
            if (t + 1) % log_every == 0:
                train_loss.append(float(loss))
                mse.append(float(test_mse(params, task.x_test, task.y_test)))
        return mse

    start = time.perf_counter()
    one_seed(10**6, log_every)  # compile + warm-up, not timed
    overhead_s = time.perf_counter() - start
    finals = []
    start = time.perf_counter()
    for index in range(seeds):
        finals.append(one_seed(index, steps)[-1])
    run_s = time.perf_counter() - start
    return {
        "seeds": seeds,
        "run_s": run_s,
        "overhead_s": overhead_s,
        "final_test_mse_mean": statistics.fmean(finals),
        "devices": 1,
        "jax": jax.__version__,
    }


# --------------------------------------------------------------------------- driver


def worker(arm: str, args) -> dict:
    if arm == "jaxprecond":
        return measure_jaxprecond(args.jax_seeds, args.steps, args.log_every)
    if arm == "torch":
        return measure_torch(args.torch_seeds, args.steps, args.log_every, args.threads)
    if arm == "torch-1t":
        return measure_torch(args.torch1_seeds, args.steps, args.log_every, 1)
    return measure_jaxloop(args.loop_seeds, args.steps, args.log_every)


def run_worker(arm: str, args) -> dict:
    env = dict(os.environ)
    devices = args.host_devices if arm == "jaxprecond" else 1
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"
    ).strip()
    env["JAXPRECOND_HOST_DEVICES"] = str(devices)
    command = [
        sys.executable,
        __file__,
        "--worker",
        arm,
        "--steps",
        str(args.steps),
        "--log-every",
        str(args.log_every),
        "--jax-seeds",
        str(args.jax_seeds),
        "--torch-seeds",
        str(args.torch_seeds),
        "--loop-seeds",
        str(args.loop_seeds),
        "--torch1-seeds",
        str(args.torch1_seeds),
        "--threads",
        str(args.threads),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise RuntimeError(f"{arm} worker failed (exit {done.returncode})")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def process_startup_s(threads: int, repeats: int = 3) -> float:
    """Median wall time of ``python -c "import torch"``: the per-seed cost of one process a seed."""
    code = f"import numpy, torch; torch.set_num_threads({threads})"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_hour(seeds: int, seconds: float) -> float:
    return seeds / seconds * 3600.0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--jax-seeds", type=int, default=64, help="seeds per jaxprecond call")
    parser.add_argument("--torch-seeds", type=int, default=1, help="seeds per torch measurement")
    parser.add_argument(
        "--torch1-seeds", type=int, default=4, help="seeds per torch-1t measurement"
    )
    parser.add_argument("--loop-seeds", type=int, default=16, help="seeds per jaxloop measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument(
        "--host-devices",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="XLA host devices for the jaxprecond arm (default: one per core)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--worker", choices=ARMS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps % args.log_every:
        parser.error("--steps must be a multiple of --log-every")
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return

    arms = list(args.arms)
    have_torch = importlib.util.find_spec("torch") is not None
    report: dict = {"argv": sys.argv[1:], "cores": len(os.sched_getaffinity(0))}
    torch_arms = [a for a in arms if a.startswith("torch")]
    if torch_arms and not have_torch:
        print('torch is not installed: skipping the torch arms (pip install -e ".[bench]")')
        arms = [a for a in arms if a not in torch_arms]
        torch_arms = []
    if torch_arms:
        if args.fixture.exists():
            check = torch_fixture_check(args.fixture)
            report["fixture_check"] = check
            print(
                f"torch loop vs {check['fixture']}, {check['steps']} steps: max rel. deviation "
                f"train loss {check['train_loss_max_rel_dev']:.1e}, "
                f"test MSE {check['test_mse_max_rel_dev']:.1e}"
            )
        else:
            print(f"fixture {args.fixture} not found: torch loop not checked against it")
        report["torch_process_startup_s"] = process_startup_s(args.threads)
        print(f"torch process start-up (import torch): {report['torch_process_startup_s']:.2f} s")

    print(
        f"protocol: Case {CASE}, p {POWER:g}, SNR {SNR:g}, {args.steps} steps, test MSE every "
        f"{args.log_every}; arms alternate, {args.repeats} repeats, each in a fresh process"
    )
    rows: dict[str, list[dict]] = {arm: [] for arm in arms}
    for repeat in range(args.repeats):
        for arm in arms:
            r = run_worker(arm, args)
            r["seed_runs_per_hour"] = per_hour(r["seeds"], r["run_s"])
            rows[arm].append(r)
            print(
                f"  repeat {repeat + 1} {arm:10s} {r['seeds']:4d} seeds in {r['run_s']:6.1f} s "
                f"(+{r['overhead_s']:.1f} s compile/warm-up): "
                f"{r['seed_runs_per_hour']:9.0f} seed-runs/h, final test MSE "
                f"{r['final_test_mse_mean']:.4f}",
                flush=True,
            )
    report["measurements"] = rows
    print()

    print(
        f"| arm | seeds per measurement | seed-runs/h at {args.steps} steps, median [min, max] "
        "| 10 000-step seed-runs/h | µs per seed-step | overhead s |"
    )
    print("|---|---|---|---|---|---|")
    medians = {}
    for arm, rs in rows.items():
        rates = [r["seed_runs_per_hour"] for r in rs]
        medians[arm] = statistics.median(rates)
        us = 3600e6 / medians[arm] / args.steps
        print(
            f"| {arm} | {rs[0]['seeds']} | {medians[arm]:.0f} [{min(rates):.0f}, {max(rates):.0f}] "
            f"| {medians[arm] * args.steps / 10_000:.0f} | {us:.0f} "
            f"| {statistics.median(r['overhead_s'] for r in rs):.1f} |"
        )
    for arm in (a for a in rows if a.startswith("torch")):
        startup = report["torch_process_startup_s"]
        seconds = statistics.median(r["run_s"] / r["seeds"] for r in rows[arm]) + startup
        report[f"{arm}_one_process_per_seed_per_hour"] = 3600.0 / seconds
        print(
            f"{arm} with one process per seed (+{startup:.2f} s start-up each): "
            f"{3600.0 / seconds:.0f} seed-runs/h"
        )
    if "jaxprecond" in rows:
        for other in (a for a in rows if a != "jaxprecond"):
            per_repeat = [
                a["seed_runs_per_hour"] / b["seed_runs_per_hour"]
                for a, b in zip(rows["jaxprecond"], rows[other], strict=True)
            ]
            report[f"ratio_jaxprecond_over_{other}"] = {
                "of_medians": medians["jaxprecond"] / medians[other],
                "per_repeat": per_repeat,
            }
            print(
                f"jaxprecond / {other}: {medians['jaxprecond'] / medians[other]:.1f}× "
                f"(ratio of medians; per repeat {', '.join(f'{x:.1f}' for x in per_repeat)})"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
