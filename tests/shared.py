"""Files from ``../shared`` (reference fixtures, data sets) that some tests need.

Outside CI a missing file skips the test. ``.ci/run`` sets ``JAXPRECOND_REQUIRE_SHARED=1`` (CI
has ``../shared`` and installs Fashion-MNIST): there a missing file fails the test, so a skip
cannot hide a failure.
"""

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REQUIRED = os.environ.get("JAXPRECOND_REQUIRE_SHARED") == "1"


def need(present: bool, what: str) -> None:
    """Skip (or, under ``JAXPRECOND_REQUIRE_SHARED=1``, fail) unless ``present``."""
    if not present:
        if REQUIRED:
            pytest.fail(f"{what} is absent but JAXPRECOND_REQUIRE_SHARED=1")
        pytest.skip(f"{what} is absent")
