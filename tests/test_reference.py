"""Step-for-step fidelity to the authors' PyTorch runs in ../shared/reference."""

from pathlib import Path

import pytest

from jaxprecond.fidelity.replays import (
    EARLY_TOLERANCE,
    TRANSFER_HEAD_TOLERANCE,
    TRANSFER_MSE_TOLERANCE,
    check_fixture,
    fixture_kind,
    replay_transfer,
)

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference"
FIXTURES = sorted(REFERENCE.glob("*.npz")) if REFERENCE.is_dir() else []
TRANSFER_FIXTURES = [p for p in FIXTURES if fixture_kind(p) == "transfer"]


@pytest.mark.skipif(not FIXTURES, reason=f"no reference fixtures at {REFERENCE}")
@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_replay_matches_reference(path):
    comparisons = check_fixture(path)
    assert comparisons is not None, f"no replay for {fixture_kind(path)} fixtures"
    for c in comparisons:
        assert c.ok, f"{c.name}: deviation {c.deviation:.3e} > {c.tolerance:g}"
    if fixture_kind(path) == "transfer":
        assert [c.tolerance for c in comparisons] == [TRANSFER_HEAD_TOLERANCE] * 2 + [
            TRANSFER_MSE_TOLERANCE
        ] * 2
    else:
        assert comparisons[0].tolerance == EARLY_TOLERANCE


@pytest.mark.skipif(not TRANSFER_FIXTURES, reason=f"no transfer fixtures at {REFERENCE}")
@pytest.mark.parametrize("path", TRANSFER_FIXTURES, ids=[p.stem for p in TRANSFER_FIXTURES])
def test_transfer_replay_in_float64(path):
    """The float64 replay meets the same bounds (the stored head is float32: b2 differs from
    the float64 head by about 1e-4 relative, W2 by 2e-5, the MSEs by 2e-6)."""
    for c in replay_transfer(path, float64=True):
        assert c.ok, f"{c.name}: deviation {c.deviation:.3e} > {c.tolerance:g}"


def test_unknown_fixture_name():
    with pytest.raises(ValueError, match="unknown fixture kind"):
        fixture_kind("weights.npz")
