"""Beyond the paper: rotated spectra, where a diagonal preconditioner cannot be ``Σ^p``.

With Σ's eigenvectors on the coordinate axes (the paper's setting) a diagonal preconditioner
``diag(Σ)^p`` *is* ``Σ^p``. Rotate the eigenvectors by a random orthogonal ``Q``
(``rotate = true``) and it is not: ``diag(QΛQᵀ)`` mixes the large and small eigenvalues, so any
method that keeps one number per coordinate (Adam, AdaHessian, Sophia-H, the best diagonal
``diag(Σ)^p``) loses the spectral bias. K-FAC keeps the full input factor ``A = E[x xᵀ]``; with
input power ``p``, output power 0, no bias column and no damping it preconditions layer 1 by
``Σ̂^p`` (``Σ̂ = XᵀX/N``), whatever ``Q`` is.

Each seed trains the exact ``Σ^p`` and every arm of ``arms`` from the same data and init
(:func:`compare_arms`) and records each arm's :func:`feature_distance` to the exact run and its
test MSE. A sweep over ``rotate = [false, true]`` shows the gap
(``benchmarks/rotated_spectra.py``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from jaxprecond.engine.config import POSITIVE, one_of, setting
from jaxprecond.engine.experiment import Experiment, last_record
from jaxprecond.engine.views import quiet, sweep_table
from jaxprecond.linalg import Eigh
from jaxprecond.optim.estimated import empirical_covariance
from jaxprecond.optim.kfac import scale_by_kfac
from jaxprecond.optim.registry import make_optimizer, weight_decay_coupling
from jaxprecond.tasks.single_index import CASES, Spectrum, sample_task
from jaxprecond.tasks.student import init_mlp
from jaxprecond.training.regression import PRECISIONS, StudentConfig, spectra, train

#: The exact Σ^p every arm is compared with, then the arms.
ARMS = ("exact", "empirical", "kfac", "diagonal", "adahessian")


def diagonal_power(covariance) -> Eigh:
    """``diag(Σ)`` as an :class:`~jaxprecond.linalg.Eigh` (axis eigenvectors): the best a
    diagonal preconditioner can know of ``Σ``.

    Args:
      covariance: ``(dx, dx)`` matrix ``Σ``.

    Returns:
      ``Eigh(diag(Σ), I)``; raised to ``p`` by the Σ^p transforms.

    Example:
      >>> import jax.numpy as jnp
      >>> diagonal_power(jnp.array([[2.0, 1.0], [1.0, 3.0]])).eigenvalues
      Array([2., 3.], dtype=float32)
    """
    covariance = jnp.asarray(covariance)
    return Eigh(jnp.diagonal(covariance), jnp.eye(covariance.shape[0], dtype=covariance.dtype))


def feature_distance(kernel_a, kernel_b):
    """Distance between the input-space directions two first layers learned.

    ``‖M_a − M_b‖_F`` with ``M = WᵀW / tr(WᵀW)``: the normalised second moment of the neurons'
    weight vectors, invariant to the neurons' order, signs and overall scale; 0 for the same
    directions, at most √2.

    Args:
      kernel_a, kernel_b: ``(dh, dx)`` first-layer kernels (one neuron per row).

    Returns:
      A scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> float(feature_distance(jnp.array([[1.0, 0.0]]), jnp.array([[0.0, -2.0]])))
      1.414...
    """

    def moment(kernel):
        m = jnp.matmul(kernel.T, kernel, precision=jax.lax.Precision.HIGHEST)
        return m / jnp.trace(m)

    return jnp.linalg.norm(moment(kernel_a) - moment(kernel_b))


def first_layer_kfac(learning_rate, power, *, dh: int, refresh_every: int):
    """K-FAC on layer 1 with input power ``p`` and ``G⁰``: ``θ ← θ − lr · ∇W1 Â^p``.

    The input factor is the batch's ``XᵀX/N``; with full batches it never changes, so the
    eigendecomposition is refreshed at step 0 and then every ``refresh_every`` steps (the
    scan's step index decides). Other parameters get plain GD.

    Args:
      learning_rate: a float or an optax schedule.
      power: the input power ``p`` (may be traced).
      dh: hidden width (the shape of the all-zero output gradients that stand in for ``G``).
      refresh_every: steps between recomputations of ``Â^p``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``inputs=`` (the
      batch's ``(N, dx)`` inputs) and takes ``step=`` (the scan's step index).

    Raises:
      ValueError: (in ``update``) no ``inputs`` were given.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[2.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-2.0, 0.0]])  # Â = diag(2, 0.5)
      >>> tx = first_layer_kfac(0.1, 1.0, dh=3, refresh_every=2)
      >>> params = {"W1": jnp.zeros((3, 2)), "b1": jnp.zeros(3)}
      >>> grads = {"W1": jnp.ones((3, 2)), "b1": jnp.ones(3)}
      >>> u, _ = tx.update(grads, tx.init(params), params, inputs=x, step=0)
      >>> bool(jnp.allclose(u["W1"], -0.1 * grads["W1"] @ jnp.diag(jnp.array([2.0, 0.5]))))
      True
      >>> u["b1"]  # plain GD
      Array([-0.1, -0.1, -0.1], dtype=float32)
    """
    inner = optax.chain(
        scale_by_kfac(
            {"layer1": ("W1", None)},
            include_bias=False,
            input_power=power,
            output_power=0.0,
            damping=0.0,
            refresh_every=refresh_every,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )

    def update_fn(updates, state, params=None, *, inputs=None, step=None, **extra):
        del extra
        if inputs is None:
            raise ValueError("first_layer_kfac needs the batch: inputs=...")
        no_output_grads = jnp.zeros((inputs.shape[0], dh), inputs.dtype)  # G⁰ = I regardless
        return inner.update(
            updates,
            state,
            params,
            layer_inputs={"layer1": inputs},
            output_grads={"layer1": no_output_grads},
            step=step,
        )

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


@dataclasses.dataclass(frozen=True)
class RotatedConfig(StudentConfig):
    """The settings: the student's, the cases, the SNR and the arms compared with exact Σ^p.

    Example:
      >>> RotatedConfig(arms=["kfac"], rotate=True).arms
      ('kfac',)
    """

    cases: tuple[str, ...] = setting(
        CASES, "input-spectrum cases", one_of(*CASES).many(), traced=True
    )
    snr: float = setting(1.0, "signal-to-noise ratio", POSITIVE, traced=True)
    arms: tuple[str, ...] = setting(
        ARMS[1:], "preconditioners compared with the exact Sigma^p", one_of(*ARMS[1:]).many()
    )


#: CPU-sized and the benchmark's sizes (``benchmarks/rotated_spectra.py``).
PRESETS = {
    "cpu": RotatedConfig(powers=(-1.0, 1.0), seeds=4, steps=500, log_every=500, dh=100, n=2000),
    "benchmark": RotatedConfig(
        powers=(-1.0, 1.0), seeds=8, steps=2000, log_every=2000, dh=100, n=2000
    ),
}


def arm_optimizer(arm: str, spectrum: Spectrum, power, *, config, key, x_train):
    """``(optimizer, loss weight decay)`` of ``arm`` (weight decay placed as
    :func:`~jaxprecond.optim.registry.weight_decay_coupling` says).

    Example:
      >>> from jaxprecond.tasks.single_index import case_spectrum
      >>> cfg = RotatedConfig(dx=2, dh=3, learning_rate=0.1, weight_decay=0.01)
      >>> spec = case_spectrum("high", dx=2, scale=4.0)  # Σ = diag(4, 0.25)
      >>> key, x = jax.random.key(0), jnp.ones((4, 2))
      >>> tx, wd = arm_optimizer("diagonal", spec, -1.0, config=cfg, key=key, x_train=x)
      >>> w = {"W1": jnp.zeros((3, 2))}
      >>> u = tx.update({"W1": jnp.ones((3, 2))}, tx.init(w), w)[0]["W1"]  # −lr · G diag(Σ)^p
      >>> wd, [round(float(v), 4) for v in u[0]]
      (0.01, [-0.025, -0.4])
    """
    lr = config.learning_rate
    if arm == "kfac":
        return first_layer_kfac(
            lr, power, dh=config.dh, refresh_every=config.steps
        ), config.weight_decay
    name = "adahessian" if arm == "adahessian" else "covariance_power"
    options, weight_decay = weight_decay_coupling(name, config.weight_decay)
    if arm == "adahessian":
        options.update(hessian_power=-power, probe=config.probe, seed=key)
    else:
        covariance = {
            "exact": lambda: Eigh(spectrum.eigenvalues, spectrum.eigenvectors),
            "empirical": lambda: empirical_covariance(x_train),
            "diagonal": lambda: diagonal_power(spectrum.covariance),
        }[arm]()
        options.update(covariance=covariance, power=power)
    return make_optimizer(name, lr, **options), weight_decay


def compare_arms(key, spectrum: Spectrum, power, *, config, arms=ARMS) -> dict:
    """Train one seed under each arm, from the same data and initial weights.

    Returns:
      ``{arm: {"W1": final (dh, dx) kernel, "test_mse": scalar}}``.

    Example:
      >>> from jaxprecond.tasks.single_index import case_spectrum
      >>> cfg = RotatedConfig(dh=8, n=300, n_train=50, steps=10, log_every=10)
      >>> run_arms = lambda key: compare_arms(key, case_spectrum("high"), 1.0, config=cfg)
      >>> jax.eval_shape(run_arms, jax.random.key(1))["kfac"]["W1"].shape  # shapes only
      (8, 10)
    """
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:
        raise ValueError(f"arms must be among {ARMS}, got {unknown}")
    key_data, key_init, key_probe = jax.random.split(key, 3)
    task = sample_task(
        key_data, spectrum, config.snr, n=config.n, n_train=config.n_train,
        teacher_scale=config.teacher_scale,
    )  # fmt: skip
    params = init_mlp(key_init, config.dx, config.dh, scale=config.init_scale, dtype=config.dtype)
    out = {}
    for arm in arms:
        optimizer, weight_decay = arm_optimizer(
            arm, spectrum, power, config=config, key=key_probe, x_train=task.x_train
        )
        final, trajectory = train(
            params, optimizer, task, steps=config.steps, log_every=config.steps,
            weight_decay=weight_decay, eigenvectors=spectrum.eigenvectors,
            eval_block_size=config.eval_block_size, precision=PRECISIONS[config.precision],
        )  # fmt: skip
        # one record, after the last step: the final test MSE, computed once by the loop
        out[arm] = {"W1": final["W1"], "test_mse": trajectory.test_mse[-1]}
    return out


def run(key, point, config: RotatedConfig, data=None) -> dict:
    """One seed: every arm's distance to the exact Σ^p run and its test MSE (one record)."""
    spectrum = jax.tree.map(lambda leaf: leaf[point["case"]], spectra(config))
    out = compare_arms(key, spectrum, point["p"], config=config, arms=("exact",) + config.arms)
    metrics = {"exact_test_mse": out["exact"]["test_mse"][None]}
    for arm in config.arms:
        metrics[f"{arm}_distance"] = feature_distance(out[arm]["W1"], out["exact"]["W1"])[None]
        metrics[f"{arm}_test_mse"] = out[arm]["test_mse"][None]
    return metrics


def table(results) -> str:
    """Each arm's feature distance to the exact Σ^p run, per grid point (mean [95% CI])."""
    return sweep_table(results, [f"{arm}_distance" for arm in results.config.arms])


def figure(results) -> Figure:
    """Bars of each arm's distance to exact Σ^p per ``p``, one panel per value of the other axes
    (the first two, at most 8 panels)."""
    arms, names, powers = results.config.arms, [n for n, _ in results.axes], results.values("p")
    summaries = [quiet(results.summary, f"{arm}_distance") for arm in arms]
    others = [(n, v) for n, v in results.axes if n != "p"][:2]
    panels = list(np.ndindex(*(len(v) for _, v in others)))[:8]
    fig = Figure(figsize=(4 * len(panels), 4), layout="tight")
    width = 0.8 / len(powers)
    for ax, index in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        where = dict(zip([n for n, _ in others], index, strict=True))
        for k, p in enumerate(powers):
            at = tuple(k if n == "p" else where.get(n, 0) for n in names)
            x = np.arange(len(arms)) + width * (k - (len(powers) - 1) / 2)
            ax.bar(x, [s.mean[at] for s in summaries], width, label=f"p = {p:g}")
        ax.set_xticks(np.arange(len(arms)), arms, rotation=20)
        title = ", ".join(f"{n}={v[i]}" for (n, v), i in zip(others, index, strict=True))
        ax.set(ylabel="feature distance to exact Σ^p", title=title)
        ax.legend(fontsize="small")
    return fig


EXPERIMENT = ROTATED = Experiment(
    "rotated", RotatedConfig, PRESETS, run=run, grid={"case": "cases", "p": "powers"},
    steps=last_record, table=table, figure=figure, description=__doc__.splitlines()[0],
)  # fmt: skip
