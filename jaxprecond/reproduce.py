"""``jaxprecond reproduce``: run the three experiments and check the paper's claims.

Each experiment is written to its own folder under the run folder (so an interrupted run
resumes), then :mod:`jaxprecond.claims` turns the results into a table of claims, printed and
written to ``claims.md``. The Σ^p experiments run twice, with ``P = Σ^p`` as is and normalised
(by its largest eigenvalue, or to trace dx): at one learning rate ``p`` also changes the
effective step size (by ``λ^p`` along each eigen-direction), and a claim that holds both ways is
about spectral bias, not step size.

``quick=True`` is CPU-sized (under 10 minutes on 2 cores): the noise and transfer experiments at
their ``cpu`` presets, the synthetic OOD task at 32 seeds and a small MNIST run (3 optimizers,
2 seeds; drawn from the test split alone when the training split is absent).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from jaxprecond.checks import MissingFile, SettingError
from jaxprecond.claims import Claim, claims_table, noise_claims, ood_claims, transfer_claims
from jaxprecond.engine.folder import folder
from jaxprecond.engine.store import write_text
from jaxprecond.experiments.noise import NOISE
from jaxprecond.experiments.ood import OOD, OODConfig
from jaxprecond.experiments.transfer import TRANSFER

NORMALIZATIONS = ("max", "trace")


def plan(quick: bool, *, seeds: int | None = None) -> dict:
    """The configurations :func:`reproduce` runs: ``{"noise", "transfer", "synthetic",
    "images"}``, with ``P`` as is (the normalised runs are derived from them).

    Args:
      quick: the CPU-sized presets instead of the paper's settings.
      seeds: override the seeds of the noise, transfer and image runs (not the synthetic
        OOD task's).

    Returns:
      A dict name → config.

    Example:
      >>> configs = plan(True, seeds=2)
      >>> {name: config.seeds for name, config in sorted(configs.items())}
      {'images': 2, 'noise': 2, 'synthetic': 32, 'transfer': 2}
      >>> configs["noise"].steps, plan(False)["noise"].steps, plan(False)["synthetic"].seeds
      (2000, 10000, 256)
    """
    noise = NOISE.presets["cpu"] if quick else dataclasses.replace(NOISE.presets["paper"], seeds=16)
    transfer = TRANSFER.presets["cpu" if quick else "paper"]
    synthetic = dataclasses.replace(OOD.presets["synthetic"], seeds=32 if quick else 256)
    images = OOD.presets["quick" if quick else "cpu"]
    if seeds is not None:
        noise = dataclasses.replace(noise, seeds=seeds)
        transfer = dataclasses.replace(transfer, seeds=seeds)
        images = dataclasses.replace(images, seeds=seeds)
    return {"noise": noise, "transfer": transfer, "synthetic": synthetic, "images": images}


def _image_config(config: OODConfig, dataset: str, data_dir) -> tuple[OODConfig | None, str]:
    """The image run's config, falling back to the test split when the training split is
    absent; ``(None, reason)`` when the data set is not found at all."""
    from jaxprecond.tasks.idx import load_idx_dataset

    config = dataclasses.replace(config, dataset=dataset, data_dir=data_dir)
    try:
        load_idx_dataset(dataset, "train", data_dir=data_dir)
        return config, ""
    except MissingFile:
        pass
    try:
        load_idx_dataset(dataset, "test", data_dir=data_dir)
    except MissingFile as error:
        return None, str(error).splitlines()[0]
    note = f"{dataset}: training split not found; every pool drawn from the test split"
    return dataclasses.replace(config, test_split_only=True), note


def reproduce(
    out,
    *,
    quick: bool = True,
    normalize: str = "max",
    dataset: str = "mnist",
    data_dir=None,
    seeds: int | None = None,
    progress: bool = True,
) -> list[Claim]:
    """Run the experiments into ``out`` and write ``claims.md``.

    Args:
      out: the run folder (each experiment in a subfolder; resumed if present).
      quick: CPU-sized settings (see the module docstring) instead of the paper's.
      normalize: the second way to run Σ^p: ``"max"`` or ``"trace"``.
      dataset: the image set of the OOD experiment (``"mnist"`` or ``"fashion-mnist"``).
      data_dir: where to look for it first.
      seeds: override the seeds of the noise, transfer and image runs.
      progress: progress bars.

    Returns:
      The :class:`~jaxprecond.claims.Claim` rows, in the order of ``claims.md``.

    Raises:
      SettingError: ``normalize`` is not one of :data:`NORMALIZATIONS` (checked before anything
        runs).

    Example:
      Even ``quick`` runs take minutes; a bad setting is refused at once:

      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as d:
      ...     reproduce(d, normalize="none", progress=False)
      Traceback (most recent call last):
      ...
      jaxprecond.checks.SettingError: normalize must be one of ('max', 'trace'), got 'none'
    """
    if normalize not in NORMALIZATIONS:
        raise SettingError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    out = folder(out)
    configs = plan(quick, seeds=seeds)
    ways = ((None, "P = Σ^p"), (normalize, f"P normalised ({normalize})"))
    claims, notes, timings = [], [], []

    def timed(name, run):
        start = time.perf_counter()
        result = run()
        timings.append(f"{name}: {time.perf_counter() - start:.0f} s")
        return result

    for way, label in ways:
        suffix = way or "none"
        noise = dataclasses.replace(configs["noise"], normalize=way)
        results = timed(
            f"noise ({suffix})",
            lambda c=noise, s=suffix: NOISE.sweep(c, out=out / f"noise-{s}", progress=progress),
        )
        claims += noise_claims(results, setting=f"noise, {label}, ")
    for way, label in ways:
        suffix = way or "none"
        transfer = dataclasses.replace(configs["transfer"], normalize=way)
        results = timed(
            f"transfer ({suffix})",
            lambda c=transfer, s=suffix: TRANSFER.sweep(
                c, out=out / f"transfer-{s}", progress=progress
            ),
        )
        claims += transfer_claims(results, setting=f"transfer, {label}")

    images, note = _image_config(configs["images"], dataset, data_dir)
    if note:
        notes.append(note)
    ood_runs = [("synthetic", configs["synthetic"])]
    if images is not None:
        ood_runs.append((dataset, images))
    for name, config in ood_runs:
        results = timed(
            f"ood {name}",
            lambda c=config, n=name: OOD.sweep(c, out=out / f"ood-{n}-none", progress=progress),
        )
        claims += ood_claims(results, dataset=config.dataset, setting=f"OOD {name}, {ways[0][1]}")
        normalised = dataclasses.replace(config, optimizers=(), normalize=normalize)
        if normalised.powers:
            results = timed(
                f"ood {name} ({normalize})",
                lambda c=normalised, n=name: OOD.sweep(
                    c, out=out / f"ood-{n}-{normalize}", progress=progress
                ),
            )
            claims += ood_claims(
                results, dataset=config.dataset, setting=f"OOD {name}, {ways[1][1]}"
            )

    held = sum(c.holds for c in claims)
    text = [
        f"# Claims of Yoshida & Nitanda (2025), checked {'quick' if quick else 'full'}",
        "",
        f"{held} of {len(claims)} claim checks hold. A claim that does not hold is marked "
        "**no**; each experiment's own tables and figures are in its folder.",
        "",
        claims_table(claims),
        "",
        "Time: " + "; ".join(timings) + ".",
    ]
    if notes:
        text += ["", "Notes:", *[f"- {n}" for n in notes]]
    if images is None:
        text += [
            f"- the {dataset} OOD run was skipped: pass --data-dir, or --download where online"
        ]
    write_text(out / "claims.md", "\n".join(text) + "\n")
    return claims


def add_reproduce_parser(sub) -> None:
    """Register ``jaxprecond reproduce`` on an ``argparse`` subparsers object.

    Args:
      sub: the object ``ArgumentParser.add_subparsers()`` returns.

    Example:
      >>> import argparse
      >>> parser = argparse.ArgumentParser(prog="jaxprecond")
      >>> add_reproduce_parser(parser.add_subparsers(dest="command"))
      >>> args = parser.parse_args(["reproduce", "--quick", "--seeds", "2", "--normalize", "trace"])
      >>> args.command, args.quick, args.seeds, args.normalize, args.dataset, args.out
      ('reproduce', True, 2, 'trace', 'mnist', None)
    """
    p = sub.add_parser(
        "reproduce",
        help="run the three experiments and check the paper's claims",
        description="Run the noise, transfer and OOD experiments (Σ^p both as is and "
        "normalised) and print a table of the paper's claims with their statistics.",
    )
    p.add_argument("--quick", action="store_true", help="CPU-sized: under 10 minutes on 2 cores")
    p.add_argument(
        "--normalize",
        choices=NORMALIZATIONS,
        default="max",
        help="the second way to run Σ^p (default: divide P by its largest eigenvalue)",
    )
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", help="folder with the IDX files (see jaxprecond.tasks.idx)")
    p.add_argument("--seeds", type=int, help="seeds of the noise, transfer and image runs")
    p.add_argument("--out", help="run folder (default: runs/reproduce-<time>); resumed")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(handler=reproduce_command)


def reproduce_command(args) -> list[Claim]:
    """``jaxprecond reproduce``: run, print the claims table, say where it is.

    Args:
      args: the parsed arguments of :func:`add_reproduce_parser`'s subcommand (``out``:
        ``None`` for ``runs/reproduce-<time>``).

    Returns:
      The :class:`~jaxprecond.claims.Claim` rows.

    Example:
      The arguments go to :func:`reproduce` (which refuses a bad one before running):

      >>> import argparse, tempfile
      >>> with tempfile.TemporaryDirectory() as d:
      ...     args = argparse.Namespace(out=d, quick=True, normalize="l2", dataset="mnist",
      ...                               data_dir=None, seeds=1, no_progress=True)
      ...     reproduce_command(args)
      Traceback (most recent call last):
      ...
      jaxprecond.checks.SettingError: normalize must be one of ('max', 'trace'), got 'l2'
    """
    out = time.strftime("runs/reproduce-%Y%m%d-%H%M%S") if args.out is None else args.out
    start = time.perf_counter()
    claims = reproduce(
        out,
        quick=args.quick,
        normalize=args.normalize,
        dataset=args.dataset,
        data_dir=args.data_dir,
        seeds=args.seeds,
        progress=not args.no_progress,
    )
    print(Path(out, "claims.md").read_text())
    print(f"done in {time.perf_counter() - start:.0f} s; claims in {out}/claims.md")
    return claims


__all__ = ["add_reproduce_parser", "plan", "reproduce", "reproduce_command"]
