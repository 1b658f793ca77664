"""Command-line options shared by the experiments that train the two-layer student.

``jaxprecond noise`` and ``jaxprecond transfer`` both train the student of the noise experiment
(stage 1 of the transfer), so they take the same options for it; this module adds them once.
Every option defaults to ``None``: left out, it keeps the preset's value (:func:`preset_with`).
"""

from __future__ import annotations

import argparse
import dataclasses


def add_student_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the options of the student's training and of the run folder to ``parser``.

    Args:
      parser: the sub-command's parser.
      command: the sub-command's name (the default run folder is ``runs/<command>-<time>``).

    Example:
      >>> parser = argparse.ArgumentParser()
      >>> add_student_options(parser, "noise")
      >>> args = parser.parse_args(["--p", "-1", "1", "--lr", "0.1", "--group-size", "8"])
      >>> args.powers, args.learning_rate, args.group_size, args.dh, args.no_progress
      ([-1.0, 1.0], 0.1, 8, None, False)
    """
    p = parser
    p.add_argument("--seeds", type=int, help="seeds per cell")
    p.add_argument("--p", type=float, nargs="+", dest="powers", help="preconditioner powers")
    p.add_argument("--lr", type=float, dest="learning_rate", help="learning rate")
    p.add_argument("--dx", type=int, help="input dimension")
    p.add_argument("--dh", type=int, help="hidden width")
    p.add_argument(
        "--precision",
        choices=["highest", "high", "default"],
        help="matmul precision: highest = float32 (the reference arithmetic); default = TF32 on "
        "NVIDIA GPUs, bfloat16 passes on TPUs",
    )
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
    p.add_argument("--chunk-size", type=int, help="seeds per compiled call")
    p.add_argument(
        "--group-size",
        type=int,
        help="runs vmapped together inside a call (default: 4 on a CPU, up to 4096 elsewhere)",
    )
    p.add_argument(
        "--rotate", action="store_true", default=None, help="randomly rotate the eigenvectors of Σ"
    )
    p.add_argument("--root-seed", type=int, help="root of every seed's key")
    p.add_argument("--float64", action="store_true", default=None, help="compute in float64")
    p.add_argument(
        "--out",
        help=f"run folder (default: runs/{command}-<time>); an unfinished run "
        "there with the same settings is resumed",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def preset_with(presets: dict, args: argparse.Namespace):
    """The preset named by ``args.preset`` with every given option replacing its value.

    Args:
      presets: name → config dataclass.
      args: parsed options; those named like a config field and not ``None`` replace it.

    Returns:
      The config to run (validated by the dataclass, which raises ``ValueError``).

    Example:
      >>> from jaxprecond.noise import PRESETS
      >>> args = argparse.Namespace(preset="cpu", seeds=2, steps=None, group_size=8)
      >>> cfg = preset_with(PRESETS, args)
      >>> cfg.seeds, cfg.steps == PRESETS["cpu"].steps
      (2, True)
    """
    preset = presets[args.preset]
    fields = {f.name for f in dataclasses.fields(preset)}
    changes = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return dataclasses.replace(preset, **changes)
