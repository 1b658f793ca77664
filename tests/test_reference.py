"""Step-for-step fidelity to the authors' PyTorch runs in ../shared/reference."""

from pathlib import Path

import pytest

from jaxprecond.reference import EARLY_TOLERANCE, check_fixture, fixture_kind

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference"
FIXTURES = sorted(REFERENCE.glob("*.npz")) if REFERENCE.is_dir() else []


@pytest.mark.skipif(not FIXTURES, reason=f"no reference fixtures at {REFERENCE}")
@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_replay_matches_reference(path):
    comparisons = check_fixture(path)
    if comparisons is None:
        pytest.skip(f"no replay yet for {fixture_kind(path)} fixtures")
    for c in comparisons:
        assert c.ok, f"{c.name}: deviation {c.deviation:.3e} > {c.tolerance:g}"
    assert comparisons[0].tolerance == EARLY_TOLERANCE


def test_unknown_fixture_name():
    with pytest.raises(ValueError, match="unknown fixture kind"):
        fixture_kind("weights.npz")
