"""The noise experiment's claims at the paper's size, in a run that fits 2 hours on 2 cores.

``jaxprecond reproduce`` without ``--quick`` needs about 4–5 hours on 2 CPU cores at the fewest
seeds a sign-flip test can decide on (its 8-rate tuned study alone is about 31 M seed-steps).
This script runs the part of it that carries the paper's Fig. 1 claims at full size — the noise
experiment with ``P = Σ^p`` exactly as ``reproduce`` configures it (10 000 steps, n = 10 000 of
which 200 train, 8 powers, 5 SNRs) and the run with Case Low's teacher × 10 — and tests the
claims ``reproduce`` tests on them, with the same functions: the spectral bias, the train/test
gap, the gaps against SNR, the noise floor and neutrality (as the authors ran it and with the
teacher's scale equalised). The run folder resumes like any other.

Usage::

    python benchmarks/paper_noise_claims.py --seeds 16 --out runs/paper-noise
    python benchmarks/paper_noise_claims.py --seeds 2 --steps 200 --out /tmp/x  # a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from jaxprecond.claims import (
    claims_table,
    floor_claims,
    gap_claims,
    neutrality_claims,
    spectral_bias_claims,
)
from jaxprecond.engine.store import write_text
from jaxprecond.experiments.noise import NOISE
from jaxprecond.reproduce import plan


def paper_noise_claims(out, *, seeds: int, steps: int | None = None, progress: bool = True):
    """Run the two full-size noise sweeps into ``out`` and test their claims.

    Args:
      out: the run folder (created, or resumed).
      seeds: seeds of each sweep.
      steps: override the paper's 10 000 steps (for a smoke run); ``None`` keeps them.
      progress: show the sweeps' progress bars.

    Returns:
      ``(claims, seconds)``: the list of :class:`~jaxprecond.claims.Claim` rows and the two
      sweeps' wall times.
    """
    out = Path(out)
    configs = plan(False, seeds=seeds)
    if steps is not None:
        configs = {n: dataclasses.replace(c, steps=steps) for n, c in configs.items()}
    seconds = {}

    def sweep(name):
        start = time.perf_counter()
        results = NOISE.sweep(configs[name], out=out / name, progress=progress)
        seconds[name] = time.perf_counter() - start
        return results

    noise, equalised = sweep("noise"), sweep("equalised")
    setting = "noise, P = Σ^p, paper size, "
    claims = [
        *spectral_bias_claims(noise, setting=setting),
        *gap_claims(noise, setting=setting),
        *floor_claims(noise, setting=setting),
        *neutrality_claims(noise, noise, setting=f"{setting}teacher as the authors ran it, "),
        *neutrality_claims(noise, equalised, setting=f"{setting}Case Low's teacher × 10, "),
    ]
    return claims, seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--steps", type=int, help="override the paper's 10 000 steps")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    claims, seconds = paper_noise_claims(
        args.out, seeds=args.seeds, steps=args.steps, progress=not args.no_progress
    )
    counts = {v: sum(c.verdict == v for c in claims) for v in ("holds", "fails", "inconclusive")}
    text = "\n".join(
        [
            f"# The noise experiment's claims at the paper's size, {args.seeds} seeds",
            "",
            f"{len(claims)} rows: {counts['holds']} hold, {counts['fails']} fail, "
            f"{counts['inconclusive']} inconclusive.",
            "",
            claims_table(claims),
            "",
            "Time: " + "; ".join(f"{n}: {s:.0f} s" for n, s in seconds.items()) + ".",
            "",
        ]
    )
    write_text(args.out / "claims.md", text)
    print(text)


if __name__ == "__main__":
    main()
