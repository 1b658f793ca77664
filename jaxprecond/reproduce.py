"""``jaxprecond reproduce``: run the three experiments and test the paper's claims.

Each run is written to its own folder under the run folder (so an interrupted run resumes), then
:mod:`jaxprecond.claims` turns the results into claim rows, each with a three-valued verdict,
its statistic, interval and seeds; they are printed and written to ``claims.md`` with a figure
per claim (``figures/``). The runs:

* the noise experiment with ``P = Σ^p`` as is and normalised (by default coordinate-free: the
  same largest step in whitened coordinates for every ``p``, see
  :func:`~jaxprecond.optim.covariance_power.preconditioner_eigh`);
* Case Low again with the teacher scaled by 10 (the whitened scale of Case High's teacher), for
  neutrality with the teacher scale equalised;
* the AdaHessian arm with both probes (Fig. 1c,d);
* the learning-rate-tuned study (:mod:`jaxprecond.tuning`): the step-size confound controlled;
* the transfer experiment, as is and normalised;
* the OOD experiment on the synthetic task and an image set, its Σ^p arm as is and normalised.

``quick=True`` is CPU-sized (under 10 minutes on 2 cores); ``quick=False`` runs the paper's
settings at 16 seeds.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from jaxprecond import claim_figures as figures
from jaxprecond.checks import MissingFile, SettingError
from jaxprecond.claims import (
    Claim,
    claims_table,
    floor_claims,
    gap_claims,
    neutrality_claims,
    ood_claims,
    spectral_bias_claims,
    transfer_claims,
)
from jaxprecond.engine.folder import folder
from jaxprecond.engine.store import write_text
from jaxprecond.experiments.noise import NOISE
from jaxprecond.experiments.ood import OOD, OODConfig
from jaxprecond.experiments.transfer import TRANSFER
from jaxprecond.tuning import QUICK_RATES, RATES, study_figure, study_table, tuned_study

NORMALIZATIONS = ("whitened", "max", "trace")
PROBES = ("rademacher", "minus_ones")
#: The noise runs' powers: symmetric about p = −1 (the duality pairs p with −2−p), so that the
#: crossing of the two cases' curves can be located on both sides of −1.
QUICK_POWERS = (-3.0, -2.0, -1.0, 0.0, 1.0)
POWERS = (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0)
QUICK_OPTIMIZERS = ("gd", "sam", "adam", "kfac", "lbfgs")


def plan(quick: bool, *, seeds: int | None = None) -> dict:
    """The configurations :func:`reproduce` runs, with ``P = Σ^p`` as is (the normalised runs
    are derived from them).

    Args:
      quick: the CPU-sized presets instead of the paper's settings.
      seeds: override the seeds of every run but the synthetic OOD task's.

    Returns:
      A dict name → config: ``noise``, ``equalised`` (Case Low, teacher × 10), ``adahessian``,
      ``tuning`` (the tuned study's evaluation seeds), ``transfer``, ``synthetic``, ``images``.

    Example:
      >>> configs = plan(True, seeds=2)
      >>> {n: c.seeds for n, c in sorted(configs.items()) if hasattr(c, "seeds")}
      {'adahessian': 2, 'equalised': 2, 'images': 2, 'noise': 2, 'synthetic': 32, 'transfer': 2, \
'tuning': 2}
      >>> configs["equalised"].cases, configs["equalised"].teacher_scale
      (('low',), 10.0)
      >>> plan(True)["noise"].seeds, plan(False)["noise"].steps, plan(False)["synthetic"].seeds
      (10, 10000, 256)
    """
    if quick:
        noise = dataclasses.replace(
            NOISE.presets["cpu"], powers=QUICK_POWERS, seeds=10, steps=1_000
        )
        adahessian = dataclasses.replace(noise, powers=(-1.0, 0.0, 1.0), snrs=(1.0,), seeds=8)
        tuning = dataclasses.replace(noise, powers=(-3.0, -1.0, 1.0), steps=500, seeds=8)
        transfer = dataclasses.replace(TRANSFER.presets["cpu"], seeds=8)
        images = dataclasses.replace(OOD.presets["quick"], seeds=8)
    else:
        noise = dataclasses.replace(NOISE.presets["paper"], powers=POWERS, seeds=16)
        adahessian = dataclasses.replace(noise, powers=NOISE.presets["paper"].powers)
        tuning = dataclasses.replace(noise, snrs=(0.25, 1.0, 4.0))
        transfer = TRANSFER.presets["paper"]
        images = OOD.presets["cpu"]
    configs = {
        "noise": noise,
        "equalised": dataclasses.replace(noise, cases=("low",), teacher_scale=10.0),
        "adahessian": dataclasses.replace(adahessian, preconditioner="adahessian"),
        "tuning": tuning,
        "transfer": transfer,
        "images": images,
    }
    if seeds is not None:
        configs = {n: dataclasses.replace(c, seeds=seeds) for n, c in configs.items()}
    synthetic = dataclasses.replace(OOD.presets["synthetic"], seeds=256)
    if quick:  # one or two optimizers of each group of the ranking claim
        synthetic = dataclasses.replace(  # a group of 32 runs: no idle half of the preset's 64
            synthetic, seeds=32, optimizers=QUICK_OPTIMIZERS, group_size=32
        )
    return configs | {"synthetic": synthetic}


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
    normalize: str = "whitened",
    dataset: str = "mnist",
    data_dir=None,
    seeds: int | None = None,
    progress: bool = True,
) -> list[Claim]:
    """Run the experiments into ``out`` and write ``claims.md`` and ``figures/``.

    Args:
      out: the run folder (each run in a subfolder; resumed if present).
      quick: CPU-sized settings (see the module docstring) instead of the paper's.
      normalize: the second way to run Σ^p: ``"whitened"``, ``"max"`` or ``"trace"``.
      dataset: the image set of the OOD experiment (``"mnist"`` or ``"fashion-mnist"``).
      data_dir: where to look for it first.
      seeds: override the seeds of every run but the synthetic OOD task's.
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
      jaxprecond.checks.SettingError: normalize must be one of ('whitened', 'max', 'trace'), \
got 'none'
    """
    if normalize not in NORMALIZATIONS:
        raise SettingError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    out = folder(out)
    configs = plan(quick, seeds=seeds)
    ways = ((None, "P = Σ^p"), (normalize, f"P normalised ({normalize})"))
    claims, notes, timings, sections = [], [], [], []

    def timed(name, run):
        start = time.perf_counter()
        result = run()
        timings.append(f"{name}: {time.perf_counter() - start:.0f} s")
        return result

    def draw(name, fig):
        path = out / "figures" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        fig.savefig(path, dpi=90)
        return f"figures/{name}.png"

    def sweep(experiment, config, name):
        return timed(name, lambda: experiment.sweep(config, out=out / name, progress=progress))

    noise_runs = {}
    for way, label in ways:
        name = f"noise-{way or 'none'}"
        results = noise_runs[way] = sweep(
            NOISE, dataclasses.replace(configs["noise"], normalize=way), name
        )
        setting = f"noise, {label}, "
        claims += spectral_bias_claims(
            results,
            setting=setting,
            figure=draw(f"{name}-bias", figures.spectral_bias_figure(results)),
        )
        claims += gap_claims(
            results, setting=setting, figure=draw(f"{name}-gaps", figures.gap_figure(results))
        )
        claims += floor_claims(
            results, setting=setting, figure=draw(f"{name}-floor", figures.floor_figure(results))
        )
        claims += neutrality_claims(
            results,
            results,
            setting=f"{setting}teacher as the authors ran it, ",
            figure=draw(f"{name}-neutrality", figures.neutrality_figure(results, results)),
        )
    equalised = sweep(NOISE, configs["equalised"], "noise-equalised")
    claims += neutrality_claims(
        noise_runs[None],
        equalised,
        setting="noise, P = Σ^p, Case Low's teacher × 10, ",
        figure=draw(
            "noise-equalised-neutrality", figures.neutrality_figure(noise_runs[None], equalised)
        ),
    )
    for probe in PROBES:
        name = f"noise-adahessian-{probe}"
        results = sweep(NOISE, dataclasses.replace(configs["adahessian"], probe=probe), name)
        claims += spectral_bias_claims(
            results,
            setting=f"AdaHessian (hessian_power = −p, {probe} probe), ",
            figure=draw(f"{name}-bias", figures.spectral_bias_figure(results)),
        )
    rates = QUICK_RATES if quick else RATES
    study = timed(
        "tuned learning rates",
        lambda: tuned_study(
            configs["tuning"],
            rates,
            tuning_seeds=3 if quick else 8,
            out=out / "noise-tuned",
            progress=progress,
        ),
    )
    figure = draw("noise-tuned", study_figure(study))
    claims += spectral_bias_claims(
        study.results, setting="noise, lr tuned per (case, p), ", figure=figure
    )
    claims += neutrality_claims(
        study.results, study.results, setting="noise, lr tuned per (case, p), ", figure=figure
    )
    sections += ["## Learning rates tuned per (case, p)", "", study_table(study), ""]

    for way, label in ways:
        name = f"transfer-{way or 'none'}"
        results = sweep(TRANSFER, dataclasses.replace(configs["transfer"], normalize=way), name)
        claims += transfer_claims(
            results,
            setting=f"transfer, {label}",
            figure=draw(name, figures.transfer_figure(results)),
        )

    images, note = _image_config(configs["images"], dataset, data_dir)
    if note:
        notes.append(note)
    ood_runs = [("synthetic", configs["synthetic"])]
    if images is not None:
        ood_runs.append((dataset, images))
    for name, config in ood_runs:
        for way, label in ways:
            if way is not None:  # the Σ^p arm alone is normalised
                config = dataclasses.replace(config, optimizers=(), normalize=way)
                if not config.powers:
                    continue
            run = f"ood-{name}-{way or 'none'}"
            results = sweep(OOD, config, run)
            claims += ood_claims(
                results,
                setting=f"OOD {name}, {label}",
                figure=draw(run, figures.ood_figure(results)),
            )

    counts = {v: sum(c.verdict == v for c in claims) for v in ("holds", "fails", "inconclusive")}
    text = [
        f"# Claims of Yoshida & Nitanda (2025), tested {'quick' if quick else 'full'}",
        "",
        f"{len(claims)} rows: {counts['holds']} hold, {counts['fails']} fail, "
        f"{counts['inconclusive']} inconclusive. A verdict holds only when its test is "
        "significant (α = 0.05, Holm-adjusted across the rows of one claim) in the claimed "
        "direction, fails only when significant the other way; each row names its statistic, "
        "its seeds and those that diverged. See `jaxprecond.claims` for the statistics.",
        "",
        claims_table(claims),
        "",
        *sections,
        "## Figures",
        "",
        *[f"![{f}]({f})" for f in dict.fromkeys(c.figure for c in claims if c.figure)],
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
        default="whitened",
        help="the second way to run Σ^p (default: the same largest step in whitened "
        "coordinates for every p)",
    )
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", help="folder with the IDX files (see jaxprecond.tasks.idx)")
    p.add_argument("--seeds", type=int, help="seeds of every run but the synthetic OOD task's")
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
      jaxprecond.checks.SettingError: normalize must be one of ('whitened', 'max', 'trace'), \
got 'l2'
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
