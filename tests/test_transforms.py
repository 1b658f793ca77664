"""The Σ^p preconditioner as optax transforms, checked against dense numpy linear algebra."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from jaxprecond.linalg import Eigh, eigh_psd
from jaxprecond.optim.covariance_power import (
    apply_neuronwise,
    covariance_power,
    kernel_labels,
    preconditioner,
    route_to_kernel,
    scale_by_covariance_power,
)
from jaxprecond.tasks.student import init_mlp, regression_loss

DX, DH, N = 4, 6, 16
LR = 0.05
STATIC = ("layout", "kernel", "normalize")


def truth_power(cov: np.ndarray, power: float) -> np.ndarray:
    """``Σ^p`` by scipy, in float64."""
    return scipy.linalg.fractional_matrix_power(np.asarray(cov, np.float64), power).real


def random_like(rng, tree, dtype=None):
    return jax.tree.map(
        lambda leaf: jnp.asarray(rng.normal(size=np.shape(leaf)), dtype or leaf.dtype), tree
    )


def out_in_params(rng, dtype=jnp.float32):
    """A tiny MLP in the package's layout: W1 (dh, dx)."""
    return jax.tree.map(lambda v: v.astype(dtype), init_mlp(jax.random.key(0), DX, DH, scale=1.0))


def in_out_params(rng, dtype=jnp.float32):
    """The same MLP in flax layout: kernel (dx, dh)."""
    return {
        "W1": jnp.asarray(rng.normal(size=(DX, DH)) / np.sqrt(DX), dtype),
        "b1": jnp.zeros(DH, dtype),
        "W2": jnp.asarray(rng.normal(size=DH) / np.sqrt(DH), dtype),
        "b2": jnp.zeros((), dtype),
    }


def in_out_loss(params, x, y):
    hidden = jax.nn.relu(x @ params["W1"] + params["b1"])
    return jnp.mean((hidden @ params["W2"] + params["b2"] - y) ** 2)


def out_in_loss(params, x, y):
    return regression_loss(params, x, y, weight_decay=0.0, n_train=x.shape[0])


PROBLEMS = {"in_out": (in_out_params, in_out_loss), "out_in": (out_in_params, out_in_loss)}


def expected_updates(grads, P, layout, lr=LR):
    """Dense truth: ``-lr·P g_j`` for each neuron of W1, ``-lr·g`` for every other leaf."""
    out = {k: -lr * np.asarray(v, np.float64) for k, v in grads.items()}
    g = np.asarray(grads["W1"], np.float64)
    out["W1"] = -lr * (P @ g if layout == "in_out" else g @ P.T)
    return out


def assert_tree_close(actual, expected, **tol):
    assert set(actual) == set(expected)
    for key in expected:
        np.testing.assert_allclose(np.asarray(actual[key], np.float64), expected[key], **tol)


# --- (a) the transform is (I_dh ⊗ P) on the flattened kernel gradient ----------------------------


@pytest.mark.parametrize("power", [-1.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("layout", ["in_out", "out_in"])
def test_transform_is_kronecker_product(x64, rng, make_spd, layout, power):
    cov = make_spd(DX)
    P = truth_power(cov, power)
    # vec(P G) = (I_dh ⊗ P) vec(G) for the column-major vec of G (dx, dh) (in_out). For out_in
    # the kernel is Gᵀ (dh, dx) and the update is Gᵀ Pᵀ = (P G)ᵀ; the row-major flattening of a
    # (dh, dx) array is the column-major flattening of its (dx, dh) transpose, so the row-major
    # vec of the out_in update is again (I_dh ⊗ P) times the row-major vec of the gradient.
    kron = np.kron(np.eye(DH), P)
    assert kron.shape == (DX * DH, DX * DH)
    shape, order = ((DX, DH), "F") if layout == "in_out" else ((DH, DX), "C")
    grad = rng.normal(size=shape)
    tx = scale_by_covariance_power(jnp.asarray(cov), power, layout=layout)
    update, _ = tx.update(jnp.asarray(grad), tx.init(grad))
    assert update.shape == shape
    vec = np.asarray(update).flatten(order=order)
    np.testing.assert_allclose(vec, kron @ grad.flatten(order=order), rtol=1e-10, atol=1e-12)
    # and each neuron j (column in in_out, row in out_in) becomes P g_j.
    for j in range(DH):
        g_j = grad[:, j] if layout == "in_out" else grad[j]
        u_j = np.asarray(update[:, j] if layout == "in_out" else update[j])
        np.testing.assert_allclose(u_j, P @ g_j, rtol=1e-10, atol=1e-12)


def test_non_symmetric_matrix_neuronwise_orientation(x64, rng):
    # apply_neuronwise takes any (dx, dx) matrix: with a non-symmetric M each neuron must become
    # M g_j in both layouts (so out_in must multiply by Mᵀ on the right, not by M).
    M = rng.normal(size=(DX, DX))
    G = rng.normal(size=(DX, DH))
    np.testing.assert_allclose(apply_neuronwise(jnp.asarray(M), G, "in_out"), M @ G, rtol=1e-12)
    np.testing.assert_allclose(
        apply_neuronwise(jnp.asarray(M), G.T, "out_in"), (M @ G).T, rtol=1e-12
    )


# --- (b) p = 0 is plain gradient descent ---------------------------------------------------------


GRAD = {layout: jax.jit(jax.grad(loss)) for layout, (_, loss) in PROBLEMS.items()}


def run_steps(tx, params, layout, x, y, steps=4):
    update = jax.jit(tx.update)
    grad_fn = GRAD[layout]
    state = tx.init(params)
    history = []
    for _ in range(steps):
        grads = grad_fn(params, x, y)
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        history.append(updates)
    return params, history


@pytest.mark.parametrize("zero", [0, 0.0])
@pytest.mark.parametrize("layout", ["in_out", "out_in"])
def test_python_zero_power_is_bitwise_sgd(rng, make_spd, layout, zero):
    make_params, loss = PROBLEMS[layout]
    params = make_params(rng)
    x, y = jnp.asarray(rng.normal(size=(N, DX)), jnp.float32), jnp.asarray(rng.normal(size=N))
    cov = jnp.asarray(make_spd(DX), jnp.float32)
    final, history = run_steps(covariance_power(LR, cov, zero, layout=layout), params, layout, x, y)
    final_sgd, history_sgd = run_steps(optax.sgd(LR), params, layout, x, y)
    for updates, updates_sgd in zip(history, history_sgd, strict=True):
        for key in updates:
            np.testing.assert_array_equal(updates[key], updates_sgd[key])
    for key in final:
        np.testing.assert_array_equal(final[key], final_sgd[key])
    # the run moved: the comparison is not between two untouched parameter sets.
    assert float(loss(final, x, y)) < float(loss(params, x, y))


def test_traced_zero_power_matches_sgd(rng, make_spd):
    params = out_in_params(rng)
    x, y = jnp.asarray(rng.normal(size=(N, DX)), jnp.float32), jnp.asarray(rng.normal(size=N))
    cov = jnp.asarray(make_spd(DX), jnp.float32)
    injected = optax.inject_hyperparams(covariance_power)(
        learning_rate=LR, covariance=cov, power=0.0, layout="out_in"
    )
    final, history = run_steps(injected, params, "out_in", x, y)
    final_sgd, history_sgd = run_steps(optax.sgd(LR), params, "out_in", x, y)
    for updates, updates_sgd in zip(history, history_sgd, strict=True):
        assert_tree_close(updates, jax.tree.map(np.asarray, updates_sgd), rtol=1e-5, atol=1e-7)
    assert_tree_close(final, jax.tree.map(np.asarray, final_sgd), rtol=1e-5, atol=1e-7)

    @jax.jit
    def update_with_power(power, grads):
        tx = covariance_power(LR, cov, power, layout="out_in")
        return tx.update(grads, tx.init(params), params)[0]

    grads = GRAD["out_in"](params, x, y)
    sgd = optax.sgd(LR)
    expected = sgd.update(grads, sgd.init(params), params)[0]
    assert_tree_close(
        update_with_power(jnp.float32(0.0), grads),
        jax.tree.map(np.asarray, expected),
        rtol=1e-5,
        atol=1e-8,
    )


# --- (c) inject_hyperparams ----------------------------------------------------------------------


@pytest.mark.parametrize("normalize", [None, "max", "trace"])
@pytest.mark.parametrize("layout", ["in_out", "out_in"])
def test_inject_hyperparams_equals_plain_transform(rng, make_spd, layout, normalize):
    make_params, loss = PROBLEMS[layout]
    params = make_params(rng)
    grads = random_like(rng, params)
    cov = jnp.asarray(make_spd(DX), jnp.float32)
    kwargs = dict(layout=layout, normalize=normalize, damping=0.1)
    plain = covariance_power(LR, cov, 0.5, **kwargs)
    injected = optax.inject_hyperparams(covariance_power, static_args=STATIC)(
        learning_rate=LR, covariance=cov, power=0.5, **kwargs
    )
    assert set(injected.init(params).hyperparams) >= {"learning_rate", "power", "covariance"}
    expected = plain.update(grads, plain.init(params), params)[0]
    actual = injected.update(grads, injected.init(params), params)[0]
    for key in expected:  # op by op the same numbers give the same bits
        np.testing.assert_array_equal(actual[key], expected[key])
    jitted = jax.jit(injected.update)(grads, injected.init(params), params)[0]
    assert_tree_close(jitted, jax.tree.map(np.asarray, expected), rtol=1e-5, atol=1e-7)
    # and the injected power really is used: changing it in the state changes the update.
    state = injected.init(params)
    state.hyperparams["power"] = jnp.asarray(1.0)
    changed = injected.update(grads, state, params)[0]
    P1 = truth_power(np.asarray(cov, np.float64) + 0.1 * np.eye(DX), 1.0)
    if normalize == "max":
        P1 = P1 / np.linalg.eigvalsh(P1).max()
    elif normalize == "trace":
        P1 = P1 * DX / np.trace(P1)
    assert_tree_close(changed, expected_updates(grads, P1, layout), rtol=2e-5, atol=1e-6)


def test_inject_hyperparams_with_callable_kernel(rng, make_spd):
    params = out_in_params(rng)
    grads = random_like(rng, params)
    cov = make_spd(DX)

    def mask(p):
        return {k: k == "W1" for k in p}

    injected = optax.inject_hyperparams(covariance_power, static_args=STATIC)(
        learning_rate=LR,
        covariance=jnp.asarray(cov, jnp.float32),
        power=-1.0,
        layout="out_in",
        kernel=mask,
    )
    updates = jax.jit(injected.update)(grads, injected.init(params), params)[0]
    expected = expected_updates(grads, truth_power(cov, -1.0), "out_in")
    assert_tree_close(updates, expected, rtol=2e-5, atol=1e-6)


def test_inject_hyperparams_with_eigh_covariance_under_jit(rng, make_spd):
    params = out_in_params(rng)
    grads = random_like(rng, params)
    cov = make_spd(DX)
    injected = optax.inject_hyperparams(covariance_power, static_args=STATIC)(
        learning_rate=LR,
        covariance=eigh_psd(jnp.asarray(cov, jnp.float32)),
        power=0.5,
        layout="out_in",
    )
    updates = jax.jit(injected.update)(grads, injected.init(params), params)[0]
    expected = expected_updates(grads, truth_power(cov, 0.5), "out_in")
    # float32 eigendecomposition inside the update: compare relative to each array's scale
    for key in expected:
        scale = np.abs(expected[key]).max()
        np.testing.assert_allclose(updates[key], expected[key], rtol=1e-5, atol=1e-5 * scale)


# --- (d) jit and vmap ----------------------------------------------------------------------------


def test_vmap_over_seeds_equals_loop(x64, rng, make_spd):
    cov = make_spd(DX)
    tx = covariance_power(LR, jnp.asarray(cov), 0.5, layout="out_in")
    shapes = {"W1": (8, DH, DX), "b1": (8, DH), "W2": (8, DH), "b2": (8,)}
    params = {k: jnp.asarray(rng.normal(size=shape)) for k, shape in shapes.items()}
    grads = random_like(rng, params)

    @jax.jit
    def one(p, g):
        return tx.update(g, tx.init(p), p)[0]

    batched = jax.jit(jax.vmap(one))(params, grads)
    P = truth_power(cov, 0.5)
    for i in range(8):
        p_i = jax.tree.map(lambda v, i=i: v[i], params)
        g_i = jax.tree.map(lambda v, i=i: v[i], grads)
        b_i = jax.tree.map(lambda v, i=i: np.asarray(v[i]), batched)
        assert_tree_close(b_i, jax.tree.map(np.asarray, one(p_i, g_i)), rtol=1e-12, atol=1e-14)
        assert_tree_close(b_i, expected_updates(g_i, P, "out_in"), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("layout", ["in_out", "out_in"])
def test_vmap_over_power_equals_per_power(x64, rng, make_spd, layout):
    make_params, _ = PROBLEMS[layout]
    params = make_params(rng, jnp.float64)
    grads = random_like(rng, params)
    cov = make_spd(DX)
    powers = [-1.0, -0.5, 0.0, 0.5, 1.0, 2.0]

    def update(power):
        tx = covariance_power(LR, jnp.asarray(cov), power, layout=layout)
        return tx.update(grads, tx.init(params), params)[0]

    batched = jax.jit(jax.vmap(update))(jnp.asarray(powers))
    for i, power in enumerate(powers):
        row = jax.tree.map(lambda v, i=i: np.asarray(v[i]), batched)
        expected = expected_updates(grads, truth_power(cov, power), layout)
        assert_tree_close(row, expected, rtol=1e-10, atol=1e-13)


def test_vmap_over_damping_with_matrix_covariance(x64, rng, make_spd):
    cov = make_spd(DX)
    grad = rng.normal(size=(DH, DX))
    dampings = jnp.asarray([0.0, 0.3, 2.0])

    def update(damping):
        tx = scale_by_covariance_power(jnp.asarray(cov), -1.0, layout="out_in", damping=damping)
        return tx.update(jnp.asarray(grad), tx.init(grad))[0]

    batched = jax.vmap(update)(dampings)
    for i, d in enumerate(np.asarray(dampings)):
        expected = grad @ np.linalg.inv(cov + d * np.eye(DX))
        np.testing.assert_allclose(batched[i], expected, rtol=1e-10)


def test_vmap_over_damping_with_eigh_covariance(x64, rng, make_spd):
    cov = make_spd(DX)
    grad = rng.normal(size=(DH, DX))
    eigh = eigh_psd(jnp.asarray(cov))

    def update(damping):
        tx = scale_by_covariance_power(eigh, -1.0, layout="out_in", damping=damping)
        return tx.update(jnp.asarray(grad), tx.init(grad))[0]

    batched = jax.vmap(update)(jnp.asarray([0.0, 0.5]))
    np.testing.assert_allclose(batched[1], grad @ np.linalg.inv(cov + 0.5 * np.eye(DX)))


def test_eigh_covariance_equals_matrix_covariance(x64, rng, make_spd):
    cov = make_spd(DX)
    grad = rng.normal(size=(DH, DX))
    eigh = eigh_psd(jnp.asarray(cov))
    assert isinstance(eigh, Eigh)
    for damping in (0.0, 0.5):
        tx = scale_by_covariance_power(eigh, -0.5, layout="out_in", damping=damping)
        expected = grad @ truth_power(cov + damping * np.eye(DX), -0.5)
        np.testing.assert_allclose(tx.update(grad, tx.init(grad))[0], expected, rtol=1e-10)


# --- (e) routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["in_out", "out_in"])
def test_only_w1_is_preconditioned(x64, rng, make_spd, layout):
    make_params, _ = PROBLEMS[layout]
    params = make_params(rng, jnp.float64)
    grads = random_like(rng, params)
    cov = make_spd(DX, low=0.1, high=10.0)
    tx = covariance_power(LR, jnp.asarray(cov), 1.0, layout=layout)
    updates = tx.update(grads, tx.init(params), params)[0]
    for key in ("b1", "W2", "b2"):
        np.testing.assert_array_equal(updates[key], -LR * grads[key])
    assert not np.allclose(updates["W1"], -LR * grads["W1"])
    assert_tree_close(updates, expected_updates(grads, cov, layout), rtol=1e-12, atol=1e-14)


def test_callable_kernel_mask_in_nested_flax_tree(x64, rng, make_spd):
    # Flax-like names: two leaves are called "kernel"; the mask picks the first layer's only.
    params = {
        "Dense_0": {"kernel": rng.normal(size=(DX, DH)), "bias": np.zeros(DH)},
        "Dense_1": {"kernel": rng.normal(size=(DH, 1)), "bias": np.zeros(1)},
    }
    params = jax.tree.map(jnp.asarray, params)
    grads = random_like(rng, params)
    cov = make_spd(DX)

    def mask(p):
        return {
            "Dense_0": {"kernel": True, "bias": False},
            "Dense_1": {"kernel": False, "bias": False},
        }

    tx = covariance_power(LR, jnp.asarray(cov), 0.5, layout="in_out", kernel=mask)
    updates = jax.jit(tx.update)(grads, tx.init(params), params)[0]
    np.testing.assert_allclose(
        updates["Dense_0"]["kernel"],
        -LR * truth_power(cov, 0.5) @ np.asarray(grads["Dense_0"]["kernel"]),
        rtol=1e-10,
    )
    for path in (("Dense_0", "bias"), ("Dense_1", "kernel"), ("Dense_1", "bias")):
        np.testing.assert_array_equal(updates[path[0]][path[1]], -LR * grads[path[0]][path[1]])


def test_string_kernel_matches_attribute_and_nested_keys():
    labels = kernel_labels("kernel")({"Dense_0": {"kernel": 0.0, "bias": 0.0}, "head": [1.0]})
    assert labels == {"Dense_0": {"kernel": "kernel", "bias": "rest"}, "head": ["rest"]}


def test_missing_kernel_name_raises(rng, make_spd):
    params = out_in_params(rng)
    tx = covariance_power(LR, make_spd(DX), 1.0, layout="out_in", kernel="W9")
    with pytest.raises(ValueError, match="W9"):
        tx.init(params)
    with pytest.raises(ValueError, match="W9"):
        route_to_kernel(optax.identity(), "W9").init([params["W1"], params["b1"]])
    with pytest.raises(TypeError):
        kernel_labels(3)


def test_missing_kernel_name_in_bare_array_raises_value_error():
    with pytest.raises(ValueError, match="W1"):
        route_to_kernel(optax.identity(), "W1").init(jnp.ones((DH, DX)))


def test_inside_chain_with_clipping(x64, rng, make_spd):
    params = out_in_params(rng, jnp.float64)
    grads = jax.tree.map(lambda g: 10.0 * g, random_like(rng, params))
    cov = make_spd(DX)
    max_norm = 0.5
    tx = optax.chain(
        optax.clip_by_global_norm(max_norm),
        covariance_power(LR, jnp.asarray(cov), -1.0, layout="out_in"),
    )
    updates = jax.jit(tx.update)(grads, tx.init(params), params)[0]
    norm = np.sqrt(sum(np.sum(np.asarray(g) ** 2) for g in grads.values()))
    assert norm > max_norm  # clipping is active
    clipped = {k: np.asarray(v) * max_norm / norm for k, v in grads.items()}
    expected = expected_updates(clipped, np.linalg.inv(cov), "out_in")
    assert_tree_close(updates, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("k", [1, 3])
def test_inside_multisteps_applies_transform_of_mean_gradient(x64, rng, make_spd, k):
    params = out_in_params(rng, jnp.float64)
    cov = make_spd(DX)
    inner = covariance_power(LR, jnp.asarray(cov), 0.5, layout="out_in")
    tx = optax.MultiSteps(inner, k, accumulator_dtype=jnp.float64)  # optax defaults to float32
    state = tx.init(params)
    update = jax.jit(tx.update)
    micro = [random_like(rng, params) for _ in range(2 * k)]
    P = truth_power(cov, 0.5)
    for start in (0, k):
        for i in range(k):
            updates, state = update(micro[start + i], state, params)
            if i < k - 1:
                for leaf in jax.tree.leaves(updates):
                    np.testing.assert_array_equal(leaf, 0.0)
        mean = {
            key: np.mean([np.asarray(g[key]) for g in micro[start : start + k]], axis=0)
            for key in params
        }
        assert_tree_close(updates, expected_updates(mean, P, "out_in"), rtol=1e-10, atol=1e-14)


# --- (f) normalisation and validation ------------------------------------------------------------


def effective_matrix(cov, power, normalize, layout="in_out"):
    """Recover P by feeding the identity (one neuron per input axis) through the transform."""
    tx = scale_by_covariance_power(jnp.asarray(cov), power, layout=layout, normalize=normalize)
    return np.asarray(tx.update(jnp.eye(DX), tx.init(None))[0])


@pytest.mark.parametrize("power", [-1.0, 0.5, 1.0, 2.0])
def test_normalize_max(x64, make_spd, power):
    cov = make_spd(DX, low=0.2, high=5.0)
    P = effective_matrix(cov, power, "max")
    np.testing.assert_allclose(np.linalg.eigvalsh(P).max(), 1.0, rtol=1e-12)
    truth = truth_power(cov, power)
    np.testing.assert_allclose(P, truth / np.linalg.eigvalsh(truth).max(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(effective_matrix(cov, power, "max", "out_in"), P.T, rtol=1e-12)


@pytest.mark.parametrize("power", [-1.0, 0.5, 1.0, 2.0])
def test_normalize_trace(x64, make_spd, power):
    cov = make_spd(DX, low=0.2, high=5.0)
    P = effective_matrix(cov, power, "trace")
    np.testing.assert_allclose(np.trace(P), DX, rtol=1e-12)
    truth = truth_power(cov, power)
    np.testing.assert_allclose(P, truth * DX / np.trace(truth), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("normalize", [None, "max", "trace"])
def test_zero_power_stays_identity(x64, make_spd, normalize):
    cov = make_spd(DX, low=0.2, high=5.0)
    np.testing.assert_array_equal(effective_matrix(cov, 0, normalize), np.eye(DX))
    assert preconditioner(jnp.asarray(cov), 0.0, normalize=normalize) is None
    traced = jax.jit(lambda p: preconditioner(jnp.asarray(cov), p, normalize=normalize))
    np.testing.assert_allclose(traced(0.0), np.eye(DX), atol=1e-14)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(layout="flax"), "layout"),
        (dict(layout=None), "layout"),
        (dict(layout="in_out", normalize="l2"), "normalize"),
        (dict(layout="out_in", damping=-0.1), "damping"),
        (dict(layout="out_in", power=jnp.ones(2)), "power"),
    ],
)
def test_bad_arguments_raise_at_construction(make_spd, kwargs, match):
    cov = make_spd(DX)
    kwargs = dict(kwargs)
    power = kwargs.pop("power", 1.0)
    with pytest.raises(ValueError, match=match):
        scale_by_covariance_power(cov, power, **kwargs)
    with pytest.raises(ValueError, match=match):
        covariance_power(LR, cov, power, **kwargs)


def test_bad_normalize_in_preconditioner_raises(make_spd):
    with pytest.raises(ValueError, match="normalize"):
        preconditioner(make_spd(DX), 1.0, normalize="frobenius")


@pytest.mark.parametrize(
    "layout, shape",
    [
        ("out_in", (DH, DX + 1)),
        ("out_in", (DX, DH)),
        ("in_out", (DH, DX)),
        ("in_out", (DX,)),
        ("out_in", (2, DH, DX)),
    ],
)
def test_wrong_kernel_shape_raises_naming_the_shape(make_spd, layout, shape):
    tx = scale_by_covariance_power(make_spd(DX), 1.0, layout=layout)
    grad = jnp.ones(shape)
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        tx.update(grad, tx.init(grad))
    routed = covariance_power(LR, make_spd(DX), 1.0, layout=layout)
    params = {"W1": grad, "b1": jnp.zeros(3)}
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        routed.update(params, routed.init(params), params)


# --- (g) dtypes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
@pytest.mark.parametrize("layout", ["in_out", "out_in"])
def test_updates_keep_dtype(rng, make_spd, layout, dtype):
    make_params, _ = PROBLEMS[layout]
    params = make_params(rng, dtype)
    grads = random_like(rng, params)
    cov = make_spd(DX)
    P = truth_power(cov, 0.5)
    tol = {jnp.bfloat16: 3e-2, jnp.float16: 3e-3, jnp.float32: 1e-5}[dtype]
    tx = covariance_power(LR, jnp.asarray(cov, jnp.float32), 0.5, layout=layout)
    for updates in (
        tx.update(grads, tx.init(params), params)[0],
        jax.jit(tx.update)(grads, tx.init(params), params)[0],
        jax.jit(
            lambda p: covariance_power(LR, jnp.asarray(cov, jnp.float32), p, layout=layout).update(
                grads, tx.init(params), params
            )[0]
        )(jnp.float32(0.5)),
    ):
        for key in params:
            assert updates[key].dtype == dtype, key
        assert_tree_close(updates, expected_updates(grads, P, layout), rtol=tol, atol=tol * LR)
