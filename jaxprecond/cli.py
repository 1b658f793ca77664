"""Command line: ``jaxprecond noise|transfer|ood|rotated|reproduce|sweep|report ...``.

Each experiment's command is made from its definition: ``--preset`` and one option per setting
(help from the setting's field), every value checked by the setting's own check.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from jaxprecond.checks import UserError
from jaxprecond.engine import compile_cache


def _experiment_parser(sub, name: str) -> None:
    from jaxprecond.engine.config import add_options
    from jaxprecond.experiments import find

    experiment = find(name)
    p = sub.add_parser(name, help=experiment.description, description=experiment.description)
    presets = list(experiment.presets)
    p.add_argument("--preset", choices=presets, default=presets[0], help="base settings")
    add_options(p, experiment.config)
    p.add_argument(
        "--out",
        help=f"run folder (default: runs/{name}-<time>); a run there with the same settings "
        "is resumed, one with other settings refused",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=experiment_command)


def experiment_command(args: argparse.Namespace):
    """Run the experiment ``args.command`` (its preset with the options given), print its table.

    Returns:
      The results (a dict by arm for an experiment with several).

    Example:
      >>> experiment_command(build_parser().parse_args(["noise", "--seeds", "0"]))
      Traceback (most recent call last):
      ...
      jaxprecond.checks.SettingError: seeds must be a positive integer, got 0
    """
    from jaxprecond.engine.config import preset_with
    from jaxprecond.engine.experiment import grid_axes
    from jaxprecond.experiments import find

    experiment = find(args.command)
    config = preset_with(experiment.presets, args)
    out = time.strftime(f"runs/{args.command}-%Y%m%d-%H%M%S") if args.out is None else args.out
    arms = experiment.arms(config) if experiment.arms else {"": config}
    for arm, arm_config in arms.items():
        axes = grid_axes(experiment, arm_config)[1]
        grid = " x ".join(f"{len(a.values)} {a.name}" for a in axes)
        name = f"{args.command} {arm}".strip()
        print(f"{name}: {grid} x {config.seeds} seeds -> {Path(out, arm)}")
    start = time.perf_counter()
    results = experiment.sweep(config, out=out, progress=not args.no_progress)
    for part in results.values() if isinstance(results, dict) else [results]:
        print(part.table())
    print(f"done in {time.perf_counter() - start:.1f} s; results in {out}/ (report.md, figure.png)")
    return results


def sweep_command(args: argparse.Namespace):
    """Run or resume a sweep file, then print its report."""
    from jaxprecond.report import load_sweep_file, run_sweep_file

    out = load_sweep_file(args.config)[3] if args.out is None else args.out
    results = run_sweep_file(args.config, out=out, progress=not args.no_progress)
    if results is not None:  # process 0 (or the only process) prints the report
        print((Path(out) / "report.md").read_text())
    return results


def report_command(args: argparse.Namespace) -> list:
    """Write and print ``report.md`` (and ``figure.png``) of a run folder; return its results."""
    from jaxprecond.report import arm_folders, load_run, save_reports

    text, saved = save_reports(args.run_dir)
    print(text)
    if saved:
        print(f"report written to {args.run_dir}/report.md and figure.png")
    else:
        print(f"report printed, not saved: {args.run_dir}/report.md cannot be written")
    return [load_run(folder) for folder in arm_folders(args.run_dir)]


def loud_divergence(results) -> int:
    """Name every cell with diverged seeds on stderr; 3 if every seed of some cell diverged,
    else 0.

    Args:
      results: a command's results: ``SweepResults``, a dict or list of them, or anything else
        (no check).
    """
    from jaxprecond.engine.results import SweepResults
    from jaxprecond.engine.views import divergence

    if isinstance(results, SweepResults):
        results = [results]
    elif isinstance(results, dict):
        results = list(results.values())
    status = 0
    for part in results if isinstance(results, list) else []:
        if not isinstance(part, SweepResults):
            continue
        for cell, bad, seeds in divergence(part):
            message = f"{part.experiment.name}, {cell}: {bad} of {seeds} seeds diverged"
            print(f"jaxprecond: warning: {message}", file=sys.stderr)
            status = 3 if bad == seeds else status
    return status


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxprecond`` argument parser: one command per experiment, ``reproduce``,
    ``sweep`` and ``report``; options left out are ``None`` (the preset's value).

    Example:
      >>> args = build_parser().parse_args(["noise", "--p", "-1", "0", "--cases", "high"])
      >>> args.command, args.powers, args.cases, args.preset, args.seeds
      ('noise', [-1.0, 0.0], ['high'], 'cpu', None)
    """
    from jaxprecond.experiments import NAMES
    from jaxprecond.reproduce import add_reproduce_parser

    parser = argparse.ArgumentParser(prog="jaxprecond", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in NAMES:
        _experiment_parser(sub, name)
    add_reproduce_parser(sub)
    p = sub.add_parser("sweep", help="run or resume the sweep of a TOML file")
    p.add_argument("config", help="sweep file (see jaxprecond.report)")
    p.add_argument("--out", help="run folder (overrides the file's 'out')")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=sweep_command)
    p = sub.add_parser("report", help="table and figure of a finished or partial run")
    p.add_argument("run_dir", help="a run folder")
    p.set_defaults(handler=report_command)
    for parser_ in [parser, *sub.choices.values()]:  # before or after the command
        parser_.add_argument(
            "--no-compile-cache",
            action="store_true",
            default=argparse.SUPPRESS if parser_ is not parser else False,
            help="do not use JAX's persistent compilation cache (kept in "
            "~/.cache/jaxprecond/xla; also JAXPRECOND_COMPILE_CACHE=0, or =DIR for another folder)",
        )
    return parser


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    r"""Format a warning as one line, ``jaxprecond: warning: <message>`` (the command's warnings
    are for its user, not a traceback). :func:`main` installs it as ``warnings.formatwarning``
    while a command runs, so that recorded warnings are still recorded.

    Example:
      >>> one_line_warning(UserWarning("2 seeds\ndiverged"), UserWarning, "x.py", 1)
      'jaxprecond: warning: 2 seeds diverged\n'
    """
    text = " ".join(str(message).split("\n"))
    return f"jaxprecond: warning: {text}\n"


def main(argv=None) -> int:
    """Entry point: run a command; the user's errors (:class:`~jaxprecond.checks.UserError`)
    print one line and return 2, any other exception keeps its traceback. Diverged seeds are
    named on stderr; the status is 3 when every seed of some grid point diverged.

    JAX's persistent compilation cache is turned on before anything is compiled
    (:mod:`jaxprecond.engine.compile_cache`), unless ``--no-compile-cache`` is given (before or
    after the command) or ``JAXPRECOND_COMPILE_CACHE=0`` is set.

    Example:
      >>> import contextlib
      >>> with contextlib.redirect_stderr(sys.stdout):
      ...     main(["noise", "--seeds", "0"])
      jaxprecond: error: seeds must be a positive integer, got 0
      2
    """
    args = build_parser().parse_args(argv)
    if args.no_compile_cache:
        compile_cache.disable()
    else:
        compile_cache.enable()
    formatted, warnings.formatwarning = warnings.formatwarning, one_line_warning
    try:
        results = args.handler(args)
    except UserError as error:
        print(f"jaxprecond: error: {error}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = formatted
    return loud_divergence(results)


HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def console_main() -> int:
    """The console script: on a multi-core CPU, one XLA host device per core, then :func:`main`.

    Sweeps split every chunk over the local devices and run one program per device
    concurrently; XLA:CPU gives one device by default, whose small per-run operations use the
    cores poorly (1.6× the throughput with 2 devices on 2 cores, ``benchmarks/RESULTS.md``).
    XLA reads the flag only at start-up, so the command restarts itself once with it; set
    ``XLA_FLAGS`` yourself or ``JAXPRECOND_HOST_DEVICES=1`` to opt out. It also picks a
    non-interactive matplotlib backend (importing the package changes none).

    Returns:
      :func:`main`'s exit status (of the restarted process when it restarts).
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
    import matplotlib

    matplotlib.use("Agg")
    return main()


if __name__ == "__main__":
    sys.exit(console_main())
