"""The README's figure: the spectral filter λ^(p+1) and the measured test MSE against p.

Left: the share of ``E tr(Xᵀ Σ^p X) = N Σ_r λ_r^(p+1)`` carried by Case High's one high-variance
direction (λ = 10) and by its nine low-variance ones (λ = 0.1), against p. Right: the final test
MSE of the noise experiment at SNR 1 (CPU preset: 2 000 steps; 16 seeds per point) against p,
in Case High and Case Low, with 95% intervals over seeds.

Usage:
    python docs/concept.py [--seeds 16] [--out docs/concept.png]   # about 2 min on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
from matplotlib.figure import Figure

from jaxprecond.experiments.noise import NOISE, PRESETS


def gram_shares(powers, large: float = 10.0, n_large: int = 1, n_small: int = 9):
    """Share of the Gram matrix's expected trace in the large and the small eigen-directions.

    Args:
      powers: the exponents ``p``.
      large: the large eigenvalue ``λ``; the small one is ``1/λ``.
      n_large, n_small: how many directions have each eigenvalue.

    Returns:
      ``(share_large, share_small)``, arrays shaped like ``powers``, summing to one.

    Example:
      >>> share_large, share_small = gram_shares(np.array([-1.0]))  # whitening: per direction
      >>> float(share_large[0]), float(share_small[0])
      (0.1, 0.9)
    """
    powers = np.asarray(powers, dtype=float)
    weight_large = n_large * large ** (powers + 1)
    weight_small = n_small * (1.0 / large) ** (powers + 1)
    total = weight_large + weight_small
    return weight_large / total, weight_small / total


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--out", default="docs/concept.png")
    args = parser.parse_args(argv)

    config = dataclasses.replace(PRESETS["cpu"], snrs=(1.0,), seeds=args.seeds)
    results = NOISE.sweep(config, progress=False)
    summary = results.summary("test_mse")  # (case, p, snr)

    fig = Figure(figsize=(10, 3.8))
    left, right = fig.subplots(1, 2)
    grid = np.linspace(-1.5, 1.5, 121)
    share_large, share_small = gram_shares(grid)
    left.plot(grid, share_large, color="tab:red", label="λ = 10 (1 direction)")
    left.plot(grid, share_small, color="tab:blue", label="λ = 0.1 (9 directions)")
    left.axvline(-1.0, color="grey", lw=0.8, ls=":")
    left.text(-1.04, 0.5, "p = −1: whitening", color="grey", fontsize=8, ha="right")
    left.set(
        xlabel="p", ylabel=r"share of tr $X^T\Sigma^pX$", title=r"Spectral filter $\lambda^{p+1}$"
    )
    left.legend(fontsize=8)

    powers = np.asarray(config.powers)
    for i, (case, color) in enumerate(zip(config.cases, ("tab:red", "tab:blue"), strict=True)):
        mean, low, high = summary.mean[i, :, 0], summary.ci_low[i, :, 0], summary.ci_high[i, :, 0]
        right.plot(powers, mean, "o-", color=color, label=f"Case {case.capitalize()}")
        right.fill_between(powers, low, high, color=color, alpha=0.2)
    right.set(
        xlabel="p",
        ylabel="final test MSE",
        title=f"Noise experiment, SNR 1, {config.seeds} seeds",
    )
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(results.table())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
