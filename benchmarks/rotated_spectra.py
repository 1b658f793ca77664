"""Rotated spectra: how far each practical preconditioner's learned first layer is from Σ^p's.

For each case (high/low), with the spectrum's eigenvectors on the axes (the paper) and randomly
rotated, and each p, every seed trains once per arm of :data:`jaxprecond.experiments.rotated.ARMS` from the
same data and init. Reported: the feature distance ``‖M_arm − M_exact‖_F`` (``M = WᵀW/tr``) of
the final first layer to the exact-Σ^p run, and the final test MSE, seed-averaged with 95%
intervals. Writes ``rotated_spectra.json`` and ``rotated_spectra.png`` to ``--out``.

Usage:
    python benchmarks/rotated_spectra.py [--seeds 8] [--steps 2000] [--dh 100] [--n 2000]
        [--powers -1 1] [--out benchmarks/out]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxprecond.tasks.single_index import case_spectrum, random_rotation  # noqa: E402
from jaxprecond.experiments.noise import NoiseConfig  # noqa: E402
from jaxprecond.experiments.rotated import ARMS, compare_arms, feature_distance  # noqa: E402
from jaxprecond.engine.stats import summarize_seeds  # noqa: E402


def run(config: NoiseConfig, powers, seeds: int) -> dict:
    rotation = random_rotation(jax.random.key(2**31 - 1), config.dx)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(seeds))
    results = {}
    for case in ("high", "low"):
        for rotated in (False, True):
            spectrum = case_spectrum(case, rotation=rotation if rotated else None)

            def cell(key, p, spectrum=spectrum):
                out = compare_arms(key, spectrum, p, config=config)
                return {
                    arm: (feature_distance(out[arm]["W1"], out["exact"]["W1"]), o["test_mse"])
                    for arm, o in out.items()
                }

            grid = jax.jit(jax.vmap(jax.vmap(cell, (None, 0)), (0, None)))
            start = time.perf_counter()
            out = jax.block_until_ready(grid(keys, jnp.asarray(powers, config.dtype)))
            seconds = time.perf_counter() - start
            for arm, (distance, mse) in out.items():
                for j, p in enumerate(powers):
                    d, m = summarize_seeds(distance[:, j]), summarize_seeds(mse[:, j])
                    results[f"{case}/{'rotated' if rotated else 'axes'}/p={p:g}/{arm}"] = {
                        "distance": [float(d.mean), float(d.ci_low), float(d.ci_high)],
                        "test_mse": [float(m.mean), float(m.ci_low), float(m.ci_high)],
                    }
            print(f"{case} {'rotated' if rotated else 'axes'}: {seconds:.1f} s (with compile)")
    return results


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--dh", type=int, default=100)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--powers", type=float, nargs="+", default=[-1.0, 1.0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args()
    config = NoiseConfig(dh=args.dh, n=args.n, steps=args.steps, log_every=args.steps)
    results = run(config, args.powers, args.seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rotated_spectra.json").write_text(json.dumps(results, indent=1))
    plot(results, args.powers, args.out / "rotated_spectra.png")
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
