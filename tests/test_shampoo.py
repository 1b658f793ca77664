"""Shampoo against dense float64 matrix powers, Adam/SGD norms and known optima."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from jaxprecond.optim.shampoo import scale_by_shampoo, shampoo

EPS = 1e-6


def dense_root(matrix, exponent):
    """``matrix^exponent`` by scipy's Schur–Padé algorithm (the independent truth)."""
    return np.real(scipy.linalg.fractional_matrix_power(matrix, exponent))


def numpy_shampoo(grads, exponent=-0.25, eps=EPS, decay=None):
    """The paper's Algorithm 1 written out densely in float64: one update per gradient."""
    m, n = grads[0].shape
    left, right = np.zeros((m, m)), np.zeros((n, n))
    out = []
    for g in grads:
        w_old, w_new = (1.0, 1.0) if decay is None else (decay, 1 - decay)
        left = w_old * left + w_new * g @ g.T
        right = w_old * right + w_new * g.T @ g
        l_root = dense_root(eps * np.eye(m) + left, exponent)
        r_root = dense_root(eps * np.eye(n) + right, exponent)
        out.append(l_root @ g @ r_root)
    return out


def run_updates(tx, grads, params=None, *, pass_step=True):
    """Feed ``grads`` one by one to the jitted update; return the updates and the states."""
    state = tx.init(grads[0] if params is None else params)
    update = jax.jit(tx.update)
    updates, states = [], []
    for t, g in enumerate(grads):
        u, state = update(g, state, params, step=t) if pass_step else update(g, state, params)
        updates.append(u)
        states.append(state)
    return updates, states


@pytest.mark.parametrize("decay", [None, 0.9])
def test_matrix_update_equals_explicit_matrix_powers(x64, decay):
    """A non-square 3 × 5 matrix, 4 steps: L^(−1/4) G R^(−1/4) of the dense float64 sums."""
    grads = list(np.random.default_rng(0).normal(size=(4, 3, 5)))
    updates, _ = run_updates(scale_by_shampoo(decay=decay), [jnp.asarray(g) for g in grads])
    for got, want in zip(updates, numpy_shampoo(grads, decay=decay), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-8)


def test_matrix_update_in_float32_and_another_exponent():
    grads = list(np.random.default_rng(1).normal(size=(3, 4, 2)))
    tx = scale_by_shampoo(exponent=-0.5, eps=1e-3)
    updates, _ = run_updates(tx, [jnp.asarray(g, jnp.float32) for g in grads])
    for got, want in zip(updates, numpy_shampoo(grads, -0.5, 1e-3), strict=True):
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)


def test_vector_and_scalar_use_the_closed_form_diagonal(x64):
    """(ε + Σ g²)^(2·exponent) ⊙ g: AdaGrad's g / √(ε + Σ g²) for the default exponent."""
    rng = np.random.default_rng(2)
    vectors, scalars = rng.normal(size=(4, 6)), rng.normal(size=4)
    for exponent in (-0.25, -0.5):
        tx = scale_by_shampoo(exponent=exponent)
        params = {"b": jnp.zeros(6), "s": jnp.zeros(())}
        grads = [
            {"b": jnp.asarray(v), "s": jnp.asarray(s)}
            for v, s in zip(vectors, scalars, strict=True)
        ]
        updates, _ = run_updates(tx, grads, params)
        for k, u in enumerate(updates):
            for name, history in (("b", vectors), ("s", scalars)):
                sums = EPS + np.sum(history[: k + 1] ** 2, axis=0)
                want = history[k] * sums ** (2 * exponent)
                np.testing.assert_allclose(u[name], want, rtol=1e-10)


@pytest.mark.parametrize("pass_step", [True, False])
def test_roots_refresh_only_every_third_step(x64, pass_step):
    """refresh_every=3: the cached roots change at steps 0, 3, 6 only; between refreshes the
    update uses the stale roots with the fresh gradient."""
    grads = list(np.random.default_rng(3).normal(size=(8, 3, 4)))
    tx = scale_by_shampoo(refresh_every=3)
    state, update = tx.init(jnp.zeros((3, 4))), jax.jit(tx.update)
    changed, left, right = [], np.zeros((3, 3)), np.zeros((4, 4))
    for t, g in enumerate(grads):
        extra = {"step": t} if pass_step else {}
        u, new = update(jnp.asarray(g), state, **extra)
        changed.append(not np.array_equal(new.roots.left, state.roots.left))
        left, right = left + g @ g.T, right + g.T @ g
        if t % 3 == 0:  # the roots just taken are those of the current sums
            l_root = dense_root(EPS * np.eye(3) + left, -0.25)
            r_root = dense_root(EPS * np.eye(4) + right, -0.25)
            np.testing.assert_allclose(new.roots.left, l_root, rtol=1e-8)
        np.testing.assert_allclose(u, l_root @ g @ r_root, rtol=1e-8)
        state = new
    assert [t for t, c in enumerate(changed) if c] == [0, 3, 6]


def test_step_argument_overrides_the_count():
    """train() passes the scan's step: a refresh follows it, not the state's own count."""
    tx = scale_by_shampoo(refresh_every=3)
    g = jnp.ones((2, 2))
    state = tx.init(g)
    _, stale = tx.update(g, state, step=1)  # count 0, but step 1: no refresh
    np.testing.assert_array_equal(stale.roots.left, state.roots.left)
    _, fresh = tx.update(g, stale, step=3)
    assert not np.array_equal(fresh.roots.left, state.roots.left)


def param_norms(tree):
    return {k: float(jnp.linalg.norm(v)) for k, v in tree.items()}


def test_graft_to_sgd_gives_the_gradient_norms():
    rng = np.random.default_rng(4)
    params = {"w": jnp.zeros((3, 4)), "b": jnp.zeros(4), "z": jnp.zeros((2, 2))}
    grads = [
        {
            "w": jnp.asarray(rng.normal(size=(3, 4))),
            "b": jnp.asarray(rng.normal(size=4)),
            "z": jnp.zeros((2, 2)),
        }
        for _ in range(3)
    ]
    grafted, _ = run_updates(scale_by_shampoo(graft="sgd"), grads, params)
    plain, _ = run_updates(scale_by_shampoo(), grads, params)
    for u, p, g in zip(grafted, plain, grads, strict=True):
        for name, norm in param_norms(g).items():
            np.testing.assert_allclose(param_norms(u)[name], norm, rtol=1e-5)
        # the direction is still Shampoo's
        np.testing.assert_allclose(
            u["w"] / jnp.linalg.norm(u["w"]), p["w"] / jnp.linalg.norm(p["w"]), atol=1e-6
        )
        np.testing.assert_array_equal(u["z"], 0.0)  # zero gradient: zero update, no NaN


def test_graft_to_adam_gives_adams_norms():
    rng = np.random.default_rng(5)
    params = {"w": jnp.zeros((4, 3)), "b": jnp.zeros(3)}
    grads = [
        {"w": jnp.asarray(rng.normal(size=(4, 3))), "b": jnp.asarray(rng.normal(size=3))}
        for _ in range(4)
    ]
    grafted, _ = run_updates(scale_by_shampoo(graft="adam"), grads, params)
    adam, _ = run_updates(optax.scale_by_adam(), grads, params, pass_step=False)
    for u, a in zip(grafted, adam, strict=True):
        for name, norm in param_norms(a).items():
            np.testing.assert_allclose(param_norms(u)[name], norm, rtol=1e-5)


def run_scan(fn, w0, tx, steps):
    """A ``lax.scan`` calling ``update`` as :func:`jaxprecond.engine.trainer.train` does."""
    tx = optax.with_extra_args_support(tx)

    def step(carry, t):
        w, state = carry
        u, state = tx.update(jax.grad(fn)(w), state, w, obj_fn=fn, step=t)
        return (optax.apply_updates(w, u), state), None

    init = (w0, tx.init(w0))
    (w, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, jnp.arange(steps)))(init)
    return w


def test_converges_on_a_matrix_quadratic():
    """f(W) = ½‖A W B − C‖² with C = A W* B: the optimum is W*."""
    rng = np.random.default_rng(6)
    a, b, w_star = rng.normal(size=(6, 4)), rng.normal(size=(5, 7)), rng.normal(size=(4, 5))
    a, b, c = (jnp.asarray(x, jnp.float32) for x in (a, b, a @ w_star @ b))

    def loss(w):
        return 0.5 * jnp.sum((a @ w @ b - c) ** 2)

    w = run_scan(loss, jnp.zeros((4, 5)), shampoo(1.0), 300)
    np.testing.assert_allclose(w, w_star, atol=1e-2)


def test_converges_on_rosenbrock():
    """A 2-vector parameter: the diagonal path (AdaGrad) reaches the minimum (1, 1)."""

    def rosenbrock(w):
        return (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2

    w = run_scan(rosenbrock, jnp.zeros(2), shampoo(0.1), 5000)
    np.testing.assert_allclose(w, [1.0, 1.0], atol=1e-2)


def matrix_loss(p, target):
    return 0.5 * jnp.sum((p["w"] - target) ** 2) + jnp.sum(jnp.sin(p["b"]))


def test_jit_equals_eager():
    tx = shampoo(0.1, refresh_every=2, graft="sgd")
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    target = jnp.arange(6.0).reshape(3, 2)
    grads = [jax.grad(matrix_loss)(params, target * k) for k in range(2)]  # refresh, reuse
    jitted, _ = run_updates(tx, grads, params)
    state = tx.init(params)
    for t, (g, j) in enumerate(zip(grads, jitted, strict=True)):
        u, state = tx.update(g, state, params, step=t)  # op by op
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5), u, j)


def test_vmap_over_seeds_equals_a_loop():
    tx = shampoo(0.1, refresh_every=2)
    targets = jax.random.normal(jax.random.key(0), (8, 3, 2))

    def train(target):
        params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
        state = tx.init(params)
        for t in range(4):
            u, state = tx.update(jax.grad(matrix_loss)(params, target), state, params, step=t)
            params = optax.apply_updates(params, u)
        return params

    batched = jax.jit(jax.vmap(train))(targets)
    single = jax.jit(train)
    for i in range(8):
        jax.tree.map(
            lambda x, y, i=i: np.testing.assert_allclose(x[i], y, rtol=1e-4, atol=1e-6),
            batched,
            single(targets[i]),
        )


def test_inject_hyperparams_matches_the_plain_transform():
    static = ("refresh_every", "graft", "decay")
    injected = optax.inject_hyperparams(scale_by_shampoo, static_args=static)
    kwargs = {"exponent": -0.25, "eps": 1e-4, "decay": 0.9, "refresh_every": 2, "graft": "adam"}
    params = {"w": jnp.zeros((3, 4)), "b": jnp.zeros(4)}
    rng = np.random.default_rng(7)
    grads = [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        for _ in range(3)
    ]
    tx = injected(**kwargs)
    state = tx.init(params)
    state.hyperparams["exponent"] = jnp.asarray(-0.5)  # a changed (traced) exponent
    update = jax.jit(tx.update)
    plain, _ = run_updates(scale_by_shampoo(**kwargs | {"exponent": -0.5}), grads, params)
    for t, (g, want) in enumerate(zip(grads, plain, strict=True)):
        u, state = update(g, state, params, step=t)
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5), u, want)


def test_bfloat16_parameters_keep_their_dtype():
    params = {"w": jnp.ones((3, 4), jnp.bfloat16), "b": jnp.ones(4, jnp.bfloat16)}
    tx = shampoo(0.1, graft="adam")
    state = tx.init(params)
    shampoo_state = state[0]
    assert shampoo_state.statistics["w"].left.dtype == jnp.float32
    assert shampoo_state.roots["w"].right.dtype == jnp.float32
    update = jax.jit(tx.update)
    for t in range(3):
        grads = jax.tree.map(lambda p, k=t + 1: (p * k).astype(jnp.bfloat16), params)
        u, state = update(grads, state, params, step=t)
        for leaf in jax.tree.leaves(u):
            assert leaf.dtype == jnp.bfloat16
            assert bool(jnp.all(jnp.isfinite(leaf))) and float(jnp.abs(leaf).max()) > 0


def test_inside_chain_and_multisteps():
    """MultiSteps(k=2) applies Shampoo's first update to the mean of two gradients."""
    g1, g2 = jnp.asarray([[1.0, 2.0], [0.0, -1.0]]), jnp.asarray([[3.0, 0.0], [1.0, 1.0]])
    params = jnp.zeros((2, 2))
    chained = optax.chain(optax.clip_by_global_norm(1e3), shampoo(0.1))
    multi = optax.MultiSteps(chained, every_k_schedule=2)
    state = multi.init(params)
    u1, state = multi.update(g1, state, params)
    u2, state = multi.update(g2, state, params)
    np.testing.assert_array_equal(u1, 0.0)
    want, _ = shampoo(0.1).update((g1 + g2) / 2, shampoo(0.1).init(params))
    np.testing.assert_allclose(u2, want, rtol=1e-6)


def test_routed_to_one_leaf_by_partition():
    params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2), "conv": jnp.zeros((2, 2, 2))}
    labels = {"w": "shampoo", "b": "sgd", "conv": "sgd"}
    tx = optax.partition({"shampoo": shampoo(0.1), "sgd": optax.sgd(0.1)}, labels)
    grads = jax.tree.map(lambda p: jnp.ones_like(p) + jnp.arange(p.size).reshape(p.shape), params)
    u, _ = tx.update(grads, tx.init(params), params)
    alone, _ = shampoo(0.1).update(grads["w"], shampoo(0.1).init(params["w"]))
    np.testing.assert_allclose(u["w"], alone, rtol=1e-6)
    np.testing.assert_allclose(u["b"], -0.1 * grads["b"], rtol=1e-6)
    np.testing.assert_allclose(u["conv"], -0.1 * grads["conv"], rtol=1e-6)


def test_more_than_two_dimensions_raise_at_init():
    with pytest.raises(ValueError, match=r"at most 2 dimensions, got shape \(2, 2, 2\)"):
        scale_by_shampoo().init({"conv": jnp.zeros((2, 2, 2))})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exponent": 0.0}, "exponent must be negative, got 0.0"),
        ({"exponent": 0.25}, "exponent must be negative"),
        ({"eps": 0.0}, "eps must be positive, got 0.0"),
        ({"eps": -1e-6}, "eps must be positive"),
        ({"decay": 1.0}, r"decay must be None or in \[0, 1\), got 1.0"),
        ({"decay": -0.1}, "decay must be None or in"),
        ({"refresh_every": 0}, "refresh_every must be a positive integer, got 0"),
        ({"refresh_every": 2.0}, "refresh_every must be a positive integer"),
        ({"graft": "lamb"}, "graft must be one of .* got 'lamb'"),
    ],
)
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        scale_by_shampoo(**kwargs)
    with pytest.raises(ValueError, match=message):
        shampoo(0.1, **kwargs)
