"""Gaussian inputs with a two-level spectrum and the single-index teacher of the paper.

Case High: eigenvalues ``(scale ×k, 1/scale ×(dx−k))`` with the teacher on the k large ones.
Case Low: eigenvalues ``(scale ×(dx−k), 1/scale ×k)`` with the teacher on the k small ones.
Inputs are ``x ~ N(0, Σ)`` with ``Σ = Q diag(λ) Qᵀ``, targets ``y = softplus(10·⟨β*, x⟩) + ε``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

CASES = ("high", "low")


class Spectrum(NamedTuple):
    """Input covariance ``Σ = Q diag(λ) Qᵀ`` and the eigenvectors the teacher lies on.

    A pytree of arrays: spectra of several cases stack along a leading axis for ``vmap``.

    Attributes:
      eigenvalues: ``(dx,)`` eigenvalues ``λ``.
      eigenvectors: ``(dx, dx)`` orthogonal ``Q`` (columns are eigenvectors).
      teacher_basis: ``(dx, k)`` the columns of ``Q`` that span the teacher direction.

    Example:
      >>> import jax.numpy as jnp
      >>> c = 1 / jnp.sqrt(2.0)
      >>> q = jnp.array([[c, -c], [c, c]])  # eigenvectors rotated by 45 degrees
      >>> s = Spectrum(jnp.array([4.0, 1.0]), q, q[:, :1])
      >>> s.covariance.round(4)
      Array([[2.5, 1.5],
             [1.5, 2.5]], dtype=float32)
    """

    eigenvalues: jax.Array
    eigenvectors: jax.Array
    teacher_basis: jax.Array

    @property
    def covariance(self) -> jax.Array:
        """The ``(dx, dx)`` covariance ``Q diag(λ) Qᵀ`` (``(..., dx, dx)`` for stacked spectra).

        Returns:
          ``Σ = Q diag(λ) Qᵀ``, symmetric, with eigenvectors the columns of ``Q``.

        Example:
          >>> import jax.numpy as jnp
          >>> q = jnp.array([[0.6, -0.8], [0.8, 0.6]])  # a rotation
          >>> s = Spectrum(jnp.array([10.0, 0.1]), q, q[:, :1])  # the teacher on λ = 10
          >>> cov, v = np.asarray(s.covariance), np.asarray(s.teacher_basis)
          >>> bool(np.allclose(cov @ v, 10.0 * v, atol=1e-5)), round(float(np.trace(cov)), 4)
          (True, 10.1)
          >>> stack_spectra([s, s]).covariance.shape
          (2, 2, 2)
        """
        q = self.eigenvectors
        scaled = q * self.eigenvalues[..., None, :]
        return jnp.matmul(scaled, jnp.swapaxes(q, -1, -2), precision=jax.lax.Precision.HIGHEST)


class Task(NamedTuple):
    """One regression data set: train/test inputs, standardised targets and the teacher.

    Attributes:
      x_train, y_train: ``(n_train, dx)`` inputs and ``(n_train,)`` standardised targets.
      x_test, y_test: ``(n_test, dx)`` inputs and targets standardised with train statistics.
      beta: ``(dx,)`` the teacher direction ``β*`` (not normalised).
      signal_test: ``(n_test,)`` the noiseless test targets ``softplus(10·⟨β*, x⟩)``,
        standardised like ``y_test`` (``None`` when unknown): the teacher's own prediction, whose
        test MSE is the noise floor no student can beat.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> task = sample_task(jax.random.key(0), case_spectrum("high"), 1.0, n=100, n_train=20)
      >>> task.x_train.shape, task.y_train.shape, task.x_test.shape, task.y_test.shape
      ((20, 10), (20,), (80, 10), (80,))
      >>> jnp.nonzero(task.beta)[0].tolist()  # Case High, k = 1: β* lies on the first axis
      [0]
      >>> abs(float(task.y_train.mean())) < 1e-6, round(float(task.y_train.std(ddof=1)), 4)
      (True, 1.0)
    """

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    beta: jax.Array
    signal_test: jax.Array | None = None


def random_rotation(key, dx: int, dtype=jnp.float32) -> jax.Array:
    """A Haar-random ``(dx, dx)`` orthogonal matrix.

    Args:
      key: a JAX PRNG key.
      dx: dimension.
      dtype: floating dtype.

    Returns:
      An orthogonal matrix drawn uniformly (QR of a Gaussian matrix with sign correction).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> q = random_rotation(jax.random.key(0), 3)
      >>> bool(jnp.allclose(q @ q.T, jnp.eye(3), atol=1e-5))
      True
    """
    q, r = jnp.linalg.qr(jax.random.normal(key, (dx, dx), dtype))
    return q * jnp.sign(jnp.diagonal(r))


def case_spectrum(
    case: str,
    *,
    dx: int = 10,
    k: int = 1,
    scale: float = 10.0,
    rotation=None,
    dtype=jnp.float32,
) -> Spectrum:
    """The input spectrum and teacher subspace of Case High or Case Low.

    Args:
      case: ``"high"`` (teacher on the k large eigenvalues) or ``"low"`` (on the k small ones).
      dx: input dimension.
      k: number of teacher eigen-directions.
      scale: the large eigenvalue; the small one is ``1/scale``.
      rotation: optional ``(dx, dx)`` orthogonal matrix; by default eigenvectors are the axes.
      dtype: floating dtype.

    Returns:
      A :class:`Spectrum`. High: ``λ = (scale ×k, 1/scale ×(dx−k))``, teacher on axes ``0..k−1``;
      Low: ``λ = (scale ×(dx−k), 1/scale ×k)``, teacher on axes ``dx−k..dx−1``.

    Example:
      >>> case_spectrum("low", dx=3).eigenvalues
      Array([10. , 10. ,  0.1], dtype=float32)
    """
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}, got {case!r}")
    if not (isinstance(dx, int) and isinstance(k, int) and 1 <= k < dx):
        raise ValueError(f"need integers 1 <= k < dx, got k={k!r}, dx={dx!r}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    n_large = k if case == "high" else dx - k
    eigenvalues = np.r_[np.full(n_large, scale), np.full(dx - n_large, 1.0 / scale)]
    teacher_axes = np.arange(k) if case == "high" else np.arange(dx - k, dx)
    q = jnp.eye(dx, dtype=dtype) if rotation is None else jnp.asarray(rotation, dtype)
    if q.shape != (dx, dx):
        raise ValueError(f"rotation must have shape {(dx, dx)}, got {q.shape}")
    return Spectrum(jnp.asarray(eigenvalues, dtype), q, q[:, teacher_axes])


def dual_spectrum(spectrum: Spectrum) -> Spectrum:
    """The other case's spectrum, its eigenvectors ordered so that one draw serves both cases.

    With ``Π`` the permutation that swaps the teacher's ``k`` axes with the last ``k``, Case
    Low's ``Σ`` is ``Q Π diag(1/λ_High) Πᵀ Qᵀ``. Listing its eigenvalues as ``1/λ`` in Case
    High's order, with eigenvectors ``QΠ``, makes :func:`sample_task` (which draws inputs in the
    eigenbasis) couple the two cases' inputs through ``Π``: ``u_Low = Π u_High`` in whitened
    coordinates. In those coordinates the preconditioner ``Σ^p`` acts as ``Σ^{p+1}``, and
    ``Σ_High^{p+1} = Π Σ_Low^{(−2−p)+1} Πᵀ``: Case High at ``p`` with teacher β* and Case Low at
    ``−2−p`` with teacher ``scale·β*`` are the same learning problem (the p ↔ −2−p duality).

    Args:
      spectrum: a spectrum whose teacher lies on its first ``k`` eigenvectors (Case High, or
        Case Low's dual), with ``2k <= dx``.

    Returns:
      The dual :class:`Spectrum` (the dual of the dual is the original).

    Example:
      >>> high = case_spectrum("high", dx=3)
      >>> low = dual_spectrum(high)
      >>> low.eigenvalues, low.teacher_basis[:, 0]
      (Array([ 0.1, 10. , 10. ], dtype=float32), Array([0., 0., 1.], dtype=float32))
      >>> bool(jnp.allclose(low.covariance, case_spectrum("low", dx=3).covariance))
      True
    """
    dx, k = spectrum.eigenvectors.shape[-1], spectrum.teacher_basis.shape[-1]
    if 2 * k > dx:
        raise ValueError(f"the duality needs 2k <= dx, got k={k}, dx={dx}")
    perm = np.arange(dx)
    perm[:k], perm[dx - k :] = np.arange(dx - k, dx), np.arange(k)
    eigenvectors = spectrum.eigenvectors[:, perm]
    return Spectrum(1.0 / spectrum.eigenvalues, eigenvectors, eigenvectors[:, :k])


def stack_spectra(spectra) -> Spectrum:
    """Stack spectra of equal shapes along a new leading axis (for ``vmap`` over cases).

    Args:
      spectra: a sequence of :class:`Spectrum` of equal shapes.

    Returns:
      One :class:`Spectrum` whose arrays have a leading axis of ``len(spectra)``.

    Example:
      >>> s = stack_spectra([case_spectrum("high", dx=3), case_spectrum("low", dx=3)])
      >>> s.eigenvalues
      Array([[10. ,  0.1,  0.1],
             [10. , 10. ,  0.1]], dtype=float32)
      >>> s.eigenvectors.shape, s.teacher_basis.shape
      ((2, 3, 3), (2, 3, 1))
    """
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *spectra)


def teacher(x, beta):
    """The single-index teacher ``softplus(10·⟨β*, x⟩)``, computed stably.

    Args:
      x: ``(..., dx)`` inputs.
      beta: ``(dx,)`` teacher direction.

    Returns:
      ``(...,)`` noiseless targets.

    Example:
      >>> import jax.numpy as jnp
      >>> teacher(jnp.array([[100.0]]), jnp.array([1.0]))
      Array([1000.], dtype=float32)
    """
    return jax.nn.softplus(10.0 * jnp.matmul(x, beta, precision=jax.lax.Precision.HIGHEST))


def standardize(y_train, y_test):
    """Standardise targets by the training mean and unbiased (ddof 1) standard deviation.

    Args:
      y_train: ``(n_train,)`` training targets, whose statistics are used.
      y_test: ``(n_test,)`` test targets.

    Returns:
      ``(y_train, y_test)`` standardised, both with the training mean and standard deviation.

    Example:
      >>> import jax.numpy as jnp
      >>> standardize(jnp.array([1.0, 2.0, 3.0]), jnp.array([4.0]))  # mean 2, std 1
      (Array([-1.,  0.,  1.], dtype=float32), Array([2.], dtype=float32))
    """
    mean = jnp.mean(y_train)
    std = jnp.std(y_train, ddof=1)
    return (y_train - mean) / std, (y_test - mean) / std


def sample_task(
    key, spectrum: Spectrum, snr, *, n: int = 10_000, n_train: int = 200, teacher_scale=1.0
) -> Task:
    """Draw inputs, a teacher and noisy standardised targets.

    The key is split into one stream each for the inputs' standard normals, the teacher's
    coefficients and the noise's standard normals, so one key gives the same draws for every
    spectrum and SNR: cells of a grid are paired seed by seed.

    Args:
      key: a JAX PRNG key (one per seed).
      spectrum: the input spectrum and teacher subspace.
      snr: signal-to-noise ratio ``std(signal)/std(noise)``, over all n points (ddof 0);
        ``inf`` gives noiseless targets.
      n: total number of points.
      n_train: the first ``n_train`` points train, the rest test.
      teacher_scale: ``S``, multiplying β*: ``y = softplus(10·S·⟨β*, x⟩) + ε`` (may be traced).
        ``S = 10`` in Case Low matches the whitened scale of Case High at ``S = 1``.

    Returns:
      A :class:`Task`.

    Example:
      >>> import jax
      >>> task = sample_task(jax.random.key(0), case_spectrum("high"), 1.0, n=100, n_train=20)
      >>> task.x_train.shape, task.y_test.shape
      ((20, 10), (80,))
    """
    if not 1 < n_train < n:
        raise ValueError(f"need 1 < n_train < n, got n_train={n_train}, n={n}")
    dtype = spectrum.eigenvalues.dtype
    dx = spectrum.eigenvalues.shape[-1]
    key_x, key_beta, key_noise = jax.random.split(key, 3)
    z = jax.random.normal(key_x, (n, dx), dtype)
    x = jnp.matmul(
        z * jnp.sqrt(spectrum.eigenvalues),
        spectrum.eigenvectors.T,
        precision=jax.lax.Precision.HIGHEST,
    )
    coefficients = jax.random.normal(key_beta, (spectrum.teacher_basis.shape[-1],), dtype)
    beta = teacher_scale * jnp.matmul(
        spectrum.teacher_basis, coefficients, precision=jax.lax.Precision.HIGHEST
    )
    signal = teacher(x, beta)
    noise = jax.random.normal(key_noise, (n,), dtype) * (jnp.std(signal) / snr)
    y = signal + noise
    y_train, y_test = standardize(y[:n_train], y[n_train:])
    train = y[:n_train]
    signal_test = (signal[n_train:] - jnp.mean(train)) / jnp.std(train, ddof=1)
    return Task(x[:n_train], y_train, x[n_train:], y_test, beta, signal_test)
