"""Rotated spectra: how far each practical preconditioner's learned first layer is from Σ^p's.

For each case (high/low), with the spectrum's eigenvectors on the axes (the paper) and randomly
rotated, and each p, every seed trains once per arm of
:data:`jaxprecond.experiments.rotated.ARMS` from the same data and init. Reported: the feature
distance ``‖M_arm − M_exact‖_F`` (``M = WᵀW/tr``) of the final first layer to the exact-Σ^p
run, and the final test MSE, seed-averaged with 95% intervals. Writes ``rotated_spectra.json``
and ``rotated_spectra.png`` to ``--out``.

Usage:
    python benchmarks/rotated_spectra.py [--seeds 8] [--steps 2000] [--dh 100] [--n 2000]
        [--powers -1 1] [--snr 1] [--out benchmarks/out]

The defaults are the ``benchmark`` preset of :mod:`jaxprecond.experiments.rotated`; the runs are
one sweep of the ``rotated`` experiment over ``rotate = [false, true]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxprecond.engine.stats import summarize_seeds  # noqa: E402
from jaxprecond.experiments.rotated import ARMS, PRESETS, ROTATED, RotatedConfig  # noqa: E402

BENCHMARK = PRESETS["benchmark"]


def run(config: RotatedConfig) -> dict:
    """Sweep ``config`` over ``rotate = [false, true]``; summarise every arm per grid point.

    Returns:
      ``{"<case>/<axes|rotated>/p=<p>/<arm>": {"distance": [mean, low, high],
      "test_mse": [mean, low, high]}}`` for every arm of :data:`ARMS` (``exact``'s distance to
      itself is 0).
    """
    start = time.perf_counter()
    results = ROTATED.sweep(config, axes={"rotate": [False, True]}, progress=False)
    seconds = time.perf_counter() - start
    summaries = {}
    for i, case in enumerate(results.values("case")):
        for k, rotated in enumerate(results.values("rotate")):
            for arm in sorted(("exact",) + config.arms):  # the JSON's order: arms by name
                mse = results.final(f"{arm}_test_mse")  # (case, p, rotate, seed)
                if arm == "exact":
                    distance = np.zeros_like(mse)
                else:
                    distance = results.final(f"{arm}_distance")
                for j, p in enumerate(results.values("p")):
                    d, m = summarize_seeds(distance[i, j, k]), summarize_seeds(mse[i, j, k])
                    summaries[f"{case}/{'rotated' if rotated else 'axes'}/p={p:g}/{arm}"] = {
                        "distance": [float(d.mean), float(d.ci_low), float(d.ci_high)],
                        "test_mse": [float(m.mean), float(m.ci_low), float(m.ci_high)],
                    }
    print(
        f"cases {', '.join(results.values('case'))} × axes/rotated × p "
        f"{', '.join(f'{p:g}' for p in results.values('p'))} × {len(results.seeds)} seeds: "
        f"{seconds:.1f} s (with compile)"
    )
    return summaries


def plot(results: dict, powers, path: Path) -> None:
    arms = [a for a in ARMS if a != "exact"]
    fig, axes = plt.subplots(2, len(powers), figsize=(4 * len(powers), 6), squeeze=False)
    for i, case in enumerate(("high", "low")):
        for j, p in enumerate(powers):
            ax = axes[i, j]
            for k, layout in enumerate(("axes", "rotated")):
                rows = [results[f"{case}/{layout}/p={p:g}/{arm}"]["distance"] for arm in arms]
                mean = np.array([r[0] for r in rows])
                err = np.abs(np.array([[r[1] for r in rows], [r[2] for r in rows]]) - mean)
                ax.bar(np.arange(len(arms)) + 0.4 * k - 0.2, mean, 0.4, yerr=err, label=layout)
            ax.set_xticks(np.arange(len(arms)), arms, rotation=20)
            ax.set_title(f"Case {case}, p = {p:g}")
            ax.set_ylabel("feature distance to exact Σ^p")
            ax.legend(title="eigenvectors")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=BENCHMARK.seeds)
    parser.add_argument("--steps", type=int, default=BENCHMARK.steps)
    parser.add_argument("--dh", type=int, default=BENCHMARK.dh)
    parser.add_argument("--n", type=int, default=BENCHMARK.n)
    parser.add_argument("--powers", type=float, nargs="+", default=list(BENCHMARK.powers))
    parser.add_argument("--snr", type=float, default=BENCHMARK.snr)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args(argv)
    config = dataclasses.replace(
        BENCHMARK, seeds=args.seeds, steps=args.steps, log_every=args.steps, dh=args.dh,
        n=args.n, powers=args.powers, snr=args.snr,
    )  # fmt: skip
    results = run(config)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rotated_spectra.json").write_text(json.dumps(results, indent=1))
    plot(results, config.powers, args.out / "rotated_spectra.png")
    print("| case | eigenvectors | p | " + " | ".join(a for a in ARMS if a != "exact") + " |")
    print("|---" * (3 + len(ARMS) - 1) + "|")
    for key in sorted({k.rsplit("/", 1)[0] for k in results}):
        case, layout, p = key.split("/")
        cells = [
            "{:.3f} [{:.3f}, {:.3f}]".format(*results[f"{key}/{arm}"]["distance"])
            for arm in ARMS
            if arm != "exact"
        ]
        print(f"| {case} | {layout} | {p[2:]} | " + " | ".join(cells) + " |")
    print("test MSE:")
    for key in sorted(results):
        print(key, "{:.4f} [{:.4f}, {:.4f}]".format(*results[key]["test_mse"]))


if __name__ == "__main__":
    main()
