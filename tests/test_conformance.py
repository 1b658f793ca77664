"""One conformance matrix for the package's transforms (as optax's contrib tests do).

Each case builds the transform from hyper-parameters and supplies its oracles through
``jaxprecond.optim.registry.oracles``. Every case must: run under jit and equal the eager result;
vmap over 8 seeds like a Python loop; give the same updates through optax.inject_hyperparams;
keep float32 and bfloat16 parameter dtypes; work inside optax.chain, optax.MultiSteps and
optax.partition.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxprecond.optim.adahessian import scale_by_adahessian
from jaxprecond.optim.covariance_power import route_to_kernel, scale_by_covariance_power
from jaxprecond.optim.estimated import scale_by_online_covariance_power
from jaxprecond.optim.kfac import MLP_LAYERS, mlp_kfac_statistics, scale_by_kfac
from jaxprecond.optim.registry import oracles
from jaxprecond.optim.shampoo import scale_by_shampoo

DX, DH, N = 3, 4, 12
X = jax.random.normal(jax.random.key(0), (N, DX))
Y = jnp.sin(X[:, 0]) + 0.5 * X[:, 1]
COV = jnp.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]])


def make_params(key, dtype=jnp.float32):
    k1, k2 = jax.random.split(key)
    return {
        "W1": (0.5 * jax.random.normal(k1, (DH, DX))).astype(dtype),
        "b1": jnp.zeros((DH,), dtype),
        "W2": (0.5 * jax.random.normal(k2, (DH,))).astype(dtype),
        "b2": jnp.zeros((), dtype),
    }


def loss(params):
    p = jax.tree.map(lambda a: a.astype(jnp.float32), params)
    h = jax.nn.relu(X @ p["W1"].T + p["b1"])
    return jnp.mean((h @ p["W2"] + p["b2"] - Y) ** 2)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    factory: Callable
    hyperparams: dict
    static_args: tuple = ()
    kernel_only: bool = False  # acts on the first-layer kernel: route it there
    rtol: float = 1e-5  # float32 agreement between differently compiled programs
    partition_reason: str | None = None  # why optax.partition cannot route it, if it cannot

    def build(self, factory=None, **overrides):
        tx = (factory or self.factory)(**(self.hyperparams | overrides))
        if self.kernel_only:
            tx = route_to_kernel(tx, "W1")
        return optax.with_extra_args_support(tx)


CASES = [
    Case(
        "covariance_power",
        scale_by_covariance_power,
        {"covariance": COV, "power": 0.5, "layout": "out_in"},
        static_args=("layout", "normalize"),
        kernel_only=True,
    ),
    Case(
        "online_covariance_power",
        scale_by_online_covariance_power,
        {"dx": DX, "power": -0.5, "layout": "out_in", "damping": 0.1},
        static_args=("dx", "layout", "centered", "refresh_every", "normalize"),
        kernel_only=True,
    ),
    Case(
        "adahessian",
        scale_by_adahessian,
        {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "hessian_power": 1.0, "probe": "minus_ones"},
        static_args=("update_interval", "samples", "probe", "seed"),
        rtol=1e-4,  # m / sqrt(v) amplifies float32 rounding of small curvatures
        partition_reason="its Hessian-vector products need an objective of the parameters it "
        "receives, and partition hands it a masked subset",
    ),
]
CASES.append(
    Case(
        "shampoo",
        scale_by_shampoo,
        {"exponent": -0.25, "eps": 0.1, "refresh_every": 1},  # well-conditioned roots
        static_args=("refresh_every", "graft", "decay"),
        rtol=1e-4,  # eigendecompositions amplify float32 rounding
    )
)
CASES.append(
    Case(
        "kfac",
        scale_by_kfac,
        {"layers": MLP_LAYERS, "damping": 0.1, "decay": 0.9},
        static_args=("layers", "include_bias", "refresh_every", "layout"),
        rtol=1e-4,
        partition_reason="it preconditions whole layers (kernel and bias together) named in "
        "its own `layers` map",
    )
)
IDS = [c.name for c in CASES]


def step(tx, params, state, t=0):
    grads = jax.grad(loss)(params)
    extra = oracles(loss, params, step=t, inputs=X, targets=Y)
    layer_inputs, output_grads = mlp_kfac_statistics(params, X, Y)  # K-FAC's statistics
    return tx.update(
        grads, state, params, layer_inputs=layer_inputs, output_grads=output_grads, **extra
    )


def two_steps(tx, params):
    state = tx.init(params)
    u1, state = step(tx, params, state, 0)
    params = optax.apply_updates(params, u1)
    u2, _ = step(tx, params, state, 1)
    return u2


def assert_trees_close(a, b, rtol=1e-5):
    """Element-wise within rtol, with entries far below the array's scale compared to it."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * float(np.abs(y).max()))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_equals_eager(case):
    tx, params = case.build(), make_params(jax.random.key(1))
    assert_trees_close(
        jax.jit(lambda p: two_steps(tx, p))(params), two_steps(tx, params), rtol=case.rtol
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_over_seeds_equals_a_loop(case):
    tx = case.build()
    params = jax.vmap(make_params)(jax.random.split(jax.random.key(2), 8))
    batched = jax.jit(jax.vmap(lambda p: two_steps(tx, p)))(params)
    for i in range(8):
        one = jax.tree.map(lambda a, i=i: a[i], params)
        assert_trees_close(
            jax.tree.map(lambda a, i=i: a[i], batched), two_steps(tx, one), rtol=case.rtol
        )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inject_hyperparams_gives_the_same_updates(case):
    injected = case.build(optax.inject_hyperparams(case.factory, static_args=case.static_args))
    params = make_params(jax.random.key(3))
    assert_trees_close(two_steps(injected, params), two_steps(case.build(), params), rtol=case.rtol)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_updates_keep_the_parameter_dtype(case, dtype):
    params = make_params(jax.random.key(4), dtype)
    updates = jax.jit(lambda p: two_steps(case.build(), p))(params)
    for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params), strict=True):
        assert u.dtype == p.dtype
        assert bool(jnp.all(jnp.isfinite(u.astype(jnp.float32))))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inside_chain(case):
    params = make_params(jax.random.key(5))
    chained = optax.with_extra_args_support(optax.chain(case.build(), optax.scale(-0.1)))
    tx = case.build()
    expected = jax.tree.map(lambda u: -0.1 * u, step(tx, params, tx.init(params))[0])
    assert_trees_close(step(chained, params, chained.init(params))[0], expected, rtol=case.rtol)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inside_multisteps(case):
    """Every second call applies the transform to the mean of two gradients; in between the
    updates are zero. (The oracles are those of the micro-step that triggers the update.)"""
    params = make_params(jax.random.key(6))
    multi = optax.MultiSteps(case.build(), every_k_schedule=2)
    state = multi.init(params)
    u1, state = step(multi, params, state, 0)
    assert all(float(jnp.abs(u).max()) == 0.0 for u in jax.tree.leaves(u1))
    u2, _ = step(multi, params, state, 1)  # same params: the mean gradient equals the gradient
    tx = case.build()
    expected, _ = step(tx, params, tx.init(params), 1)
    assert_trees_close(u2, expected, rtol=max(case.rtol, 1e-4))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_routed_by_partition(case):
    """optax.partition sends W2 to the transform and leaves the rest to optax.identity."""
    if case.kernel_only:
        pytest.skip("acts on first-layer kernels only (routing is tested with W1 elsewhere)")
    if case.partition_reason:
        pytest.skip(f"{case.name} cannot be routed by optax.partition: {case.partition_reason}")
    params = make_params(jax.random.key(7))
    labels = {"W1": "rest", "b1": "rest", "W2": "tx", "b2": "rest"}
    routed = optax.with_extra_args_support(
        optax.partition({"tx": case.build(), "rest": optax.identity()}, labels)
    )
    grads = jax.grad(loss)(params)
    out, _ = routed.update(grads, routed.init(params), params, **oracles(loss, params, step=0))
    for k in ("W1", "b1", "b2"):
        np.testing.assert_array_equal(out[k], grads[k])
    assert not np.allclose(out["W2"], grads["W2"])
