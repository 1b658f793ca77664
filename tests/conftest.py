"""Shared fixtures: float64 mode and small random numpy matrices (the independent truth)."""

from __future__ import annotations

import os
import shutil
import tempfile

import jax
import numpy as np
import pytest

#: A persistent compilation cache for each test process (an xdist worker, and the subprocesses
#: its tests start, which inherit it): a program compiled by one test is read back by the next
#: that builds the same one. Made fresh by the process that needs it, removed at its end.
OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxprecond-tests-cache-")
CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"]
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
jax.config.update("jax_compilation_cache_dir", CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_sessionfinish(session):
    """A process's own cache goes with it."""
    if OWN_CACHE:
        shutil.rmtree(CACHE, ignore_errors=True)


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
