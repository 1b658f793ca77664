"""K-FAC against dense Kronecker products, the Σ^p transform, autodiff and plain SGD."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxprecond.optim.covariance_power import scale_by_covariance_power
from jaxprecond.optim.kfac import MLP_LAYERS, kfac, mlp_kfac_statistics, scale_by_kfac
from jaxprecond.tasks.single_index import case_spectrum, sample_task
from jaxprecond.tasks.student import init_mlp, regression_loss

DX, DH, N = 5, 7, 24
STATIC = ("layers", "include_bias", "refresh_every")


def random_problem(rng, dtype=jnp.float64):
    """MLP-shaped parameters and gradients, random layer inputs and output gradients."""
    shapes = {"W1": (DH, DX), "b1": (DH,), "W2": (DH,), "b2": ()}
    params = {k: jnp.asarray(rng.normal(size=s), dtype) for k, s in shapes.items()}
    grads = {k: jnp.asarray(rng.normal(size=s), dtype) for k, s in shapes.items()}
    inputs = {"layer1": rng.normal(size=(N, DX)), "layer2": np.abs(rng.normal(size=(N, DH)))}
    out_grads = {"layer1": rng.normal(size=(N, DH)), "layer2": rng.normal(size=(N, 1))}
    to_jax = lambda d: {k: jnp.asarray(v, dtype) for k, v in d.items()}  # noqa: E731
    return params, grads, to_jax(inputs), to_jax(out_grads)


def first_update(tx, grads, params, **extra):
    """``tx.update`` from ``tx.init(params)`` as one compiled program (eager is slow)."""
    return jax.jit(lambda g, p, e: tx.update(g, tx.init(p), p, **e))(grads, params, extra)


def np_power(matrix, power):
    """Symmetric matrix power by numpy's eigendecomposition, float64."""
    lam, q = np.linalg.eigh(matrix)
    return (q * lam**power) @ q.T


def truth_update(grad, a, g, *, include_bias, input_power, output_power, damping):
    """``(A^p ⊗ G^q) vec(∇)`` as a dense matrix, ``vec`` stacking columns (paper's convention)."""
    a, g = np.asarray(a, np.float64), np.asarray(g, np.float64)
    if include_bias:
        a = np.hstack([a, np.ones((a.shape[0], 1))])
    big_a = a.T @ a / a.shape[0] + np.sqrt(damping) * np.eye(a.shape[1])
    big_g = g.T @ g / g.shape[0] + np.sqrt(damping) * np.eye(g.shape[1])
    if input_power == output_power == -1:
        kron = np.linalg.inv(np.kron(big_a, big_g))
    else:
        kron = np.kron(np_power(big_a, input_power), np_power(big_g, output_power))
    grad = np.asarray(grad, np.float64)
    return (kron @ grad.flatten(order="F")).reshape(grad.shape, order="F")


def layer_matrix(grads, kernel, bias, include_bias):
    w = np.asarray(grads[kernel]).reshape(-1, np.shape(grads[kernel])[-1])
    return np.hstack([w, np.asarray(grads[bias]).reshape(-1, 1)]) if include_bias else w


@pytest.mark.parametrize(
    "input_power, output_power, include_bias",
    [(-1.0, -1.0, True), (-1.0, -1.0, False), (-0.5, -1.0, True), (0.5, -0.25, True)],
)
def test_first_update_is_the_dense_kronecker_inverse(
    x64, rng, input_power, output_power, include_bias
):
    params, grads, inputs, out_grads = random_problem(rng)
    damping = 1e-3
    tx = scale_by_kfac(
        MLP_LAYERS,
        damping=damping,
        input_power=input_power,
        output_power=output_power,
        include_bias=include_bias,
    )
    updates, _ = first_update(tx, grads, params, layer_inputs=inputs, output_grads=out_grads)
    for name, (kernel, bias) in MLP_LAYERS.items():
        expected = truth_update(
            layer_matrix(grads, kernel, bias, include_bias),
            inputs[name],
            out_grads[name],
            include_bias=include_bias,
            input_power=input_power,
            output_power=output_power,
            damping=damping,
        )
        got = layer_matrix(updates, kernel, bias, include_bias)
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)
        if not include_bias:  # the bias then passes through as a plain gradient
            np.testing.assert_array_equal(updates[bias], grads[bias])


def test_factors_are_exponential_moving_averages(x64, rng):
    params, grads, inputs1, out1 = random_problem(rng)
    _, _, inputs2, out2 = random_problem(rng)
    decay = 0.7
    tx = scale_by_kfac(MLP_LAYERS, decay=decay)
    update = jax.jit(tx.update)
    state = jax.jit(tx.init)(params)
    _, state = update(grads, state, params, layer_inputs=inputs1, output_grads=out1)
    _, state = update(grads, state, params, layer_inputs=inputs2, output_grads=out2)

    def stat(x, bias=False):
        x = np.hstack([x, np.ones((x.shape[0], 1))]) if bias else np.asarray(x)
        return x.T @ x / x.shape[0]

    for name in MLP_LAYERS:
        factors = state.factors[name]
        ema_a = decay * stat(inputs1[name], True) + (1 - decay) * stat(inputs2[name], True)
        ema_g = decay * stat(out1[name]) + (1 - decay) * stat(out2[name])
        np.testing.assert_allclose(factors.input_factor, ema_a, rtol=1e-12)
        np.testing.assert_allclose(factors.output_factor, ema_g, rtol=1e-12)


@pytest.mark.parametrize("power", [-1.0, 0.5, 1.0])
def test_input_factor_alone_is_the_covariance_power(x64, rng, power):
    """No bias column, G⁰, no damping, layer 1 only: ``∇W1 Σ̂^p`` with ``Σ̂ = xᵀx/N``."""
    params, grads, inputs, out_grads = random_problem(rng)
    x = inputs["layer1"]
    sigma = x.T @ x / N
    tx = scale_by_kfac(
        {"layer1": ("W1", "b1")},
        include_bias=False,
        input_power=power,
        output_power=0,
        damping=0.0,
    )
    updates, _ = first_update(tx, grads, params, layer_inputs=inputs, output_grads=out_grads)
    reference = scale_by_covariance_power(sigma, power, layout="out_in")
    expected, _ = reference.update(grads["W1"], reference.init(grads["W1"]))
    np.testing.assert_allclose(updates["W1"], expected, rtol=1e-10, atol=1e-12)
    for key in ("b1", "W2", "b2"):  # parameters outside the listed layers pass through
        np.testing.assert_array_equal(updates[key], grads[key])


def test_statistics_reproduce_the_autodiff_gradient(x64, rng):
    params = {
        "W1": rng.normal(size=(DH, DX)),
        "b1": 0.1 * rng.normal(size=DH),
        "W2": rng.normal(size=DH),
        "b2": np.float64(0.3),
    }
    x, y = rng.normal(size=(N, DX)), rng.normal(size=N)
    statistics = jax.jit(mlp_kfac_statistics, static_argnames=("n_train",))
    inputs, out_grads = statistics(params, x, y)
    grads = jax.jit(jax.grad(regression_loss), static_argnames=("n_train",))(
        params, x, y, weight_decay=0.0, n_train=N
    )

    hidden = np.maximum(x @ params["W1"].T + params["b1"], 0.0)
    np.testing.assert_allclose(inputs["layer1"], x)
    np.testing.assert_allclose(inputs["layer2"], hidden, rtol=1e-12)
    g1, g2 = np.asarray(out_grads["layer1"]), np.asarray(out_grads["layer2"])
    assert g1.shape == (N, DH) and g2.shape == (N, 1)
    np.testing.assert_allclose(g1.T @ x / N, grads["W1"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g1.sum(0) / N, grads["b1"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose((g2.T @ hidden)[0] / N, grads["W2"], rtol=1e-10)
    np.testing.assert_allclose(g2.sum() / N, grads["b2"], rtol=1e-10)
    # at the output, g_i is example i's own gradient 2 (f(x_i) − y_i)
    residual = hidden @ params["W2"] + params["b2"] - y
    np.testing.assert_allclose(g2[:, 0], 2 * residual, rtol=1e-10)
    _, doubled = statistics(params, x, y, n_train=2 * N)
    np.testing.assert_allclose(doubled["layer2"], 2 * g2, rtol=1e-12)


def final_losses(tx, params, x, y, steps, *, stats):
    """Full-batch training as one ``lax.scan``; K-FAC gets its statistics every step."""

    def loss(p):
        return regression_loss(p, x, y, weight_decay=0.0, n_train=x.shape[0])

    def body(carry, t):
        p, state = carry
        extra = {}
        if stats:
            layer_inputs, output_grads = mlp_kfac_statistics(p, x, y)
            extra = dict(layer_inputs=layer_inputs, output_grads=output_grads, step=t)
        updates, state = tx.update(jax.grad(loss)(p), state, p, **extra)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), jnp.arange(steps))
    return loss(params)


def test_kfac_trains_a_tiny_mlp_faster_than_tuned_sgd():
    steps, rates = 200, jnp.array([0.01, 0.03, 0.1, 0.3])

    @jax.jit
    def losses():
        spectrum = case_spectrum("high", dx=6)
        task = sample_task(jax.random.key(0), spectrum, jnp.inf, n=64, n_train=32)
        x, y = task.x_train, task.y_train
        params = init_mlp(jax.random.key(1), 6, 8, scale=0.1)
        start = regression_loss(params, x, y, weight_decay=0.0, n_train=32)
        tx = kfac(0.01, MLP_LAYERS, damping=1e-3, momentum=0.9)
        kfac_loss = final_losses(tx, params, x, y, steps, stats=True)

        def sgd_loss(lr):
            sgd = optax.inject_hyperparams(optax.sgd)(lr)
            return final_losses(sgd, params, x, y, steps, stats=False)

        return start, kfac_loss, jax.vmap(sgd_loss)(rates)

    start, kfac_loss, sgd = map(np.asarray, losses())
    best_sgd = np.nanmin(np.where(np.isfinite(sgd), sgd, np.nan))  # lr 0.3 diverges
    assert np.isfinite(kfac_loss) and kfac_loss < 1e-3 * start
    assert kfac_loss < 0.1 * best_sgd, (kfac_loss, sgd)


def run_refresh(params, grads, inputs, out_grads, first_step):
    """One update per batch with ``refresh_every=3``, passing ``step=first_step + t``."""
    tx = scale_by_kfac(MLP_LAYERS, refresh_every=3, decay=0.5)

    def body(state, batch):
        t, layer_inputs, output_grads = batch
        updates, state = tx.update(
            grads, state, params, layer_inputs=layer_inputs, output_grads=output_grads, step=t
        )
        factors = state.factors["layer1"]
        return state, (updates, factors.input_preconditioner, factors.input_factor)

    steps = first_step + jnp.arange(inputs["layer1"].shape[0])
    _, out = jax.lax.scan(body, tx.init(params), (steps, inputs, out_grads))
    return out


def test_refresh_every_three_steps_and_vmap_equals_a_loop(rng):
    params, grads, _, _ = random_problem(rng, jnp.float32)
    steps = 8
    per_seed = []
    for _ in range(4):  # a fresh batch of statistics at every step, for each of 4 seeds
        inputs = {
            "layer1": rng.normal(size=(steps, N, DX)),
            "layer2": np.abs(rng.normal(size=(steps, N, DH))),
        }
        out_grads = {
            "layer1": rng.normal(size=(steps, N, DH)),
            "layer2": rng.normal(size=(steps, N, 1)),
        }
        per_seed.append(jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), (inputs, out_grads)))
    refresh = jax.jit(run_refresh)
    loop = [refresh(params, grads, *batches, 0) for batches in per_seed]

    def refreshed_at(stored):
        previous = np.concatenate([np.eye(stored.shape[-1])[None], stored[:-1]])  # init: I
        return [t for t in range(steps) if not np.array_equal(stored[t], previous[t])]

    _, stored, factors = loop[0]
    assert refreshed_at(stored) == [0, 3, 6]
    root = np.sqrt(1e-3)  # the default damping γ: the stored power is (A + √γ I)⁻¹
    for t in range(steps):  # the stored inverse is that of the factor at the last refresh
        last = np.asarray(factors[t - t % 3], np.float64)
        inverse = np.linalg.inv(last + root * np.eye(len(last)))
        np.testing.assert_allclose(stored[t], inverse, rtol=1e-4, atol=1e-4 * np.abs(inverse).max())
    # the schedule follows the step argument, not the state's count
    assert refreshed_at(refresh(params, grads, *per_seed[0], 1)[1]) == [2, 5]

    stacked = jax.tree.map(lambda *v: jnp.stack(v), *per_seed)
    batched = jax.jit(jax.vmap(run_refresh, in_axes=(None, None, 0, 0, None)))(
        params, grads, *stacked, 0
    )
    for seed, single in enumerate(loop):
        for got, want in zip(jax.tree.leaves(batched), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(got[seed], want, rtol=2e-5, atol=1e-6)


def test_jit_inject_hyperparams_chain_and_dtypes(rng):
    params, grads, inputs, out_grads = random_problem(rng, jnp.float32)
    extra = dict(layer_inputs=inputs, output_grads=out_grads)
    settings = dict(decay=0.8, damping=1e-2, input_power=-1.0, output_power=-0.5)
    plain = scale_by_kfac(MLP_LAYERS, **settings)
    expected, _ = first_update(plain, grads, params, **extra)

    # the same updates from inject_hyperparams, whose damping may be changed in its state
    injected = optax.inject_hyperparams(scale_by_kfac, static_args=STATIC)(MLP_LAYERS, **settings)
    update = jax.jit(injected.update)
    state = jax.jit(injected.init)(params)
    via_injected, state = update(grads, state, params, **extra)
    state.hyperparams["damping"] = jnp.asarray(0.5, jnp.float32)
    damped, _ = update(grads, state, params, **extra)
    reference = scale_by_kfac(MLP_LAYERS, **{**settings, "damping": 0.5})
    expected_damped, _ = first_update(reference, grads, params, **extra)

    # the kfac alias, an optax.chain: −lr · direction on the first step (momentum starts at 0)
    alias, _ = first_update(kfac(0.1, MLP_LAYERS, **settings), grads, params, **extra)
    # injected (traced) powers take the eigendecomposition, the plain inverse Cholesky: the
    # same matrices up to float32 rounding (one entry here 6e-5 relative apart)
    for key in params:
        for got, want in ((via_injected, expected), (damped, expected_damped)):
            scale = float(np.abs(want[key]).max())
            np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5 * scale)
        np.testing.assert_allclose(alias[key], -0.1 * expected[key], rtol=1e-6)

    # bfloat16 parameters: updates keep the dtype, statistics are float32
    half_params, half_grads = jax.tree.map(lambda v: v.astype(jnp.bfloat16), (params, grads))
    updates, state = first_update(plain, half_grads, half_params, **extra)
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    assert state.factors["layer1"].input_factor.dtype == jnp.float32
    for key in params:
        np.testing.assert_allclose(
            updates[key].astype(np.float32), expected[key], rtol=0.05, atol=0.05
        )


def test_in_out_layout_is_the_transpose(x64, rng):
    params, grads, inputs, out_grads = random_problem(rng)
    layers = {"layer1": ("W1", "b1")}
    extra = dict(layer_inputs=inputs, output_grads=out_grads)
    out_in = scale_by_kfac(layers)
    in_out = scale_by_kfac(layers, layout="in_out")
    transpose = lambda t: {**t, "W1": t["W1"].T}  # noqa: E731
    want, _ = first_update(out_in, grads, params, **extra)
    got, _ = first_update(in_out, transpose(grads), transpose(params), **extra)
    np.testing.assert_allclose(got["W1"].T, want["W1"], rtol=1e-12)
    np.testing.assert_allclose(got["b1"], want["b1"], rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(decay=1.0), "decay"),
        (dict(decay=-0.1), "decay"),
        (dict(damping=-1e-3), "damping"),
        (dict(refresh_every=0), "refresh_every"),
        (dict(refresh_every=2.0), "refresh_every"),
        (dict(layout="rows"), "layout"),
        (dict(layers={}), "layers"),
        (dict(layers={"dense": "W1"}), "dense"),
        (dict(layers={"a": ("W1", None), "b": ("W1", "b1")}), "W1"),
        (dict(input_power=np.ones(2)), "input_power"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
    kwargs = {"layers": MLP_LAYERS, **kwargs}
    with pytest.raises(ValueError, match=match):
        scale_by_kfac(**kwargs)


def test_missing_statistics_raise(rng):
    params, grads, inputs, out_grads = random_problem(rng, jnp.float32)
    tx = scale_by_kfac(MLP_LAYERS)
    state = jax.jit(tx.init)(params)
    with pytest.raises(ValueError, match="output_grads"):
        tx.update(grads, state, params, layer_inputs=inputs)
    with pytest.raises(ValueError, match="layer2"):
        tx.update(grads, state, params, layer_inputs=inputs, output_grads={"layer1": 0})
    with pytest.raises(ValueError, match="W9"):
        scale_by_kfac({"layer": ("W9", None)}).init(params)
    with pytest.raises(ValueError, match="b2"):
        scale_by_kfac({"layer": ("W1", "b2")}).init(params)
    with pytest.raises(ValueError, match="shapes"):
        bad = {**inputs, "layer1": inputs["layer1"][:, :2]}
        tx.update(grads, state, params, layer_inputs=bad, output_grads=out_grads)
