"""How much the authors' AdaHessian probe (all −1: D = H·1) differs from a Rademacher one.

Two measurements:
1. At the reference initialisation of a fixture, the relative distance between the row sums
   ``H·1`` (what pytorch-optimizer 3.x computed) and the Hessian diagonal (Hutchinson mean over
   many Rademacher probes), per parameter array.
2. The noise experiment's AdaHessian arm with either probe (same seeds, same data): final test
   MSE per case and p, seed-averaged.

Usage:
    python benchmarks/adahessian_probes.py [--fixture ../shared/reference/adahessian_....npz]
        [--seeds 4] [--steps 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxprecond.engine.stats import DivergenceWarning
from jaxprecond.experiments.noise import NOISE, NoiseConfig
from jaxprecond.optim.adahessian import hutchinson_diagonal
from jaxprecond.tasks.student import from_torch, regression_loss


def diagonal_vs_row_sums(fixture: str, samples: int) -> dict:
    with np.load(fixture) as f:
        params = from_torch(f["W1_init"], f["b1_init"], f["W2_init"], f["b2_init"])
        x, y = jnp.asarray(f["X_train"]), jnp.asarray(f["y_train"])

    def loss(p):
        return regression_loss(p, x, y, weight_decay=0.0, n_train=x.shape[0])

    key = jax.random.key(0)
    rows = hutchinson_diagonal(loss, params, key, probe="minus_ones")
    diag = jax.jit(lambda k: hutchinson_diagonal(loss, params, k, samples=samples))(key)
    return {
        name: float(jnp.linalg.norm(rows[name] - diag[name]) / jnp.linalg.norm(diag[name]))
        for name in params
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fixture", default="../shared/reference/adahessian_rademacher_high_p1_seed42.npz"
    )
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
    distances = diagonal_vs_row_sums(args.fixture, args.samples)
    print(f"‖H·1 − diag H‖ / ‖diag H‖ at the fixture's init ({args.samples} Rademacher probes):")
    for name, value in distances.items():
        print(f"  {name}: {value:.3f}")
    config = NoiseConfig(
        powers=(-1.0, 0.0, 1.0),
        snrs=(1.0,),
        seeds=args.seeds,
        steps=args.steps,
        preconditioner="adahessian",
    )
    results = {
        probe: NOISE.sweep(dataclasses.replace(config, probe=probe), progress=False)
        for probe in ("rademacher", "minus_ones")
    }
    print(f"\nfinal test MSE, AdaHessian arm, SNR 1, {args.seeds} seeds, {args.steps} steps")
    print("| case | p | rademacher | minus_ones |")
    print("|---|---|---|---|")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        means = {probe: r.summary("test_mse").mean for probe, r in results.items()}
    for i, case in enumerate(config.cases):
        for j, p in enumerate(config.powers):
            print(
                f"| {case} | {p:g} | {means['rademacher'][i, j, 0]:.4f} "
                f"| {means['minus_ones'][i, j, 0]:.4f} |"
            )


if __name__ == "__main__":
    main()
