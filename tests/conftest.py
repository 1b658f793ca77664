"""Shared fixtures: float64 mode and small random numpy matrices (the independent truth)."""

from __future__ import annotations

import jax
import numpy as np
import pytest


def random_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    """A Haar-random ``(d, d)`` orthogonal matrix (numpy QR with sign correction)."""
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def random_spd(
    rng: np.random.Generator, d: int, *, low: float = 0.5, high: float = 3.0
) -> np.ndarray:
    """A random symmetric positive definite matrix with eigenvalues spread in ``[low, high]``."""
    eigenvalues = np.geomspace(low, high, d)
    q = random_orthogonal(rng, d)
    return (q * eigenvalues) @ q.T


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh numpy generator with a fixed seed for every test."""
    return np.random.default_rng(20250925)


@pytest.fixture
def make_spd(rng):
    """Factory ``make_spd(d, low=..., high=...)`` of random SPD matrices (float64 numpy)."""

    def make(d: int, **kwargs) -> np.ndarray:
        return random_spd(rng, d, **kwargs)

    return make


@pytest.fixture
def make_orthogonal(rng):
    """Factory ``make_orthogonal(d)`` of Haar-random orthogonal matrices (float64 numpy)."""

    def make(d: int) -> np.ndarray:
        return random_orthogonal(rng, d)

    return make


@pytest.fixture
def x64():
    """Run the test body with JAX in float64 mode."""
    with jax.enable_x64(True):
        yield


#: Written for the code before the redesign of issue 11 (run at the commit stored in the goldens).
collect_ignore = ["goldens/make_goldens.py"]
