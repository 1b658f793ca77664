"""The correlation-shift (out-of-distribution) data of the paper's Sec. 4.2, in pure JAX.

Every class ``k`` gets a noise template ``τ_k ~ N(0, std² I)`` (std 0.1 per pixel); each
training image of class ``k`` becomes ``clip(image + τ_k, 0, 1)``. The template predicts the
label perfectly and has low variance (a spurious feature); the digit is the high-variance,
invariant feature. In-distribution validation images are built the same way. Two test sets
shift the correlation, built from the same test images (by default all 10 000 of the MNIST test
split, as in the authors' script):

* *invariant-digit*: the true label ``y``, the template of the swapped class ``y ^ 1``
  (0↔1, 2↔3, …); accuracy against ``y`` measures reliance on the digit.
* *invariant-noise*: a uniformly random label ``r``, the template ``τ_r``; accuracy against
  ``r`` measures reliance on the template (a digit-only model scores chance, ``1/K``).

The authors' reference code randomises the labels in both scenarios; here invariant-digit keeps
the true labels, so that its accuracy reads directly as reliance on the digit.

:func:`synthetic_ood_data` is a low-dimensional Gaussian task with the same structure, cheap
enough for thousands of seeds on a CPU. Every builder is a function of one PRNG key with fixed
shapes, so it can be jitted (sizes static) and vmapped over keys.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxprecond.checks import check_range


class OODData(NamedTuple):
    """Training, validation and the two shifted test sets of a correlation-shift task.

    A pytree of arrays: data of several keys stack along a leading axis under ``vmap``.

    Attributes:
      x_train, y_train: ``(n_train, d)`` inputs (images: flattened, in ``[0, 1]``) and
        ``(n_train,)`` ``int32`` labels; the spurious feature is that of the label.
      x_val, y_val: in-distribution validation, built as the training set.
      x_digit, y_digit: invariant-digit test: true labels, spurious feature of ``swap(label)``.
      x_noise, y_noise: invariant-noise test: random labels ``r``, spurious feature of ``r``.
      templates: ``(n_classes, d)`` the spurious feature of each class.

    Example:
      >>> import jax
      >>> draw = lambda key: synthetic_ood_data(key, n_train=8, n_val=4, n_test=6)
      >>> keys = jax.random.split(jax.random.key(0), 3)
      >>> batch = jax.eval_shape(jax.vmap(draw), keys)  # 3 seeds; shapes only, no compiling
      >>> batch.x_train.shape, batch.y_train.dtype, batch.x_noise.shape, batch.templates.shape
      ((3, 8, 20), dtype('int32'), (3, 6, 20), (3, 2, 20))
    """

    x_train: jax.Array
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    x_digit: jax.Array
    y_digit: jax.Array
    x_noise: jax.Array
    y_noise: jax.Array
    templates: jax.Array


def _is_traced(value) -> bool:
    return isinstance(value, jax.core.Tracer)


def _check_count(name: str, value, minimum: int = 1) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_classes(n_classes) -> None:
    if not isinstance(n_classes, (int, np.integer)) or n_classes < 2 or n_classes % 2:
        raise ValueError(
            f"n_classes must be an even integer >= 2 (classes are swapped in pairs), "
            f"got {n_classes!r}"
        )


def swap_classes(labels):
    """The paired class of each label: 0↔1, 2↔3, … (``labels ^ 1``; needs an even class count).

    Example:
      >>> import jax.numpy as jnp
      >>> swap_classes(jnp.arange(6))
      Array([1, 0, 3, 2, 5, 4], dtype=int32)
    """
    return jnp.bitwise_xor(jnp.asarray(labels), 1)


def noise_templates(key, n_classes: int, d: int, *, std: float = 0.1, dtype=jnp.float32):
    """One Gaussian template per class, ``N(0, std²)`` independently per coordinate.

    Args:
      key: a JAX PRNG key.
      n_classes: number of classes.
      d: input dimension (784 for flattened 28×28 images).
      std: per-coordinate standard deviation.
      dtype: floating dtype.

    Returns:
      ``(n_classes, d)`` templates.

    Example:
      >>> import jax
      >>> noise_templates(jax.random.key(0), 10, 784).shape
      (10, 784)
    """
    _check_count("n_classes", n_classes)
    _check_count("d", d)
    check_range("std", std, 0.0)
    return std * jax.random.normal(key, (n_classes, d), dtype)


def add_templates(images, template_labels, templates):
    """``clip(images + templates[template_labels], 0, 1)``: images carrying a class's template.

    Args:
      images: ``(n, d)`` inputs in ``[0, 1]``.
      template_labels: ``(n,)`` integer class of the template each image gets.
      templates: ``(n_classes, d)`` templates.

    Returns:
      ``(n, d)`` inputs in ``[0, 1]``.

    Example:
      >>> import jax.numpy as jnp
      >>> add_templates(jnp.array([[0.5, 0.95]]), jnp.array([1]), jnp.array([[0, 0], [0.1, 0.1]]))
      Array([[0.6, 1. ]], dtype=float32)
    """
    return jnp.clip(images + templates[template_labels], 0.0, 1.0)


def as_features(images):
    """``uint8`` images ``(N, ...)`` as ``float32`` features ``(N, prod(...))`` in ``[0, 1]``.

    Example:
      >>> import numpy as np
      >>> as_features(np.full((2, 28, 28), 255, np.uint8)).shape
      (2, 784)
    """
    images = jnp.asarray(images)
    if images.dtype != jnp.uint8:
        raise TypeError(f"images must be uint8 (raw pixels), got dtype {images.dtype}")
    if images.ndim < 2:
        raise ValueError(f"images must have shape (N, ...), got {images.shape}")
    return images.reshape(images.shape[0], -1).astype(jnp.float32) / 255.0


def _check_split(name: str, images, labels, n_classes: int) -> None:
    if jnp.ndim(images) != 2:
        raise ValueError(f"{name}_images must have shape (N, d), got {jnp.shape(images)}")
    if not jnp.issubdtype(jnp.result_type(images), jnp.floating):
        raise TypeError(
            f"{name}_images must be floating features in [0, 1] (see as_features), "
            f"got dtype {jnp.result_type(images)}"
        )
    if jnp.shape(labels) != (jnp.shape(images)[0],):
        raise ValueError(
            f"{name}_labels must have shape ({jnp.shape(images)[0]},), got {jnp.shape(labels)}"
        )
    if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise TypeError(f"{name}_labels must be integers, got dtype {jnp.result_type(labels)}")
    if not _is_traced(labels) and jnp.size(labels):
        low, high = int(np.min(labels)), int(np.max(labels))
        if low < 0 or high >= n_classes:
            raise ValueError(
                f"{name}_labels must lie in [0, {n_classes}), got values in [{low}, {high}]"
            )


def make_ood_data(
    key,
    pool_images,
    pool_labels,
    test_images=None,
    test_labels=None,
    *,
    n_train: int = 1200,
    n_val: int = 1200,
    n_test: int | None = None,
    template_std: float = 0.1,
    n_classes: int = 10,
) -> OODData:
    """The correlation-shift task of Sec. 4.2 from an image set, for one key.

    The key is split into sub-streams for the templates, the train/validation pool draw, the
    test draw and the invariant-noise labels. Training and validation images are drawn without
    replacement from the pool, disjointly. Both shifted test sets are built from the same test
    images: by default (``n_test=None``) every image of the test split, in its order, as the
    authors' script evaluates on all 10 000 MNIST test images; ``n_test`` images drawn without
    replacement otherwise. When no test split is given (only one split at hand, e.g. the MNIST
    test split alone), the test images are the rest of the pool after the training and
    validation draw (or ``n_test`` of them), so the three sets stay disjoint.

    Args:
      key: a JAX PRNG key (one per seed).
      pool_images: ``(N, d)`` floating features in ``[0, 1]`` (:func:`as_features`), usually
        the training split.
      pool_labels: ``(N,)`` integer labels in ``[0, n_classes)``.
      test_images, test_labels: the test split, or ``None`` to draw the test images from the
        pool.
      n_train, n_val: sizes of the training and validation sets.
      n_test: size of each test set; ``None``: every test image (the whole test split, or the
        pool's images left after the training and validation draw).
      template_std: the templates' per-pixel standard deviation.
      n_classes: number of classes (even: classes are swapped in pairs).

    Returns:
      An :class:`OODData`. Under ``jax.vmap`` over keys
      (``jax.vmap(lambda k: make_ood_data(k, x, y))(keys)``) every seed gets its own templates
      and draws; under ``jax.jit`` the sizes and ``n_classes`` must be static.

    Raises:
      ValueError, TypeError: bad shapes, dtypes, labels or sizes (checked before any tracing).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> images = jax.random.uniform(jax.random.key(1), (50, 4))
      >>> labels = jnp.arange(50) % 10
      >>> data = make_ood_data(jax.random.key(0), images, labels, n_train=20, n_val=10, n_test=20)
      >>> data.x_train.shape, data.x_digit.shape, data.templates.shape
      ((20, 4), (20, 4), (10, 4))
      >>> rest = make_ood_data(jax.random.key(0), images, labels, n_train=20, n_val=10)
      >>> rest.x_noise.shape  # no test split: the 50 − 20 − 10 images left in the pool
      (20, 4)
    """
    _check_classes(n_classes)
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if value is not None or name != "n_test":
            _check_count(name, value)
    check_range("template_std", template_std, 0.0)
    _check_split("pool", pool_images, pool_labels, n_classes)
    n_pool, d = jnp.shape(pool_images)
    if (test_images is None) != (test_labels is None):
        raise ValueError("give both test_images and test_labels, or neither")
    if test_images is None:
        if n_test is None and n_train + n_val >= n_pool:
            raise ValueError(
                f"n_train + n_val = {n_train} + {n_val} leaves none of the {n_pool} pool images "
                "for the test sets"
            )
        if n_test is not None and n_train + n_val + n_test > n_pool:
            raise ValueError(
                f"n_train + n_val + n_test = {n_train} + {n_val} + {n_test} exceeds the "
                f"{n_pool} pool images"
            )
    else:
        _check_split("test", test_images, test_labels, n_classes)
        if jnp.shape(test_images)[1] != d:
            raise ValueError(f"test_images have {jnp.shape(test_images)[1]} features, the pool {d}")
        if n_train + n_val > n_pool:
            raise ValueError(
                f"n_train + n_val = {n_train} + {n_val} exceeds the {n_pool} pool images"
            )
        if n_test is not None and n_test > jnp.shape(test_images)[0]:
            raise ValueError(
                f"n_test = {n_test} exceeds the {jnp.shape(test_images)[0]} test images"
            )

    return _make_ood_data(
        key,
        jnp.asarray(pool_images),
        jnp.asarray(pool_labels),
        None if test_images is None else jnp.asarray(test_images),
        None if test_labels is None else jnp.asarray(test_labels),
        template_std,
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        n_classes=n_classes,
    )


@partial(jax.jit, static_argnames=("n_train", "n_val", "n_test", "n_classes"))
def _make_ood_data(
    key,
    pool_images,
    pool_labels,
    test_images,
    test_labels,
    template_std,
    *,
    n_train,
    n_val,
    n_test,
    n_classes,
) -> OODData:
    """:func:`make_ood_data` after validation, as one compiled program (one per set of sizes)."""
    key_templates, key_pool, key_test, key_labels = jax.random.split(key, 4)
    n_pool, d = pool_images.shape
    pool_labels = pool_labels.astype(jnp.int32)
    templates = noise_templates(key_templates, n_classes, d, std=template_std)
    templates = templates.astype(pool_images.dtype)
    order = jax.random.permutation(key_pool, n_pool)
    train_idx, val_idx = order[:n_train], order[n_train : n_train + n_val]
    if test_images is None:  # the rest of the pool, disjoint from training and validation
        test_images, test_labels = pool_images, pool_labels
        test_idx = order[n_train + n_val :][:n_test]
    elif n_test is None:  # the whole test split
        test_idx = None
    else:
        test_idx = jax.random.permutation(key_test, test_images.shape[0])[:n_test]
    x_test, y_test = test_images.astype(pool_images.dtype), test_labels.astype(jnp.int32)
    if test_idx is not None:
        x_test, y_test = x_test[test_idx], y_test[test_idx]

    y_train, y_val = pool_labels[train_idx], pool_labels[val_idx]
    y_random = jax.random.randint(key_labels, y_test.shape, 0, n_classes, jnp.int32)
    return OODData(
        x_train=add_templates(pool_images[train_idx], y_train, templates),
        y_train=y_train,
        x_val=add_templates(pool_images[val_idx], y_val, templates),
        y_val=y_val,
        x_digit=add_templates(x_test, swap_classes(y_test), templates),
        y_digit=y_test,
        x_noise=add_templates(x_test, y_random, templates),
        y_noise=y_random,
        templates=templates,
    )


def class_codes(n_classes: int, dtype=jnp.float32):
    """Unit-norm, centred simplex codes ``m(k) = √(K/(K−1))·(e_k − 𝟙/K)``, one row per class.

    ``⟨m(j), m(k)⟩ = −1/(K−1)`` for ``j ≠ k``; for ``K = 2`` the codes are ``±(1, −1)/√2``.

    Example:
      >>> class_codes(2)
      Array([[ 0.70710677, -0.70710677],
             [-0.70710677,  0.70710677]], dtype=float32)
    """
    _check_count("n_classes", n_classes, 2)
    eye = np.eye(n_classes)
    return jnp.asarray(np.sqrt(n_classes / (n_classes - 1)) * (eye - 1.0 / n_classes), dtype)


def synthetic_ood_data(
    key,
    *,
    n_classes: int = 2,
    d: int = 20,
    n_train: int = 200,
    n_val: int = 1000,
    n_test: int = 1000,
    core_mean: float = 3.0,
    core_std: float = 2.0,
    spurious_mean: float = 0.5,
    spurious_std: float = 0.1,
    nuisance_std: float = 1.0,
    dtype=jnp.float32,
) -> OODData:
    """A Gaussian correlation-shift task with the structure of :func:`make_ood_data`.

    With ``K = n_classes`` and the class codes ``m(k)`` of :func:`class_codes`, a point whose
    core ("digit") class is ``c`` and whose spurious ("template") class is ``t`` is

    .. code-block:: text

        x = ( a·m(c) + σ_c·ε_c ,  b·m(t) + σ_s·ξ ,  σ_n·ε_n )   ∈  R^K × R^K × R^(d−2K)
        ε_c ~ N(0, I_K),   ξ ~ N(0, I_K) truncated to [−2, 2]^K,   ε_n ~ N(0, I_(d−2K))

    with ``a = core_mean``, ``σ_c = core_std``, ``b = spurious_mean``, ``σ_s = spurious_std``,
    ``σ_n = nuisance_std``: coordinates ``0 … K−1`` hold the core feature, ``K … 2K−1`` the
    spurious one, the rest are nuisance. ``templates[k] = (0, b·m(k), 0)``, so
    ``x = base(c) + templates[t]`` as images are ``digit + τ_t``. Labels ``y ~ U{0, …, K−1}``.

    * training and validation: ``c = t = y``;
    * invariant-digit: ``c = y``, ``t = y ^ 1``, label ``y``;
    * invariant-noise: the same points' ``c``, ``t = r ~ U{0, …, K−1}``, label ``r``.

    The core feature is high-variance but noisy: along ``m(y)`` the classes lie ``a`` apart
    from the centre with noise ``σ_c``, so it alone gives accuracy ``Φ(a/σ_c) ≈ 0.93`` for
    ``K = 2`` (variance ``a² + σ_c² = 13`` along ``m``). The spurious feature is low-variance
    (``b² + 0.77·σ_s² ≈ 0.26``) and, since ``b > 4σ_s``, the nearest class code of the
    spurious block is ``t`` for every point: it predicts training and validation labels
    exactly. A model using only the core scores ``≈ 0.93`` on invariant-digit and chance
    (``1/K``) on invariant-noise; one using only the spurious feature scores ``0`` (it predicts
    ``y ^ 1``) and ``1``.

    The OOD experiment's ``synthetic`` preset trains on these defaults (``n_test=1000``) a
    20→64→2 ReLU MLP (PyTorch's default init, cross-entropy plus ``½·1e-4·‖θ‖²``, full-batch GD
    with ``(Σ̂ + δI)^p`` on the first layer, ``δ`` = 1e-3 × the mean eigenvalue, no
    normalisation, learning rate 1e-2, 500 steps). The mean of 64 seeds is validation accuracy
    0.98 / 0.94 / 0.94 for p = −1 / 0 / 1, invariant-digit 0.73 / 0.91 / 0.92 and
    invariant-noise 0.63 / 0.52 / 0.51 (``jaxprecond ood --preset synthetic --optimizers
    --p -1 -0.5 0 0.5 1 --seeds 64``; benchmarks/RESULTS.md): p = 1 is close to the core-only
    model (0.93 / 0.5); whitening leans towards the spurious feature but, in 500 steps, stays
    far from the template-only model (0 / 1).

    Args:
      key: a JAX PRNG key (one per seed).
      n_classes: ``K``, even (classes are swapped in pairs).
      d: input dimension, at least ``2K``.
      n_train, n_val, n_test: sizes of the training, validation and each test set.
      core_mean, core_std: ``a`` and ``σ_c``.
      spurious_mean, spurious_std: ``b`` and ``σ_s``.
      nuisance_std: ``σ_n``.
      dtype: floating dtype.

    Returns:
      An :class:`OODData`.

    Example:
      >>> import jax
      >>> data = synthetic_ood_data(jax.random.key(0))
      >>> data.x_train.shape, data.x_noise.shape, data.templates.shape
      ((200, 20), (1000, 20), (2, 20))
    """
    _check_classes(n_classes)
    _check_count("d", d, 2 * n_classes)
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        _check_count(name, value)
    for name, value in (
        ("core_std", core_std),
        ("spurious_std", spurious_std),
        ("nuisance_std", nuisance_std),
    ):
        check_range(name, value, 0.0)

    return _synthetic_ood_data(
        key,
        core_mean,
        core_std,
        spurious_mean,
        spurious_std,
        nuisance_std,
        n_classes=n_classes,
        d=d,
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        dtype=dtype,
    )


@partial(jax.jit, static_argnames=("n_classes", "d", "n_train", "n_val", "n_test", "dtype"))
def _synthetic_ood_data(
    key,
    core_mean,
    core_std,
    spurious_mean,
    spurious_std,
    nuisance_std,
    *,
    n_classes,
    d,
    n_train,
    n_val,
    n_test,
    dtype,
) -> OODData:
    """:func:`synthetic_ood_data` after validation, as one compiled program.

    One draw of ``n_train + n_val + n_test`` points (labels, Gaussian and truncated noise),
    split in that order, keeps the number of random-number calls (and the compile time) small.
    """
    k = n_classes
    codes = class_codes(k, dtype)
    templates = jnp.zeros((k, d), dtype).at[:, k : 2 * k].set(spurious_mean * codes)
    key_labels, key_gauss, key_spurious, key_random = jax.random.split(key, 4)
    n = n_train + n_val + n_test
    y = jax.random.randint(key_labels, (n,), 0, k, jnp.int32)
    gauss = jax.random.normal(key_gauss, (n, d - k), dtype)
    core = core_mean * codes[y] + core_std * gauss[:, :k]
    spurious = spurious_std * jax.random.truncated_normal(key_spurious, -2, 2, (n, k), dtype)
    base = jnp.concatenate([core, spurious, nuisance_std * gauss[:, k:]], axis=1)
    y_train, y_val, y_test = jnp.split(y, [n_train, n_train + n_val])
    base_train, base_val, base_test = jnp.split(base, [n_train, n_train + n_val])
    y_random = jax.random.randint(key_random, (n_test,), 0, k, jnp.int32)
    return OODData(
        x_train=base_train + templates[y_train],
        y_train=y_train,
        x_val=base_val + templates[y_val],
        y_val=y_val,
        x_digit=base_test + templates[swap_classes(y_test)],
        y_digit=y_test,
        x_noise=base_test + templates[y_random],
        y_noise=y_random,
        templates=templates,
    )


def load_pools(dataset: str, *, data_dir=None, test_split_only: bool = False, download=False):
    """The images a correlation-shift task draws from, ``(N, d)`` float32 in ``[0, 1]``.

    Args:
      dataset: an IDX image set of :mod:`jaxprecond.tasks.idx`, or ``"synthetic"``.
      data_dir, download: where to look first; fetch a missing set into the user cache.
      test_split_only: draw every pool from the test split (when the training split is absent):
        training, validation and test images are then disjoint draws from its images (see
        :func:`make_ood_data`), and by default the test sets are the ``N − n_train − n_val``
        images left, not all ``N``.

    Returns:
      ``{"pool_images", "pool_labels"}`` (the training split) and ``{"test_images",
      "test_labels"}`` (the whole test split) unless ``test_split_only``, which gives the test
      split as the pool alone; ``None`` for ``"synthetic"``.

    Raises:
      MissingFile, SettingError: the files are missing, corrupt or another version.
    """
    from jaxprecond.tasks.idx import load_idx_dataset

    if dataset == "synthetic":
        return None
    arrays = {}
    for split in ("test",) if test_split_only else ("train", "test"):
        images, labels = load_idx_dataset(dataset, split, data_dir=data_dir, download=download)
        name = "pool" if split == "train" or test_split_only else "test"
        arrays[f"{name}_images"] = jnp.asarray(as_features(images))
        arrays[f"{name}_labels"] = jnp.asarray(labels.astype(np.int32))
    return arrays


#: The synthetic task's test-set size for ``n_test=None``: that of the MNIST test split.
SYNTHETIC_N_TEST = 10_000


def draw(key, pools, *, n_train: int, n_val: int, n_test: int | None, template_std: float = 0.1):
    """One key's :class:`OODData`: :func:`make_ood_data` from ``pools`` (:func:`load_pools`), or
    :func:`synthetic_ood_data` when ``pools`` is ``None``.

    ``n_test=None`` is every test image (:func:`make_ood_data`); the synthetic task, which has
    no test split, then draws :data:`SYNTHETIC_N_TEST` test points.

    Example:
      >>> data = jax.eval_shape(lambda k: draw(k, None, n_train=8, n_val=4, n_test=6),
      ...                       jax.random.key(0))
      >>> data.x_train.shape, data.templates.shape
      ((8, 20), (2, 20))
    """
    if pools is None:
        n_test = SYNTHETIC_N_TEST if n_test is None else n_test
        return synthetic_ood_data(key, n_train=n_train, n_val=n_val, n_test=n_test)
    return make_ood_data(
        key,
        pools["pool_images"],
        pools["pool_labels"],
        pools.get("test_images"),
        pools.get("test_labels"),
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        template_std=template_std,
    )
