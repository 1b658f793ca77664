"""Command line: ``jaxprecond noise|ood|transfer|reproduce|sweep|report ...``.

Each command is a thin layer over a Python function."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from jaxprecond.noise import PRESETS, NoiseConfig, NoiseResults, run_noise
from jaxprecond.options import add_student_options, preset_with


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
    p.add_argument("--steps", type=int, help="gradient steps")
    p.add_argument("--log-every", type=int, help="record metrics every K steps")
    p.add_argument("--snr", type=float, nargs="+", dest="snrs", help="signal-to-noise ratios")
    p.add_argument("--cases", nargs="+", choices=["high", "low"], help="input-spectrum cases")
    p.add_argument("--weight-decay", type=float, help="L2 coefficient wd (loss + wd/2N Σ‖W‖²)")
    p.add_argument("--n", type=int, help="points drawn per seed (training + test)")
    p.add_argument("--n-train", type=int, help="training points (the first n_train of n)")
    p.add_argument("--batch-size", type=int, help="minibatch size (default: full batch)")
    add_student_options(p, "noise")


def noise_config(args: argparse.Namespace) -> NoiseConfig:
    """The preset named by ``args.preset`` with every given option replacing its value.

    Args:
      args: parsed ``noise`` arguments (see :func:`build_parser`); an option left out
        (``None``) keeps the preset's value.

    Returns:
      The :class:`~jaxprecond.noise.NoiseConfig` to run.

    Raises:
      ValueError: a setting the config rejects.

    Example:
      >>> args = build_parser().parse_args(["noise", "--seeds", "2", "--p", "-1", "1"])
      >>> cfg = noise_config(args)
      >>> cfg.seeds, cfg.powers, cfg.steps == PRESETS["cpu"].steps
      (2, (-1.0, 1.0), True)
    """
    return preset_with(PRESETS, args)


def noise_command(args: argparse.Namespace) -> NoiseResults:
    """The ``noise`` command: run the grid of :func:`noise_config` and print its table.

    The run folder is ``args.out`` (default ``runs/noise-<time>``); an unfinished run there with
    the same settings is resumed.

    Args:
      args: parsed ``noise`` arguments (see :func:`build_parser`).

    Returns:
      The :class:`~jaxprecond.noise.NoiseResults`.

    Raises:
      ValueError: a bad setting, before anything runs or is written.

    Example:
      >>> noise_command(build_parser().parse_args(["noise", "--seeds", "0"]))
      Traceback (most recent call last):
      ...
      ValueError: seeds must be a positive integer, got 0
    """
    config = noise_config(args)
    out = args.out or time.strftime("runs/noise-%Y%m%d-%H%M%S")
    cells = len(config.cases) * len(config.powers) * len(config.snrs)
    print(f"noise grid: {cells} cells x {config.seeds} seeds, {config.steps} steps -> {out}")
    start = time.perf_counter()
    results = run_noise(config, out=out, progress=not args.no_progress, group_size=args.group_size)
    elapsed = time.perf_counter() - start
    print(results.table())
    print(f"done in {elapsed:.1f} s; results in {out}/ (figure.png, summary.md, arrays.npz)")
    return results


def sweep_command(args: argparse.Namespace):
    """The ``sweep`` command: run or resume a sweep TOML file, then print its report.

    Args:
      args: parsed ``sweep`` arguments: the TOML file ``config``, ``out`` (overrides the
        file's ``out``) and ``no_progress``.

    Returns:
      The :class:`~jaxprecond.sweep.SweepResults` (``None`` on processes other than 0).

    Raises:
      ValueError: a bad file, or no run folder in the file nor in ``--out``.

    Example:
      >>> import os, tempfile
      >>> with tempfile.TemporaryDirectory() as d:
      ...     path = os.path.join(d, "sweep.toml")
      ...     with open(path, "w") as f:
      ...         _ = f.write('experiment = "noise"\\n[axes]\\np = [-1.0, 0.0]\\n')
      ...     sweep_command(build_parser().parse_args(["sweep", path]))  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: ...sweep.toml: give a run folder (out = ... in the file, or --out)
    """
    from jaxprecond.report import load_sweep_file, run_sweep_file

    out = args.out or load_sweep_file(args.config)[2]
    results = run_sweep_file(args.config, out=out, progress=not args.no_progress)
    if results is not None:  # process 0 (or the only process) prints the report
        print((Path(out) / "report.md").read_text())
    return results


def report_command(args: argparse.Namespace) -> str:
    """The ``report`` command: write and print ``report.md`` (and ``report.png``) of a run.

    Args:
      args: parsed ``report`` arguments: ``run_dir``, a sweep run folder (finished or partial).

    Returns:
      The report's Markdown text.

    Example:
      >>> import os, tempfile
      >>> import jax.numpy as jnp
      >>> from jaxprecond.sweep import Experiment, SweepSpec, run_sweep
      >>> cell = lambda key, v: {"test_mse": v["lr"] * jnp.ones(1), "train_loss": jnp.ones(1)}
      >>> toy = Experiment("toy", {}, allowed_axes={"lr": "numeric"}, steps=(0,),
      ...                  make_cell=lambda names: cell)
      >>> with tempfile.TemporaryDirectory() as d:
      ...     run = os.path.join(d, "run")
      ...     _ = run_sweep(SweepSpec(axes={"lr": (0.5, 1.5)}, seeds=2), toy, out=run,
      ...                   progress=False)
      ...     _ = report_command(build_parser().parse_args(["report", run]))  # doctest: +ELLIPSIS
      ...     print(sorted(os.listdir(run))[-2:])
      # Sweep report: run
      <BLANKLINE>
      all 2 seeds finished
      <BLANKLINE>
      | lr | test_mse (95% CI) | train_loss (95% CI) | seeds | diverged |
      |---|---|---|---|---|
      | 0.5 | 0.5000 [0.5000, 0.5000] | 1.0000 [1.0000, 1.0000] | 2 | 0 |
      | 1.5 | 1.5000 [1.5000, 1.5000] | 1.0000 [1.0000, 1.0000] | 2 | 0 |
      <BLANKLINE>
      report written to .../run/report.md and report.png
      ['report.md', 'report.png']
    """
    from jaxprecond.report import write_report

    text = write_report(args.run_dir)
    print(text)
    print(f"report written to {args.run_dir}/report.md and report.png")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxprecond`` argument parser, one sub-command per experiment plus ``sweep`` and
    ``report``.

    Returns:
      An ``argparse.ArgumentParser``; ``args.command`` names the sub-command, and options
      left out are ``None`` (they keep the preset's value).

    Example:
      >>> args = build_parser().parse_args(["noise", "--p", "-1", "0", "--cases", "high"])
      >>> args.command, args.powers, args.cases, args.preset, args.seeds
      ('noise', [-1.0, 0.0], ['high'], 'cpu', None)
      >>> build_parser().parse_args(["report", "runs/lr-sweep"]).run_dir
      'runs/lr-sweep'
    """
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
    """Entry point of the ``jaxprecond`` console script.

    Args:
      argv: the arguments (``None``: ``sys.argv[1:]``).

    Returns:
      The exit status: 0, or 2 after printing a bad setting or a missing file to stderr.

    Example:
      >>> import contextlib, sys
      >>> with contextlib.redirect_stderr(sys.stdout):
      ...     main(["noise", "--seeds", "0"])
      jaxprecond: error: seeds must be a positive integer, got 0
      2
    """
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

    Returns:
      :func:`main`'s exit status (of the restarted process when it restarts).

    Example:
      >>> import contextlib, os, sys
      >>> from unittest import mock
      >>> argv = ["jaxprecond", "noise", "--steps", "3", "--log-every", "2"]
      >>> with mock.patch.dict(os.environ, JAXPRECOND_HOST_DEVICES="1"), \\
      ...         mock.patch.object(sys, "argv", argv), contextlib.redirect_stderr(sys.stdout):
      ...     console_main()  # no restart: the opt-out is set
      jaxprecond: error: steps=3 must be a multiple of log_every=2
      2
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
