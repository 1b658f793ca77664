"""The regression student of the paper, shared by the noise, transfer and rotated experiments.

Not an experiment itself: the settings of training the two-layer student on the single-index
teacher (:class:`StudentConfig`), the loop that trains it and records its features
(:func:`train`), and one seed's run (:func:`train_student`): data, init and optimizer drawn
from the seed's key exactly as the authors' script does.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxprecond.checks import SettingError
from jaxprecond.engine.config import (
    FLAG,
    NON_NEGATIVE,
    NUMBER,
    POSITIVE,
    POSITIVE_INT,
    Config,
    one_of,
    setting,
)
from jaxprecond.engine.trainer import train as train_loop
from jaxprecond.linalg import Eigh
from jaxprecond.optim.adahessian import PROBES
from jaxprecond.optim.covariance_power import preconditioner_eigh
from jaxprecond.optim.registry import make_optimizer, oracles, weight_decay_coupling
from jaxprecond.tasks.single_index import (
    CASES,
    case_spectrum,
    random_rotation,
    sample_task,
    stack_spectra,
)
from jaxprecond.tasks.student import (
    blocked_mse,
    first_layer_features,
    init_mlp,
    init_mlp_gaussian,
    regression_loss,
    whitened_features,
)

Precision = jax.lax.Precision
PRECISIONS = {"highest": Precision.HIGHEST, "high": Precision.HIGH, "default": Precision.DEFAULT}


@dataclasses.dataclass(frozen=True)
class StudentConfig(Config):
    """Settings of the student's training; the defaults are the authors' (reference) settings.

    Example:
      >>> cfg = StudentConfig(dx=4, steps=200, log_every=100)
      >>> cfg.dtype, cfg.k < cfg.dx
      (<class 'jax.numpy.float32'>, True)
      >>> StudentConfig(steps=150, log_every=100)
      Traceback (most recent call last):
      ...
      jaxprecond.checks.SettingError: steps=150 must be a multiple of log_every=100
    """

    powers: tuple[float, ...] = setting(
        (-1.0, -0.5, 0.0, 0.5, 1.0), "preconditioner powers p", NUMBER.many(), traced=True,
        flag="--p",
    )  # fmt: skip
    steps: int = setting(10_000, "gradient steps", POSITIVE_INT)
    log_every: int = setting(100, "record metrics every K steps", POSITIVE_INT)
    dx: int = setting(10, "input dimension", POSITIVE_INT)
    dh: int = setting(500, "hidden width", POSITIVE_INT)
    n: int = setting(10_000, "points drawn per seed (training + test)", POSITIVE_INT)
    n_train: int = setting(200, "training points (the first n_train of n)", POSITIVE_INT)
    scale: float = setting(10.0, "the large eigenvalue (the small one is 1/scale)", POSITIVE)
    k: int = setting(1, "eigen-directions the teacher lies on", POSITIVE_INT)
    learning_rate: float = setting(1e-2, "learning rate", POSITIVE, traced=True, flag="--lr")
    weight_decay: float = setting(
        1e-6, "L2 coefficient wd (loss + wd/2N Σ‖W‖²)", NON_NEGATIVE, traced=True
    )
    init_scale: float = setting(1e-3, "scale of the initial weights", NON_NEGATIVE, traced=True)
    teacher_scale: float = setting(
        1.0, "S: the teacher is softplus(10 S <beta*, x>)", POSITIVE, traced=True
    )
    probe: str = setting(
        "rademacher", "AdaHessian's probe (minus_ones: as the authors' code ran)", one_of(*PROBES)
    )
    rotate: bool = setting(False, "rotate the eigenvectors of Sigma at random", FLAG)
    eval_block_size: int = setting(980, "test points evaluated at once", POSITIVE_INT)
    float64: bool = setting(False, "compute in float64", FLAG, axis=False)
    precision: str = setting(
        "highest",
        "matmul precision: highest = float32 (the reference); default = TF32 on NVIDIA GPUs",
        one_of(*PRECISIONS),
    )

    def validate(self) -> None:
        if not 1 < self.n_train < self.n:
            raise SettingError(f"need 1 < n_train < n, got n_train={self.n_train}, n={self.n}")
        if not self.k < self.dx:
            raise SettingError(f"need k < dx, got k={self.k}, dx={self.dx}")

    @property
    def dtype(self):
        """``jnp.float64`` with ``float64``, else ``jnp.float32``."""
        return jnp.float64 if self.float64 else jnp.float32


@dataclasses.dataclass(frozen=True)
class PreconditionerConfig(StudentConfig):
    """The student's settings and its training's: the preconditioner (exact ``Σ^p`` on layer 1
    or AdaHessian), the initialisation, the normalisation of ``P`` and minibatches.

    Example:
      >>> PreconditionerConfig(batch_size=300)
      Traceback (most recent call last):
      ...
      jaxprecond.checks.SettingError: batch_size=300 is larger than n_train=200
    """

    init: str = setting(
        "kaiming",
        "kaiming-uniform x init_scale (reference) or w_j ~ N(0, init_scale^2 P) (theory)",
        one_of("kaiming", "gaussian"),
    )
    preconditioner: str = setting(
        "covariance_power",
        "exact Sigma^p on layer 1, or AdaHessian on every layer with hessian_power = -p",
        one_of("covariance_power", "adahessian"),
    )
    normalize: str | None = setting(
        None,
        "normalise P: by its largest eigenvalue (max), to trace dx (trace), or by the largest "
        "eigenvalue of Sigma^(p+1), the same top step in whitened coordinates (whitened)",
        one_of("max", "trace", "whitened").maybe(),
    )
    batch_size: int | None = setting(
        None, "minibatch size (default: full batch)", POSITIVE_INT.maybe()
    )

    def validate(self) -> None:
        super().validate()
        if self.batch_size is not None and self.batch_size > self.n_train:
            raise SettingError(
                f"batch_size={self.batch_size} is larger than n_train={self.n_train}"
            )


class Trajectory(NamedTuple):
    """Metrics recorded every ``log_every`` steps; each field has a leading record axis ``R``.

    Attributes:
      train_loss: ``(R,)`` training loss (with the weight-decay term) before the recorded step.
      test_mse: ``(R,)`` plain test MSE after the recorded step.
      alignment: ``(R,)`` fraction of the first layer's energy along the teacher direction,
        ``‖W1 β̂‖² / ‖W1‖²``.
      energy: ``(R, dx)`` fraction of the first layer's energy along each eigenvector ``q_r``
        of Σ, ``‖W1 q_r‖² / ‖W1‖²`` (sums to one).
      whitened_alignment: ``(R,)`` the alignment in whitened coordinates,
        ``‖W1 Σ^{1/2} û‖² / ‖W1 Σ^{1/2}‖²_F`` with ``û ∝ Σ^{1/2}β*``.
      whitened_energy: ``(R, dx)`` the energy per eigendirection in whitened coordinates.
      noise_floor: ``(R,)`` the test MSE of the teacher itself (the noiseless targets), which
        no student can beat; the same at every record.

    The input-space features (``alignment``, ``energy``) are the paper's. The whitened ones are
    where the dynamics live (the step is ``ṽ ← ṽ − η Σ^{p+1} ∇_ṽ L`` on isotropic inputs) and
    are what the claims comparing Case High with Case Low use: in input space the 100×
    eigenvalue ratio alone makes the two cases' alignments differ, even when their whitened
    features are identical (see :func:`~jaxprecond.tasks.student.whitened_features`).
    """

    train_loss: jax.Array
    test_mse: jax.Array
    alignment: jax.Array
    energy: jax.Array
    whitened_alignment: jax.Array
    whitened_energy: jax.Array
    noise_floor: jax.Array


def train(
    params,
    optimizer,
    task,
    *,
    steps: int,
    log_every: int,
    weight_decay: float,
    eigenvectors,
    eigenvalues=None,
    batch_size: int | None = None,
    key=None,
    eval_block_size: int = 1000,
    precision=Precision.HIGHEST,
    opt_state=None,
):
    """Train the student on ``task``, recording its :class:`Trajectory` every ``log_every``.

    The loss is the reference's, ``mean((f(X) − y)²) + 0.5·wd·(‖W1‖² + ‖W2‖²)/N``. Full batch by
    default; with ``batch_size`` each step draws a minibatch (with replacement) from ``key``
    folded with the step index. The optimizer receives the registry's oracles
    (:func:`jaxprecond.optim.registry.oracles`).

    Args:
      params: initial student parameters.
      optimizer: any optax transformation.
      task: a :class:`~jaxprecond.tasks.single_index.Task`.
      steps, log_every: steps (a multiple of ``log_every``) and the recording period.
      weight_decay: ``wd`` of the loss.
      eigenvectors: ``(dx, dx)`` eigenvectors of Σ, for the energy metric.
      eigenvalues: ``(dx,)`` eigenvalues of Σ, for the whitened features (``None``: ones).
      batch_size, key: minibatch size (``None``: full batch) and its PRNG key.
      eval_block_size: test points evaluated at once.
      precision: matmul precision.
      opt_state: the optimizer's state to start from.

    Returns:
      ``(final_params, trajectory)``.

    Example:
      >>> import optax
      >>> spec = case_spectrum("high")
      >>> task = sample_task(jax.random.key(0), spec, 1.0, n=300, n_train=100)
      >>> run = lambda: train(init_mlp(jax.random.key(1), 10, 20), optax.sgd(0.01), task,
      ...                     steps=20, log_every=10, weight_decay=1e-6,
      ...                     eigenvectors=spec.eigenvectors)
      >>> jax.eval_shape(run)[1].energy.shape  # shapes only, no compiling
      (2, 10)
    """
    n_train = task.x_train.shape[0]
    spectrum_values = (
        jnp.ones(eigenvectors.shape[0], eigenvectors.dtype) if eigenvalues is None else eigenvalues
    )
    if batch_size is not None and key is None:
        raise ValueError("batch_size needs a key for drawing minibatches")

    def batch(t):
        if batch_size is None:
            return task.x_train, task.y_train
        index = jax.random.randint(jax.random.fold_in(key, t), (batch_size,), 0, n_train)
        return task.x_train[index], task.y_train[index]

    def loss(p, data):
        x, y = data
        return regression_loss(
            p, x, y, weight_decay=weight_decay, n_train=n_train, precision=precision
        )

    noise_floor = (
        jnp.nan if task.signal_test is None else jnp.mean((task.y_test - task.signal_test) ** 2)
    )

    def record(p, losses):
        test_mse = blocked_mse(
            p, task.x_test, task.y_test, block_size=eval_block_size, precision=precision
        )
        alignment, energy = first_layer_features(p["W1"], eigenvectors, task.beta)
        whitened = whitened_features(p["W1"], spectrum_values, eigenvectors, task.beta)
        return Trajectory(losses[-1], test_mse, alignment, energy, *whitened, noise_floor)

    return train_loop(
        params,
        optimizer,
        loss,
        steps=steps,
        log_every=log_every,
        record=record,
        batch=batch,
        oracles=oracles,
        opt_state=opt_state,
    )


def spectra(config: StudentConfig):
    """The input spectra of both cases, stacked (leading axis: ``CASES``).

    With ``config.rotate`` both share one random rotation drawn from ``config.root_seed``.

    Example:
      >>> spectra(StudentConfig(dx=3)).eigenvalues  # Case High, then Case Low
      Array([[10. ,  0.1,  0.1],
             [10. , 10. ,  0.1]], dtype=float32)
    """
    rotation = None
    if config.rotate:
        key = jax.random.fold_in(jax.random.key(config.root_seed), 2**31 - 1)
        rotation = random_rotation(key, config.dx, config.dtype)
    return stack_spectra(
        [
            case_spectrum(
                c, dx=config.dx, k=config.k, scale=config.scale, rotation=rotation,
                dtype=config.dtype,
            )
            for c in CASES
        ]
    )  # fmt: skip


def train_student(key, spectrum, power, snr, config: PreconditionerConfig):
    """One seed's student on one case's spectrum at one ``p`` and SNR: ``(params, trajectory)``.

    The key splits into the data, the init and the minibatches (AdaHessian's probes from the
    last). The optimizer is ``config.preconditioner``: exact ``Σ^p`` on layer 1 and GD elsewhere,
    or AdaHessian with ``hessian_power = −p``; weight decay as
    :func:`~jaxprecond.optim.registry.weight_decay_coupling` places it.

    Args:
      key: the seed's key.
      spectrum: the case's :class:`~jaxprecond.tasks.single_index.Spectrum`.
      power, snr: ``p`` and the SNR (may be traced).
      config: the settings (``learning_rate``, ``weight_decay``, ``init_scale`` may be traced).

    Returns:
      The final parameters and the run's :class:`Trajectory`.

    Example:
      >>> cfg = PreconditionerConfig(steps=20, log_every=10, dh=8, n=300, n_train=50)
      >>> run = lambda key: train_student(key, case_spectrum("high"), 1.0, 1.0, cfg)
      >>> params, traj = jax.eval_shape(run, jax.random.key(0))  # shapes only
      >>> params["W1"].shape, traj.test_mse.shape
      ((8, 10), (2,))
    """
    key_data, key_init, key_batch = jax.random.split(key, 3)
    task = sample_task(
        key_data, spectrum, snr, n=config.n, n_train=config.n_train,
        teacher_scale=config.teacher_scale,
    )  # fmt: skip
    eigh = Eigh(spectrum.eigenvalues, spectrum.eigenvectors)
    if config.init == "gaussian":
        p_eigh = preconditioner_eigh(eigh, power, normalize=config.normalize)
        params = init_mlp_gaussian(key_init, p_eigh, config.dh, sigma=config.init_scale)
    else:
        params = init_mlp(
            key_init, config.dx, config.dh, scale=config.init_scale, dtype=config.dtype
        )
    options, weight_decay = weight_decay_coupling(config.preconditioner, config.weight_decay)
    if config.preconditioner == "adahessian":
        options.update(hessian_power=-power, probe=config.probe)
        options.update(seed=jax.random.fold_in(key_batch, 1))
    else:
        options.update(covariance=eigh, power=power, normalize=config.normalize)
    optimizer = make_optimizer(config.preconditioner, config.learning_rate, **options)
    return train(
        params,
        optimizer,
        task,
        steps=config.steps,
        log_every=config.log_every,
        weight_decay=weight_decay,
        eigenvectors=spectrum.eigenvectors,
        eigenvalues=spectrum.eigenvalues,
        batch_size=config.batch_size,
        key=key_batch,
        eval_block_size=config.eval_block_size,
        precision=PRECISIONS[config.precision],
    )
