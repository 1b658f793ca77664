"""Replays of the authors' PyTorch runs (``shared/reference/*.npz``) with jaxprecond's own loop.

A noise fixture (``ref_*.npz``) stores the data, the initial weights and the per-step train loss
and test MSE of 10 000 full-batch steps. The replay starts from the same weights and data, runs
:func:`jaxprecond.training.regression.train` with
:func:`jaxprecond.optim.covariance_power.covariance_power`, and compares trajectories
element-wise. A transfer fixture (``transfer_*.npz``) is replayed from its frozen first layer and
stage-2 data: the ridge head of :func:`jaxprecond.experiments.transfer.refit_head` against the
stored head and stage-2 MSEs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxprecond.experiments.transfer import TransferConfig, refit_head
from jaxprecond.optim.adahessian import adahessian
from jaxprecond.optim.covariance_power import covariance_power
from jaxprecond.tasks.single_index import Task
from jaxprecond.tasks.student import from_torch, regression_loss
from jaxprecond.training.regression import train

#: Tolerances of the noise-fixture check (see the issue tracker's fidelity requirement).
EARLY_STEPS = 300
EARLY_TOLERANCE = 1e-5
FINAL_TOLERANCE = 0.5


def fixture_kind(path) -> str:
    """``"noise"``, ``"transfer"`` or ``"adahessian"`` from the fixture's file name.

    Args:
      path: a fixture's path (only its file name is read).

    Returns:
      The kind: ``ref_*`` → ``"noise"``, ``transfer_*`` → ``"transfer"``, ``adahessian_*`` →
      ``"adahessian"``.

    Raises:
      ValueError: the name has none of these prefixes.

    Example:
      >>> [fixture_kind(f"shared/reference/{n}.npz") for n in ("ref_high_p1", "transfer_x")]
      ['noise', 'transfer']
      >>> fixture_kind("adahessian_rademacher_high_p1_seed42.npz")
      'adahessian'
      >>> fixture_kind("runs/arrays.npz")
      Traceback (most recent call last):
      ...
      ValueError: unknown fixture kind: arrays.npz (expected ref_*, transfer_* or adahessian_*)
    """
    name = Path(path).name
    for prefix, kind in (
        ("ref_", "noise"),
        ("transfer_", "transfer"),
        ("adahessian_", "adahessian"),
    ):
        if name.startswith(prefix):
            return kind
    raise ValueError(f"unknown fixture kind: {name} (expected ref_*, transfer_* or adahessian_*)")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One compared quantity: the largest element-wise relative deviation and its bound.

    Attributes:
      name: what was compared.
      deviation: the measured deviation (see :func:`relative_deviation`).
      tolerance: the largest deviation accepted.
      ok: the deviation is finite and at most ``tolerance``.

    Example:
      >>> Comparison("final test_mse", 0.2, 0.5).ok, Comparison("loss", 2e-5, 1e-5).ok
      (True, False)
      >>> Comparison("loss", float("nan"), 1e-5).ok  # a diverged replay never passes
      False
    """

    name: str
    deviation: float
    tolerance: float

    @property
    def ok(self) -> bool:
        """Whether the comparison passed.

        Returns:
          ``True`` if ``deviation`` is finite and at most ``tolerance`` (the bound included).

        Example:
          >>> Comparison("loss", 1e-5, 1e-5).ok, Comparison("loss", float("inf"), 1.0).ok
          (True, False)
        """
        return bool(np.isfinite(self.deviation) and self.deviation <= self.tolerance)


def relative_deviation(ours, reference) -> float:
    """``max |ours − reference| / |reference|`` element-wise.

    Args:
      ours, reference: arrays of one shape (or broadcastable), compared in float64.

    Returns:
      The largest relative deviation, a float (``inf`` or ``nan`` where ``reference`` is 0).

    Example:
      >>> relative_deviation([1.0, 2.5, -3.0], [1.0, 2.0, -4.0])  # max(0, 0.5/2, 1/4)
      0.25
      >>> relative_deviation(np.float32(0.5), 0.5)
      0.0
    """
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    return float(np.max(np.abs(ours - reference) / np.abs(reference)))


def replay_noise(path, *, early_steps: int = EARLY_STEPS, float64: bool = False):
    """Replay a noise fixture and compare it with the stored trajectories.

    Args:
      path: a ``ref_*.npz`` fixture.
      early_steps: steps compared element by element.
      float64: replay in float64 instead of the fixture's float32.

    Returns:
      A list of :class:`Comparison`: the early train-loss and test-MSE trajectories (bound
      1e-5) and the final train loss and test MSE (bound 50%).

    Example:
      A tiny synthetic fixture made by an explicit NumPy loop of the reference's update (each
      neuron's gradient ``g_j`` becomes ``P g_j``, ``P = diag(λ)^p``; every other parameter
      plain GD): the first layer learns, so the preconditioned path is what is compared. The
      same fixture made with ``P = I`` fails the early comparison.

      >>> import tempfile
      >>> rng = np.random.default_rng(0)
      >>> x, y = rng.normal(size=(8, 2)), rng.normal(size=8)
      >>> init = dict(W1=rng.normal(size=(3, 2)), b1=np.full(3, 0.5), W2=rng.normal(size=3))
      >>> def numpy_run(p_matrix, steps=4, lr=0.1):
      ...     w1, b1, w2, b2, losses, tests = *init.values(), 0.0, [], []
      ...     for _ in range(steps):
      ...         h = np.maximum(x @ w1.T + b1, 0.0)
      ...         r = h @ w2 + b2 - y
      ...         losses.append(np.mean(r**2))
      ...         g = 2 * r / len(y)
      ...         gh = np.outer(g, w2) * (h > 0)
      ...         w1, b1 = w1 - lr * (gh.T @ x) @ p_matrix.T, b1 - lr * gh.sum(0)
      ...         w2, b2 = w2 - lr * h.T @ g, b2 - lr * g.sum()
      ...         tests.append(np.mean((np.maximum(x @ w1.T + b1, 0) @ w2 + b2 - y) ** 2))
      ...     return np.array(losses), np.array(tests)
      >>> def fixture(d, p_matrix):
      ...     train_loss, test_mse = numpy_run(p_matrix)
      ...     np.savez(Path(d) / "ref_toy.npz", W1_init=init["W1"], b1_init=init["b1"],
      ...              W2_init=init["W2"][None], b2_init=np.zeros(1), X_train=x, y_train=y,
      ...              X_test=x, y_test=y, beta_star=np.ones(2), eigenvalues=np.array([4.0, 0.25]),
      ...              train_loss=train_loss, test_mse=test_mse,
      ...              meta=json.dumps({"epochs": 4, "lr": 0.1, "p": 1.0, "wd": 0.0}))
      ...     return replay_noise(Path(d) / "ref_toy.npz", early_steps=2)
      >>> with tempfile.TemporaryDirectory() as d:
      ...     preconditioned = fixture(d, np.diag([4.0, 0.25]))
      ...     plain = fixture(d, np.eye(2))
      >>> [(c.name, c.ok) for c in preconditioned]  # doctest: +NORMALIZE_WHITESPACE
      [('train_loss[:2]', True), ('test_mse[:2]', True), ('final train_loss', True),
       ('final test_mse', True)]
      >>> plain[1].ok, plain[1].deviation > 1e-3  # P = I is not the preconditioned update
      (False, True)
    """
    with np.load(path) as f:
        fx = {k: f[k] for k in f.files}
    meta = json.loads(str(fx["meta"]))
    total = int(meta["epochs"])
    with jax.enable_x64(float64):
        dtype = jnp.float64 if float64 else jnp.float32

        def cast(a):
            return jnp.asarray(a, dtype)

        params = jax.tree.map(
            cast, from_torch(fx["W1_init"], fx["b1_init"], fx["W2_init"], fx["b2_init"])
        )
        task = Task(
            cast(fx["X_train"]),
            cast(fx["y_train"]),
            cast(fx["X_test"]),
            cast(fx["y_test"]),
            cast(fx["beta_star"]),
        )
        optimizer = covariance_power(
            meta["lr"], jnp.diag(cast(fx["eigenvalues"])), float(meta["p"]), layout="out_in"
        )
        eye = jnp.eye(task.x_train.shape[1], dtype=dtype)

        def run(params, steps, log_every):
            return train(
                params,
                optimizer,
                task,
                steps=steps,
                log_every=log_every,
                weight_decay=meta["wd"],
                eigenvectors=eye,
            )

        params, early = jax.jit(run, static_argnums=(1, 2))(params, early_steps, 1)
        rest = total - early_steps
        _, late = jax.jit(run, static_argnums=(1, 2))(params, rest, rest)
    return [
        Comparison(
            f"train_loss[:{early_steps}]",
            relative_deviation(early.train_loss, fx["train_loss"][:early_steps]),
            EARLY_TOLERANCE,
        ),
        Comparison(
            f"test_mse[:{early_steps}]",
            relative_deviation(early.test_mse, fx["test_mse"][:early_steps]),
            EARLY_TOLERANCE,
        ),
        Comparison(
            "final train_loss",
            relative_deviation(late.train_loss[-1], fx["train_loss"][-1]),
            FINAL_TOLERANCE,
        ),
        Comparison(
            "final test_mse",
            relative_deviation(late.test_mse[-1], fx["test_mse"][-1]),
            FINAL_TOLERANCE,
        ),
    ]


ADAHESSIAN_EARLY_STEPS = 100
ADAHESSIAN_EARLY_TOLERANCE = 1e-5
ADAHESSIAN_ALL_TOLERANCE = 1e-3
ADAHESSIAN_WEIGHT_TOLERANCE = 5e-2


def replay_adahessian(path, *, float64: bool = False):
    """Replay an AdaHessian fixture with its stored probes and compare it with the stored run.

    Args:
      path: an ``adahessian_*.npz`` fixture.
      float64: replay in float64.

    Returns:
      A list of :class:`Comparison`: the loss over the first 100 steps (bound 1e-5) and over all
      steps (1e-3), and each final weight array in relative norm (5e-2).

    Example:
      A tiny synthetic fixture with a dead first layer: only ``b2`` learns. Its Hessian is 2,
      so with ``β₁ = 0`` and ``k = 1`` the step is ``lr·g/2 = lr·b2`` (targets ``±1``): ``b2``
      halves at ``lr = 1/2`` and the loss ``b2² + 1`` is ``0.25^t + 1``:

      >>> import tempfile
      >>> init = {"W1": np.full((3, 2), 0.1), "b1": np.full(3, -10.0), "W2": np.ones((1, 3)),
      ...         "b2": np.ones(1)}
      >>> fx = {f"{n}_init": v for n, v in init.items()}
      >>> fx |= {f"{n}_final": v for n, v in init.items()} | {"b2_final": np.array([0.125])}
      >>> fx |= {f"{n}_probes": np.ones((3,) + v.shape) for n, v in init.items()}  # 3 steps
      >>> fx |= dict(X_train=np.array([[1.0, 2.0], [2.0, 1.0]]), y_train=np.array([1.0, -1.0]),
      ...            loss=0.25 ** np.arange(3) + 1,
      ...            meta=json.dumps({"lr": 0.5, "betas": [0.0, 0.999], "eps": 1e-8,
      ...                             "hessian_power": 1.0, "weight_decay": 0.0}))
      >>> with tempfile.TemporaryDirectory() as d:
      ...     np.savez(Path(d) / "adahessian_toy.npz", **fx)
      ...     comparisons = replay_adahessian(Path(d) / "adahessian_toy.npz", float64=True)
      >>> [c.name for c in comparisons]  # doctest: +NORMALIZE_WHITESPACE
      ['loss[:100]', 'loss[:3]', 'final W1 (rel. norm)', 'final b1 (rel. norm)',
       'final W2 (rel. norm)', 'final b2 (rel. norm)']
      >>> max(c.deviation for c in comparisons) < 1e-6
      True
    """
    with np.load(path) as f:
        fx = {k: f[k] for k in f.files}
    meta = json.loads(str(fx["meta"]))
    names = ("W1", "b1", "W2", "b2")
    with jax.enable_x64(float64):
        dtype = jnp.float64 if float64 else jnp.float32

        def as_params(suffix):
            return jax.tree.map(
                lambda a: jnp.asarray(a, dtype),
                from_torch(*(fx[f"{n}_{suffix}"] for n in names)),
            )

        params = as_params("init")
        shapes = {k: v.shape for k, v in params.items()}
        probes = {
            n: jnp.asarray(fx[f"{n}_probes"], dtype).reshape((-1,) + shapes[n]) for n in names
        }
        x, y = jnp.asarray(fx["X_train"], dtype), jnp.asarray(fx["y_train"], dtype)
        b1, b2 = meta["betas"]
        optimizer = adahessian(
            meta["lr"], b1, b2, meta["eps"], meta["hessian_power"], meta["weight_decay"]
        )

        def loss_fn(p):
            return regression_loss(p, x, y, weight_decay=0.0, n_train=x.shape[0])

        def step(carry, probe):
            p, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(p)
            updates, state = optimizer.update(grads, state, p, obj_fn=loss_fn, probes=probe)
            return (optax.apply_updates(p, updates), state), loss

        @jax.jit
        def run(params, probes):
            (final, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), probes)
            return final, losses

        final, losses = run(params, probes)
    reference_final = from_torch(*(fx[f"{n}_final"] for n in names))
    early = ADAHESSIAN_EARLY_STEPS
    comparisons = [
        Comparison(
            f"loss[:{early}]",
            relative_deviation(losses[:early], fx["loss"][:early]),
            ADAHESSIAN_EARLY_TOLERANCE,
        ),
        Comparison(
            f"loss[:{len(fx['loss'])}]",
            relative_deviation(losses, fx["loss"]),
            ADAHESSIAN_ALL_TOLERANCE,
        ),
    ]
    for n in names:
        ours, ref = np.asarray(final[n], np.float64), np.asarray(reference_final[n], np.float64)
        deviation = float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))
        comparisons.append(
            Comparison(f"final {n} (rel. norm)", deviation, ADAHESSIAN_WEIGHT_TOLERANCE)
        )
    return comparisons


TRANSFER_HEAD_TOLERANCE = 1e-3
TRANSFER_MSE_TOLERANCE = 1e-4


def replay_transfer(path, *, float64: bool = False):
    """Replay a transfer fixture's ridge stage from its frozen first layer and stage-2 data.

    The head and MSEs are the experiment's own
    (:func:`jaxprecond.experiments.transfer.refit_head`: the ridge head of
    :func:`jaxprecond.tasks.ridge.ridge_head` with the fixture's ``ridge_lambda`` on the
    features ``relu(X2 W1ᵀ + b1)``; the authors' rule picks the dual form, ``dh > N``).

    Args:
      path: a ``transfer_*.npz`` fixture.
      float64: replay in float64 instead of the fixture's float32.

    Returns:
      A list of :class:`Comparison`: the head ``W2`` (relative norm of the difference; its
      small entries make an element-wise ratio meaningless) and ``b2`` (bound 1e-3), and the
      stage-2 train and test MSE (1e-4).

    Example:
      A tiny synthetic fixture: with ``W1 = I``, ``b1 = 0`` and non-negative inputs the
      features are the inputs, so a nearly unpenalised head is numpy's least-squares fit:

      >>> import tempfile
      >>> x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 2.0], [1.0, 3.0], [2.0, 2.0]])
      >>> y = np.array([1.0, 3.0, 4.0, 4.0, 0.0, 3.0])
      >>> a = np.c_[x, np.ones(6)]  # features and intercept
      >>> coef = np.linalg.lstsq(a[:4], y[:4], rcond=None)[0]  # fit on the first 4 points
      >>> mse = (a @ coef - y) ** 2
      >>> fx = dict(X2_train=x[:4], y2_train=y[:4], X2_test=x[4:], y2_test=y[4:],
      ...           beta_transfer=np.ones(2), W1=np.eye(2), b1=np.zeros(2),
      ...           head_W2=coef[:2], head_b2=coef[2:], transfer_train_mse=mse[:4].mean(),
      ...           transfer_test_mse=mse[4:].mean(), meta=json.dumps({"ridge_lambda": 1e-8}))
      >>> with tempfile.TemporaryDirectory() as d:
      ...     np.savez(Path(d) / "transfer_toy.npz", **fx)
      ...     comparisons = replay_transfer(Path(d) / "transfer_toy.npz")
      >>> [(c.name, c.ok) for c in comparisons]  # doctest: +NORMALIZE_WHITESPACE
      [('head W2 (rel. norm)', True), ('head b2', True), ('stage-2 train MSE', True),
       ('stage-2 test MSE', True)]
    """
    with np.load(path) as f:
        fx = {k: f[k] for k in f.files}
    meta = json.loads(str(fx["meta"]))
    with jax.enable_x64(float64):
        dtype = jnp.float64 if float64 else jnp.float32

        def cast(a):
            return jnp.asarray(a, dtype)

        task = Task(
            cast(fx["X2_train"]),
            cast(fx["y2_train"]),
            cast(fx["X2_test"]),
            cast(fx["y2_test"]),
            cast(fx["beta_transfer"]),
        )
        config = TransferConfig(ridge=float(meta["ridge_lambda"]), float64=float64)

        @jax.jit
        def run(w1, b1):
            return refit_head({"W1": w1, "b1": b1}, task, config=config)

        head, train_mse, test_mse = run(cast(fx["W1"]), cast(fx["b1"]))
        w, b = head["W2"], head["b2"]
    reference_w = np.asarray(fx["head_W2"], np.float64).reshape(-1)
    w = np.asarray(w, np.float64)
    return [
        Comparison(
            "head W2 (rel. norm)",
            float(np.linalg.norm(w - reference_w) / np.linalg.norm(reference_w)),
            TRANSFER_HEAD_TOLERANCE,
        ),
        Comparison(
            "head b2",
            relative_deviation(b, fx["head_b2"].reshape(())),
            TRANSFER_HEAD_TOLERANCE,
        ),
        Comparison(
            "stage-2 train MSE",
            relative_deviation(train_mse, fx["transfer_train_mse"]),
            TRANSFER_MSE_TOLERANCE,
        ),
        Comparison(
            "stage-2 test MSE",
            relative_deviation(test_mse, fx["transfer_test_mse"]),
            TRANSFER_MSE_TOLERANCE,
        ),
    ]


REPLAYS = {"noise": replay_noise, "adahessian": replay_adahessian, "transfer": replay_transfer}


def check_fixture(path, **kwargs):
    """Replay ``path`` with the replay for its kind; ``None`` if that kind has no replay yet.

    Args:
      path: a fixture (its kind is read from its name, see :func:`fixture_kind`).
      **kwargs: passed to the replay (e.g. ``float64=True``).

    Returns:
      The replay's list of :class:`Comparison`, or ``None``.

    Raises:
      ValueError: the file name is not a fixture's.

    Example:
      A ``transfer_*`` file goes to :func:`replay_transfer` (here a tiny synthetic fixture:
      ``W1 = I``, so the head is the least-squares fit on the inputs):

      >>> import tempfile
      >>> x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 2.0], [1.0, 3.0]])
      >>> y = np.array([1.0, 3.0, 4.0, 4.0, 0.0])
      >>> a = np.c_[x, np.ones(5)]
      >>> coef = np.linalg.lstsq(a[:4], y[:4], rcond=None)[0]
      >>> mse = (a @ coef - y) ** 2
      >>> fx = dict(X2_train=x[:4], y2_train=y[:4], X2_test=x[4:], y2_test=y[4:],
      ...           beta_transfer=np.ones(2), W1=np.eye(2), b1=np.zeros(2),
      ...           head_W2=coef[:2], head_b2=coef[2:], transfer_train_mse=mse[:4].mean(),
      ...           transfer_test_mse=mse[4:].mean(), meta=json.dumps({"ridge_lambda": 1e-8}))
      >>> with tempfile.TemporaryDirectory() as d:
      ...     np.savez(Path(d) / "transfer_toy.npz", **fx)
      ...     comparisons = check_fixture(Path(d) / "transfer_toy.npz", float64=True)
      >>> [c.name for c in comparisons], all(c.ok for c in comparisons)
      (['head W2 (rel. norm)', 'head b2', 'stage-2 train MSE', 'stage-2 test MSE'], True)
      >>> check_fixture("toy.npz")
      Traceback (most recent call last):
      ...
      ValueError: unknown fixture kind: toy.npz (expected ref_*, transfer_* or adahessian_*)
    """
    replay = REPLAYS.get(fixture_kind(path))
    return None if replay is None else replay(path, **kwargs)
