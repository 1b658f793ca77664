"""The correlation-shift data: the image construction on the MNIST test split (pools found back
by nearest neighbour, then checked exactly in numpy) and the synthetic Gaussian task."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from shared import need

from jaxprecond.tasks.correlation_shift import (
    OODData,
    add_templates,
    as_features,
    class_codes,
    make_ood_data,
    noise_templates,
    swap_classes,
    synthetic_ood_data,
)

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
#: smaller than the defaults (1200, 1200, 2000) to keep the nearest-neighbour search cheap.
N_TRAIN, N_VAL, N_TEST = 300, 300, 500

#: the shapes of ``make_ood_data``'s doctest, so that its compiled program is reused.
SMALL = dict(n_train=20, n_val=10, n_test=20)


def small_pool(n=50, d=4):
    images = jax.random.uniform(jax.random.key(1), (n, d))
    return images, jnp.arange(n) % 10


def find_rows(x, template_labels, templates, pool):
    """Index in ``pool`` of each row of ``x``, by nearest neighbour of ``x − templates[label]``.

    Returns the indices; the caller checks the rows exactly.
    """
    query = x - templates[template_labels]
    distances = np.sum(query**2, 1)[:, None] + np.sum(pool**2, 1)[None, :] - 2.0 * query @ pool.T
    return np.argmin(distances, axis=1)


def numpy_add(images, template_labels, templates):
    return np.clip(images + templates[template_labels], 0.0, 1.0)


@pytest.fixture(scope="module")
def mnist():
    need(MNIST.is_dir(), f"{MNIST} (the MNIST test split)")
    from jaxprecond.tasks.idx import load_idx_dataset

    images, labels = load_idx_dataset("mnist", "test", data_dir=MNIST.parent)
    return np.asarray(as_features(images)), labels


@pytest.fixture(scope="module")
def built(mnist):
    """The task from the MNIST test split alone, its arrays in numpy, and each set's pool rows."""
    pool, labels = mnist
    data = make_ood_data(
        jax.random.key(7), pool, labels, n_train=N_TRAIN, n_val=N_VAL, n_test=N_TEST
    )
    data = OODData(*(np.asarray(a) for a in data))
    t = data.templates
    rows = {
        "train": find_rows(data.x_train, data.y_train, t, pool),
        "val": find_rows(data.x_val, data.y_val, t, pool),
        "digit": find_rows(data.x_digit, data.y_digit ^ 1, t, pool),
        "noise": find_rows(data.x_noise, data.y_noise, t, pool),
    }
    return data, rows


# --- building blocks -----------------------------------------------------------------------------


def test_swap_classes():
    labels = np.arange(10)
    swapped = np.asarray(swap_classes(labels))
    np.testing.assert_array_equal(swapped, [1, 0, 3, 2, 5, 4, 7, 6, 9, 8])
    np.testing.assert_array_equal(swap_classes(swapped), labels)


def test_add_templates_clips():
    images = np.array([[0.0, 0.5, 1.0], [0.95, 0.05, 0.5]], np.float32)
    templates = np.array([[-0.2, 0.1, 0.3], [0.1, -0.1, 0.0]], np.float32)
    result = np.asarray(add_templates(images, np.array([0, 1]), templates))
    np.testing.assert_allclose(result, [[0.0, 0.6, 1.0], [1.0, 0.0, 0.5]], atol=1e-7)


def test_noise_templates_statistics():
    templates = np.asarray(noise_templates(jax.random.key(3), 10, 784, std=0.1))
    assert templates.shape == (10, 784) and templates.dtype == np.float32
    assert abs(templates.std() - 0.1) < 0.004 and abs(templates.mean()) < 0.004
    # distinct, nearly orthogonal templates
    gram = templates @ templates.T / (784 * 0.01)
    assert np.all(np.abs(gram - np.diag(np.diag(gram))) < 0.2)


def test_as_features():
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28).astype(np.uint8)
    features = np.asarray(as_features(images))
    assert features.shape == (2, 784) and features.dtype == np.float32
    np.testing.assert_allclose(features, images.reshape(2, -1) / 255.0, rtol=1e-6)
    with pytest.raises(TypeError, match="uint8.*float32"):
        as_features(images.astype(np.float32))


# --- the image task on the MNIST test split ------------------------------------------------------


def test_shapes_and_ranges(built):
    data, _ = built
    for x, y, n in [
        (data.x_train, data.y_train, N_TRAIN),
        (data.x_val, data.y_val, N_VAL),
        (data.x_digit, data.y_digit, N_TEST),
        (data.x_noise, data.y_noise, N_TEST),
    ]:
        assert x.shape == (n, 784) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype == np.int32
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))
    assert data.templates.shape == (10, 784)
    assert abs(data.templates.std() - 0.1) < 0.004


def test_every_image_is_an_mnist_image_plus_its_template(built, mnist):
    data, rows = built
    pool, labels = mnist
    t = data.templates
    for x, template_labels, index in [
        (data.x_train, data.y_train, rows["train"]),
        (data.x_val, data.y_val, rows["val"]),
        (data.x_digit, data.y_digit ^ 1, rows["digit"]),
        (data.x_noise, data.y_noise, rows["noise"]),
    ]:
        np.testing.assert_allclose(x, numpy_add(pool[index], template_labels, t), atol=1e-6)
    # training and validation carry their true label's template, invariant-digit its true label
    np.testing.assert_array_equal(data.y_train, labels[rows["train"]])
    np.testing.assert_array_equal(data.y_val, labels[rows["val"]])
    np.testing.assert_array_equal(data.y_digit, labels[rows["digit"]])
    # clipping happened: black pixels plus a negative template value are 0, not negative
    assert np.mean(data.x_train == 0.0) > 0.3


def test_pools_disjoint_and_tests_share_images(built):
    _, rows = built
    assert len(np.unique(rows["train"])) == N_TRAIN and len(np.unique(rows["val"])) == N_VAL
    assert len(np.unique(rows["digit"])) == N_TEST
    np.testing.assert_array_equal(rows["digit"], rows["noise"])  # one draw of test images
    assert not set(rows["train"]) & set(rows["val"])
    assert not (set(rows["train"]) | set(rows["val"])) & set(rows["digit"])


def test_the_template_identifies_the_class_it_was_drawn_for(built):
    """Correlating a (centred) image with the ten templates finds the one it carries."""
    data, _ = built
    for x, template_labels in [
        (data.x_train, data.y_train),
        (data.x_val, data.y_val),
        (data.x_digit, data.y_digit ^ 1),
        (data.x_noise, data.y_noise),
    ]:
        score = (x - x.mean(0)) @ data.templates.T
        assert np.mean(np.argmax(score, 1) == template_labels) > 0.95


def test_invariant_noise_labels_uniform_and_independent(built):
    data, _ = built
    counts = np.bincount(data.y_noise, minlength=10)
    assert counts.sum() == N_TEST and counts.min() >= 25 and counts.max() <= 80  # 50 ± 3.5σ
    agreement = np.mean(data.y_noise == data.y_digit)
    assert 0.05 < agreement < 0.15  # independent of the digit: 1/10


def test_separate_test_split(mnist):
    pool, labels = mnist
    train_pool, test_pool = pool[:100], pool[100:140]
    data = make_ood_data(
        jax.random.key(0),
        train_pool,
        labels[:100],
        test_pool,
        labels[100:140],
        n_train=50,
        n_val=30,
        n_test=25,
    )
    data = OODData(*(np.asarray(a) for a in data))
    t = data.templates
    train_rows = find_rows(data.x_train, data.y_train, t, train_pool)
    val_rows = find_rows(data.x_val, data.y_val, t, train_pool)
    test_rows = find_rows(data.x_digit, data.y_digit ^ 1, t, test_pool)
    x_train = numpy_add(train_pool[train_rows], data.y_train, t)
    np.testing.assert_allclose(data.x_train, x_train, atol=1e-6)
    x_digit = numpy_add(test_pool[test_rows], data.y_digit ^ 1, t)
    np.testing.assert_allclose(data.x_digit, x_digit, atol=1e-6)
    np.testing.assert_array_equal(data.y_digit, labels[100:140][test_rows])
    np.testing.assert_array_equal(find_rows(data.x_noise, data.y_noise, t, test_pool), test_rows)
    assert len(set(train_rows) | set(val_rows)) == 80 and len(set(test_rows)) == 25


def test_the_test_sets_are_the_whole_test_split(mnist):
    """As the authors' script: both test sets are built from all 10 000 test images, in order
    (here a stand-in training split of 3 000 images and the real test split)."""
    pool, labels = mnist
    data = make_ood_data(
        jax.random.key(3), pool[:3000], labels[:3000], pool, labels, n_train=1200, n_val=1200
    )
    t = np.asarray(data.templates)
    assert data.x_digit.shape == data.x_noise.shape == (10_000, 784)
    np.testing.assert_array_equal(data.y_digit, labels)
    np.testing.assert_allclose(data.x_digit, numpy_add(pool, labels ^ 1, t), atol=1e-6)
    np.testing.assert_allclose(
        data.x_noise, numpy_add(pool, np.asarray(data.y_noise), t), atol=1e-6
    )


def test_test_split_only_keeps_the_three_sets_disjoint(mnist):
    """The fallback with the test split alone (load_pools(test_split_only=True)): training,
    validation and test images are disjoint, and the test sets get every image left (10 000 −
    1 200 − 1 200). Without templates each image is its pool row exactly, found by its bytes."""
    from jaxprecond.tasks.correlation_shift import draw, load_pools

    pools = load_pools("mnist", data_dir=MNIST.parent, test_split_only=True)
    assert set(pools) == {"pool_images", "pool_labels"}
    data = draw(jax.random.key(4), pools, n_train=1200, n_val=1200, n_test=None, template_std=0.0)
    pool, labels = mnist
    index = {row.tobytes(): i for i, row in enumerate(pool)}
    assert len(index) == 10_000  # no two MNIST test images are equal

    def rows(x):
        return np.array([index[row.tobytes()] for row in np.asarray(x)])

    train, val, test = rows(data.x_train), rows(data.x_val), rows(data.x_digit)
    assert (len(train), len(val), len(test)) == (1200, 1200, 7600)
    np.testing.assert_array_equal(rows(data.x_noise), test)  # the same images in both tests
    assert len(set(train) | set(val) | set(test)) == 10_000  # disjoint, and every image used
    np.testing.assert_array_equal(data.y_digit, labels[test])


def test_no_test_split_the_rest_of_a_small_pool():
    """Without a test split the test sets are the pool's images left, disjoint from the others
    (each image's first coordinate is its index; no clipping, so it survives the template)."""
    n = 200
    images = jnp.stack([jnp.arange(n) / (4 * n) + 0.3, jnp.full(n, 0.5), jnp.full(n, 0.5)], 1)
    data = make_ood_data(
        jax.random.key(2), images, jnp.arange(n) % 10, n_train=60, n_val=40, template_std=0.01
    )

    def rows(x, template_labels):
        first = np.asarray(x - data.templates[template_labels])[:, 0]
        return np.rint((first - 0.3) * 4 * n).astype(int)

    train, val = rows(data.x_train, data.y_train), rows(data.x_val, data.y_val)
    test = rows(data.x_digit, data.y_digit ^ 1)
    assert (len(train), len(val), len(test)) == (60, 40, 100)
    assert sorted(set(train) | set(val) | set(test)) == list(range(n))
    np.testing.assert_array_equal(rows(data.x_noise, data.y_noise), test)


# --- keys: determinism, vmap ---------------------------------------------------------------------


def test_deterministic_and_key_dependent():
    images, labels = small_pool()
    a = make_ood_data(jax.random.key(0), images, labels, **SMALL)
    b = make_ood_data(jax.random.key(0), images, labels, **SMALL)
    c = make_ood_data(jax.random.key(1), images, labels, **SMALL)
    for left, right in zip(a, b, strict=True):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a.templates, c.templates)
    assert not np.array_equal(a.x_train, c.x_train)


def test_vmap_over_keys_equals_a_loop():
    images, labels = small_pool()
    keys = jax.random.split(jax.random.key(5), 3)
    batched = jax.vmap(lambda k: make_ood_data(k, images, labels, **SMALL))(keys)
    for i, key in enumerate(keys):
        single = make_ood_data(key, images, labels, **SMALL)
        for left, right in zip(batched, single, strict=True):
            np.testing.assert_allclose(left[i], right, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(n_classes=9), ValueError, "n_classes must be an even integer >= 2.*9"),
        (dict(n_train=0), ValueError, "n_train must be an integer >= 1, got 0"),
        (dict(n_test=2.5), ValueError, "n_test must be an integer >= 1, got 2.5"),
        (dict(n_train=30, n_val=10), ValueError, r"30 \+ 10 \+ 20 exceeds the 50 pool images"),
        (dict(template_std=-0.1), ValueError, "template_std must be in >= 0.0, got -0.1"),
        (dict(pool_images=np.zeros((50, 4), np.uint8)), TypeError, "as_features.*uint8"),
        (dict(pool_images=np.zeros((50, 2, 2))), ValueError, r"shape \(N, d\), got \(50, 2, 2\)"),
        (dict(pool_labels=np.arange(49) % 10), ValueError, r"shape \(50,\), got \(49,\)"),
        (dict(pool_labels=np.arange(50) % 10 * 1.0), TypeError, "labels must be integers"),
        (dict(pool_labels=np.arange(50) % 11), ValueError, r"\[0, 10\), got values in \[0, 10\]"),
        (dict(test_images=np.zeros((30, 4))), ValueError, "both test_images and test_labels"),
        (
            dict(test_images=np.zeros((30, 5)), test_labels=np.zeros(30, int)),
            ValueError,
            "test_images have 5 features, the pool 4",
        ),
        (
            dict(test_images=np.zeros((15, 4)), test_labels=np.zeros(15, int)),
            ValueError,
            "n_test = 20 exceeds the 15 test images",
        ),
        (
            dict(test_images=np.zeros((30, 4)), test_labels=np.zeros(30, int), n_train=45),
            ValueError,
            r"n_train \+ n_val = 45 \+ 10 exceeds the 50 pool images",
        ),
        (
            dict(n_train=40, n_test=None),
            ValueError,
            r"n_train \+ n_val = 40 \+ 10 leaves none of the 50 pool images for the test sets",
        ),
    ],
)
def test_make_ood_data_validation(kwargs, error, message):
    images, labels = small_pool()
    arguments = dict(pool_images=images, pool_labels=labels, **SMALL)
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        make_ood_data(jax.random.key(0), **arguments)


# --- the synthetic task --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic():
    """The default synthetic task (the doctest's program), as numpy arrays."""
    return OODData(*(np.asarray(a) for a in synthetic_ood_data(jax.random.key(11))))


def nearest_code(block, n_classes):
    return np.argmax(block @ np.asarray(class_codes(n_classes)).T, axis=1)


@pytest.mark.parametrize("k", [2, 4, 10])
def test_class_codes(k):
    codes = np.asarray(class_codes(k), np.float64)
    expected = np.where(np.eye(k) == 1, 1.0, -1.0 / (k - 1))
    np.testing.assert_allclose(codes @ codes.T, expected, atol=1e-6)
    np.testing.assert_allclose(codes.sum(0), 0.0, atol=1e-6)


def test_synthetic_shapes_and_blocks(synthetic):
    data = synthetic
    assert data.x_train.shape == (200, 20) and data.x_val.shape == (1000, 20)
    assert data.x_digit.shape == data.x_noise.shape == (1000, 20)
    assert data.y_train.dtype == np.int32 and set(np.unique(data.y_train)) == {0, 1}
    # templates live in the spurious block only, b·m(k)
    expected = np.zeros((2, 20), np.float32)
    expected[:, 2:4] = 0.5 * np.asarray(class_codes(2))
    np.testing.assert_allclose(data.templates, expected, atol=1e-7)
    # noise levels per block (pooled over all points): core σ_c = 2 around a·m(y), nuisance 1
    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    core_noise = x[:, :2] - 3.0 * np.asarray(class_codes(2))[y]
    assert abs(core_noise.std() - 2.0) < 0.1 and abs(x[:, 4:].std() - 1.0) < 0.05
    spurious_noise = x[:, 2:4] - data.templates[y][:, 2:4]
    assert np.abs(spurious_noise).max() <= 0.2 + 1e-6  # truncated at 2σ_s
    # low variance along the spurious code, high along the core code
    m = np.asarray(class_codes(2))[1]
    assert np.var(x[:, 2:4] @ m) < 0.3 < 8.0 < np.var(x[:, :2] @ m)


def test_synthetic_spurious_feature_is_perfect_in_distribution(synthetic):
    data = synthetic
    np.testing.assert_array_equal(nearest_code(data.x_train[:, 2:4], 2), data.y_train)
    np.testing.assert_array_equal(nearest_code(data.x_val[:, 2:4], 2), data.y_val)
    np.testing.assert_array_equal(nearest_code(data.x_digit[:, 2:4], 2), data.y_digit ^ 1)
    np.testing.assert_array_equal(nearest_code(data.x_noise[:, 2:4], 2), data.y_noise)
    # both test sets are the same points but for the spurious feature
    np.testing.assert_allclose(
        data.x_digit - data.templates[data.y_digit ^ 1],
        data.x_noise - data.templates[data.y_noise],
        atol=1e-6,
    )


def least_squares_probe(x_train, y_train, columns):
    """A linear probe (least squares on ±1 targets, with intercept) on the given columns."""
    design = np.c_[x_train[:, columns], np.ones(len(x_train))]
    weights, *_ = np.linalg.lstsq(design, 2.0 * y_train - 1.0, rcond=None)
    return lambda x: (np.c_[x[:, columns], np.ones(len(x))] @ weights > 0).astype(int)


def test_synthetic_probes_measure_core_and_spurious_reliance(synthetic):
    data = synthetic
    core = least_squares_probe(data.x_train, data.y_train, slice(0, 2))
    spurious = least_squares_probe(data.x_train, data.y_train, slice(2, 4))

    def accuracy(probe, x, y):
        return np.mean(probe(x) == y)

    # the core probe: clearly above chance in distribution and on invariant-digit (Bayes Φ(1.5)
    # ≈ 0.93), chance on invariant-noise (the label is independent of the core feature)
    assert accuracy(core, data.x_val, data.y_val) > 0.85
    assert accuracy(core, data.x_digit, data.y_digit) > 0.85
    assert 0.4 < accuracy(core, data.x_noise, data.y_noise) < 0.6
    # the spurious probe: perfect in distribution and on invariant-noise, always wrong on
    # invariant-digit
    assert accuracy(spurious, data.x_train, data.y_train) == 1.0
    assert accuracy(spurious, data.x_val, data.y_val) == 1.0
    assert accuracy(spurious, data.x_noise, data.y_noise) == 1.0
    assert accuracy(spurious, data.x_digit, data.y_digit) == 0.0


def test_synthetic_deterministic_per_key(synthetic):
    again = synthetic_ood_data(jax.random.key(11))
    for left, right in zip(synthetic, again, strict=True):
        np.testing.assert_array_equal(left, right)
    other = synthetic_ood_data(jax.random.key(12))
    assert not np.array_equal(synthetic.x_train, other.x_train)


SYNTHETIC_4 = dict(n_classes=4, d=10, n_train=50, n_val=20, n_test=30)


def test_synthetic_more_classes_vmap_equals_a_loop():
    keys = jax.random.split(jax.random.key(3), 3)
    batched = jax.vmap(lambda k: synthetic_ood_data(k, **SYNTHETIC_4))(keys)
    assert batched.x_train.shape == (3, 50, 10) and batched.templates.shape == (3, 4, 10)
    assert not np.array_equal(batched.x_train[0], batched.x_train[1])
    for i, key in enumerate(keys):
        data = OODData(*(np.asarray(a) for a in synthetic_ood_data(key, **SYNTHETIC_4)))
        for left, right in zip(batched, data, strict=True):
            np.testing.assert_allclose(left[i], right, rtol=1e-6, atol=1e-6)
        assert set(np.unique(data.y_train)) <= set(range(4))
        np.testing.assert_array_equal(nearest_code(data.x_train[:, 4:8], 4), data.y_train)
        np.testing.assert_array_equal(nearest_code(data.x_val[:, 4:8], 4), data.y_val)
        np.testing.assert_array_equal(nearest_code(data.x_digit[:, 4:8], 4), data.y_digit ^ 1)
        np.testing.assert_array_equal(nearest_code(data.x_noise[:, 4:8], 4), data.y_noise)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_classes=3), "n_classes must be an even integer"),
        (dict(n_classes=4, d=7), "d must be an integer >= 8, got 7"),
        (dict(n_val=0), "n_val must be an integer >= 1, got 0"),
        (dict(core_std=-1.0), "core_std must be in >= 0.0, got -1.0"),
        (dict(spurious_std=-0.1), "spurious_std must be in >= 0.0"),
    ],
)
def test_synthetic_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic_ood_data(jax.random.key(0), **kwargs)
