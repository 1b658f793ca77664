"""Beyond the paper: rotated spectra, where a diagonal preconditioner cannot be ``Σ^p``.

With Σ's eigenvectors on the coordinate axes (the paper's setting) a diagonal preconditioner
``diag(Σ)^p`` *is* ``Σ^p``. Rotate the eigenvectors by a random orthogonal ``Q`` and it is not:
``diag(QΛQᵀ)`` mixes the large and small eigenvalues, so any method that keeps one number per
coordinate (Adam, AdaHessian, Sophia-H, the best diagonal ``diag(Σ)^p``) loses the spectral bias.
K-FAC keeps the full input factor ``A = E[x xᵀ]``; with input power ``p``, output power 0, no bias
column and no damping it preconditions layer 1 by ``Σ̂^p`` (``Σ̂ = XᵀX/N``), whatever ``Q`` is.

:func:`compare_arms` trains one seed under each arm of :data:`ARMS` on the same data and init and
returns each arm's final first-layer kernel and test MSE; :func:`feature_distance` measures how
far two first layers' learned directions are apart.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxprecond.adahessian import adahessian
from jaxprecond.data import Spectrum, sample_task
from jaxprecond.estimated import empirical_covariance
from jaxprecond.kfac import scale_by_kfac
from jaxprecond.linalg import Eigh
from jaxprecond.model import init_mlp
from jaxprecond.train import train
from jaxprecond.transforms import covariance_power

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


def arm_optimizer(arm: str, spectrum: Spectrum, power, *, config, key, x_train):
    """The optimizer of ``arm`` and the loss's weight decay (0 for AdaHessian's decoupled one).

    Args:
      arm: one of :data:`ARMS`.
      spectrum: the (possibly rotated) input spectrum.
      power: ``p``.
      config: a :class:`~jaxprecond.noise.NoiseConfig` (learning rate, weight decay, sizes).
      key: AdaHessian's probe key.
      x_train: the training inputs (``"empirical"`` uses their second moment ``Σ̂``).

    Returns:
      ``(optimizer, weight_decay)``.

    Raises:
      ValueError: ``arm`` is not one of :data:`ARMS`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxprecond.data import case_spectrum
      >>> from jaxprecond.noise import NoiseConfig
      >>> cfg = NoiseConfig(dx=2, dh=3, learning_rate=0.1, weight_decay=0.01)
      >>> spec = case_spectrum("high", dx=2, scale=4.0)  # Σ = diag(4, 0.25)
      >>> key, x = jax.random.key(0), jnp.ones((4, 2))
      >>> tx, wd = arm_optimizer("diagonal", spec, -1.0, config=cfg, key=key, x_train=x)
      >>> w = {"W1": jnp.zeros((3, 2))}
      >>> u = tx.update({"W1": jnp.ones((3, 2))}, tx.init(w), w)[0]["W1"]  # −lr · G diag(Σ)^p
      >>> wd, [round(float(v), 4) for v in u[0]]
      (0.01, [-0.025, -0.4])
      >>> arm_optimizer("adahessian", spec, -1.0, config=cfg, key=key, x_train=x)[1]
      0.0
    """
    lr, wd = config.learning_rate, config.weight_decay
    if arm == "exact":
        eigh = Eigh(spectrum.eigenvalues, spectrum.eigenvectors)
        return covariance_power(lr, eigh, power, layout="out_in"), wd
    if arm == "empirical":
        return covariance_power(lr, empirical_covariance(x_train), power, layout="out_in"), wd
    if arm == "diagonal":
        return covariance_power(lr, diagonal_power(spectrum.covariance), power, layout="out_in"), wd
    if arm == "kfac":
        return first_layer_kfac(lr, power, dh=config.dh, refresh_every=config.steps), wd
    if arm == "adahessian":
        return adahessian(lr, hessian_power=-power, weight_decay=wd, seed=key), 0.0
    raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")


def compare_arms(key, spectrum: Spectrum, power, *, config, arms=ARMS) -> dict:
    """Train one seed under each arm, from the same data and initial weights.

    Args:
      key: the seed's key (data, init and AdaHessian probes derive from it).
      spectrum: the input spectrum (rotate it with ``case_spectrum(..., rotation=Q)``).
      power: ``p`` (may be traced).
      config: a :class:`~jaxprecond.noise.NoiseConfig` for sizes, steps and rates.
      arms: a subset of :data:`ARMS`.

    Returns:
      ``{arm: {"W1": final (dh, dx) kernel, "test_mse": scalar}}``.

    Example:
      >>> import jax
      >>> from jaxprecond.data import case_spectrum, random_rotation
      >>> from jaxprecond.noise import NoiseConfig
      >>> cfg = NoiseConfig(dh=8, n=300, n_train=50, steps=10, log_every=10)
      >>> spec = case_spectrum("high", rotation=random_rotation(jax.random.key(0), 10))
      >>> out = compare_arms(jax.random.key(1), spec, 1.0, config=cfg, arms=("exact", "kfac"))
      >>> float(feature_distance(out["exact"]["W1"], out["kfac"]["W1"])) < 0.5
      True
    """
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:
        raise ValueError(f"arms must be among {ARMS}, got {unknown}")
    key_data, key_init, key_probe = jax.random.split(key, 3)
    task = sample_task(key_data, spectrum, config.snrs[0], n=config.n, n_train=config.n_train)
    params = init_mlp(key_init, config.dx, config.dh, scale=config.init_scale, dtype=config.dtype)
    out = {}
    for arm in arms:
        optimizer, weight_decay = arm_optimizer(
            arm, spectrum, power, config=config, key=key_probe, x_train=task.x_train
        )
        final, trajectory = train(
            params,
            optimizer,
            task,
            steps=config.steps,
            log_every=config.steps,
            weight_decay=weight_decay,
            eigenvectors=spectrum.eigenvectors,
            eval_block_size=config.eval_block_size,
        )
        # one record, after the last step: the final test MSE, computed once by the loop
        out[arm] = {"W1": final["W1"], "test_mse": trajectory.test_mse[-1]}
    return out
