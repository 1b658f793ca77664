"""Command line: ``jaxprecond noise|ood|transfer|reproduce|sweep|report ...``.

Each command is a thin layer over a Python function."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from jaxprecond.noise import PRESETS, NoiseConfig, NoiseResults, run_noise


def _noise_parser(sub) -> None:
    p = sub.add_parser(
        "noise",
        help="robustness to label noise (paper Fig. 1a,b)",
        description="Train the case × p × SNR grid over seeds and write a run folder.",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="cpu",
        help="base settings: 'cpu' (a few minutes on 2 cores) or 'paper'",
    )
    p.add_argument("--seeds", type=int, help="seeds per cell")
    p.add_argument("--steps", type=int, help="gradient steps")
    p.add_argument("--log-every", type=int, help="record metrics every K steps")
    p.add_argument("--p", type=float, nargs="+", dest="powers", help="preconditioner powers")
    p.add_argument("--snr", type=float, nargs="+", dest="snrs", help="signal-to-noise ratios")
    p.add_argument("--cases", nargs="+", choices=["high", "low"], help="input-spectrum cases")
    p.add_argument("--lr", type=float, dest="learning_rate", help="learning rate")
    p.add_argument(
        "--normalize",
        choices=["max", "trace"],
        help="normalise P by its largest eigenvalue or to trace dx",
    )
    p.add_argument(
        "--init",
        choices=["kaiming", "gaussian"],
        help="kaiming-uniform x 1e-3 (reference) or w_j ~ N(0, sigma^2 P) (theory)",
    )
    p.add_argument(
        "--preconditioner",
        choices=["covariance_power", "adahessian"],
        help="exact Sigma^p on layer 1 (default) or AdaHessian with hessian_power=-p",
    )
    p.add_argument(
        "--probe",
        choices=["rademacher", "minus_ones"],
        help="AdaHessian's Hutchinson probe (minus_ones: as the authors' code ran)",
    )
    p.add_argument("--batch-size", type=int, help="minibatch size (default: full batch)")
    p.add_argument("--chunk-size", type=int, help="seeds per compiled call")
    p.add_argument(
        "--rotate", action="store_true", default=None, help="randomly rotate the eigenvectors of Σ"
    )
    p.add_argument("--root-seed", type=int, help="root of every seed's key")
    p.add_argument("--float64", action="store_true", default=None, help="compute in float64")
    p.add_argument(
        "--out",
        help="run folder (default: runs/noise-<time>); an unfinished run "
        "there with the same settings is resumed",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def noise_config(args: argparse.Namespace) -> NoiseConfig:
    """The preset named by ``args.preset`` with every given option replacing its value."""
    fields = {f.name for f in dataclasses.fields(NoiseConfig)}
    changes = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return dataclasses.replace(PRESETS[args.preset], **changes)


def noise_command(args: argparse.Namespace) -> NoiseResults:
    config = noise_config(args)
    out = args.out or time.strftime("runs/noise-%Y%m%d-%H%M%S")
    cells = len(config.cases) * len(config.powers) * len(config.snrs)
    print(f"noise grid: {cells} cells x {config.seeds} seeds, {config.steps} steps -> {out}")
    start = time.perf_counter()
    results = run_noise(config, out=out, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    print(results.table())
    print(f"done in {elapsed:.1f} s; results in {out}/ (figure.png, summary.md, arrays.npz)")
    return results


def sweep_command(args: argparse.Namespace):
    from jaxprecond.report import load_sweep_file, run_sweep_file

    out = args.out or load_sweep_file(args.config)[2]
    results = run_sweep_file(args.config, out=out, progress=not args.no_progress)
    if results is not None:  # process 0 (or the only process) prints the report
        print((Path(out) / "report.md").read_text())
    return results


def report_command(args: argparse.Namespace) -> str:
    from jaxprecond.report import write_report

    text = write_report(args.run_dir)
    print(text)
    print(f"report written to {args.run_dir}/report.md and report.png")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxprecond", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _noise_parser(sub)
    from jaxprecond.ood import add_ood_parser

    add_ood_parser(sub)
    from jaxprecond.transfer import add_transfer_parser

    add_transfer_parser(sub)
    from jaxprecond.reproduce import add_reproduce_parser

    add_reproduce_parser(sub)
    p = sub.add_parser("sweep", help="run or resume the sweep described by a TOML file")
    p.add_argument("config", help="sweep TOML file (see jaxprecond.report.load_sweep_file)")
    p.add_argument("--out", help="run folder (overrides the file's 'out')")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p = sub.add_parser("report", help="tables and figures of a finished or partial run")
    p.add_argument("run_dir", help="a sweep run folder")
    return parser


def main(argv=None) -> int:
    """Entry point of the ``jaxprecond`` console script."""
    args = build_parser().parse_args(argv)
    try:
        from jaxprecond.ood import ood_command
        from jaxprecond.reproduce import reproduce_command
        from jaxprecond.transfer import transfer_command

        commands = {
            "noise": noise_command,
            "sweep": sweep_command,
            "report": report_command,
            "ood": ood_command,
            "transfer": transfer_command,
            "reproduce": reproduce_command,
        }
        commands[args.command](args)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as error:
        print(f"jaxprecond: error: {error}", file=sys.stderr)
        return 2
    return 0


HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def console_main() -> int:
    """The console script: on a multi-core CPU, one XLA host device per core, then :func:`main`.

    Sweeps split every chunk over the local devices and run one program per device
    concurrently; XLA:CPU gives one device by default, whose small per-run operations use the
    cores poorly (measured: 1.6× the throughput with 2 devices on 2 cores, see
    benchmarks/RESULTS.md). XLA reads the flag only at start-up, so the command restarts itself
    once with it; set ``XLA_FLAGS`` yourself (any ``--xla_force_host_platform_device_count``)
    or ``JAXPRECOND_HOST_DEVICES=1`` to opt out.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    cores = os.cpu_count() or 1
    if HOST_DEVICES_FLAG not in flags and "JAXPRECOND_HOST_DEVICES" not in os.environ and cores > 1:
        import jax

        if jax.default_backend() == "cpu":
            env = dict(os.environ, XLA_FLAGS=f"{flags} {HOST_DEVICES_FLAG}={cores}".strip())
            env["JAXPRECOND_HOST_DEVICES"] = str(cores)
            argv = [sys.executable, "-m", "jaxprecond.cli", *sys.argv[1:]]
            os.execve(sys.executable, argv, env)
    return main()


if __name__ == "__main__":
    sys.exit(main())
