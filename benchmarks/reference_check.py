"""Replay the authors' reference runs with jaxprecond's own loop and report the deviations.

Usage:
    python benchmarks/reference_check.py ../shared/reference/*.npz [--float64]

For each noise fixture, prints the largest element-wise relative deviation of the train-loss
and test-MSE trajectories over the first 300 steps (bound 1e-5) and of the final values (bound
50%); for an AdaHessian fixture, of the loss (1e-5 over 100 steps, 1e-3 over 300) and the final
weights (5e-2 in relative norm); for a transfer fixture, the ridge stage replayed from the stored
frozen first layer and stage-2 data: the head (W2 in relative norm, b2; bound 1e-3) and the
stage-2 train and test MSE (1e-4). Exits non-zero if any bound is broken. Fixture kinds without
a replay are listed as such.
"""

from __future__ import annotations

import argparse
import sys
import time

from jaxprecond.fidelity.replays import check_fixture


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixtures", nargs="+", help="reference .npz files")
    parser.add_argument("--float64", action="store_true", help="replay in float64")
    args = parser.parse_args(argv)
    failed = False
    for path in args.fixtures:
        start = time.perf_counter()
        comparisons = check_fixture(path, float64=args.float64)
        if comparisons is None:
            print(f"{path}: no replay for this fixture kind yet (not checked)")
            continue
        print(f"{path} ({time.perf_counter() - start:.1f} s)")
        for c in comparisons:
            status = "ok" if c.ok else "FAIL"
            print(
                f"  {c.name:24s} max rel. deviation {c.deviation:.3e}  (bound {c.tolerance:g})"
                f"  {status}"
            )
            failed |= not c.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
