"""Out-of-distribution generalization under a correlation shift (paper Sec. 4.2, Fig. 2).

Every training image of class ``c`` carries a faint noise template ``t_c`` (a low-variance,
perfectly predictive spurious feature; the digit is the high-variance one), see
:mod:`jaxprecond.ood_data`. A 784→256→10 ReLU MLP is trained full batch with cross-entropy by
each optimizer of the comparison, and by GD with the first-layer kernel preconditioned by
``(Σ + δI)^p`` (``Σ`` the training images' second moment, ``δ = damping × mean eigenvalue``:
border pixels make ``Σ`` singular). Two OOD test sets share one training run:

* *invariant-digit*: true labels, each image carrying the template of a swapped class; accuracy
  measures reliance on the digit (the high-variance feature);
* *invariant-noise*: random labels, each image carrying its label's template; accuracy measures
  reliance on the template (the low-variance feature).

Each optimizer is one sweep (:mod:`jaxprecond.sweep`) in a subfolder of the run folder, with
seeds (templates, pools, init) vmapped and, for Σ^p, the powers in the same compiled program.
Seed ``i``'s data and init are the same for every optimizer. ``dataset="synthetic"`` runs the
same protocol on :func:`jaxprecond.ood_data.synthetic_ood_data`, cheap enough for thousands of
seeds on a CPU.

Differences from the authors' script: pools are drawn with a seeded key (theirs unseeded); the
invariant-digit set keeps the true labels (theirs randomises the labels in both scenarios);
L-BFGS runs optax's zoom line search, one iteration per step.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxprecond.classifier import (
    CLASSIFIER_LAYERS,
    accuracy,
    classification_loss,
    classifier_kfac_statistics,
    init_classifier,
)
from jaxprecond.estimated import empirical_covariance
from jaxprecond.linalg import eigh_psd
from jaxprecond.registry import make_optimizer, oracles
from jaxprecond.stats import DivergenceWarning, SeedSummary, summarize_trajectories
from jaxprecond.store import write_text
from jaxprecond.sweep import Experiment, SweepSpec, load_sweep, run_sweep
from jaxprecond.transforms import NORMALIZATIONS, covariance_power

DATASETS = ("mnist", "fashion-mnist", "synthetic")
OPTIMIZERS = ("gd", "momentum", "adam", "sam", "lbfgs", "kfac", "adahessian", "sophia_h")
#: The arm of the p-sweep: GD with Σ^p on layer 1.
SIGMA_P = "sigma_p"
METRICS = ("train_loss", "val_acc", "digit_acc", "noise_acc")
SCENARIOS = {"digit_acc": "invariant-digit", "noise_acc": "invariant-noise"}


@dataclasses.dataclass(frozen=True)
class OODConfig:
    """Settings of the OOD experiment; defaults follow the reference script (8 seeds on a CPU).

    Attributes:
      dataset: ``"mnist"``, ``"fashion-mnist"`` or ``"synthetic"``.
      optimizers: optimizers of :data:`OPTIMIZERS` to compare.
      powers: exponents ``p`` of the Σ^p arm (empty: no Σ^p arm).
      seeds: seeds per optimizer (and per p).
      steps, log_every: full-batch steps and the recording period.
      hidden: hidden width.
      n_train, n_val, n_test: training pool, in-distribution validation, OOD test images.
      template_std: the templates' per-pixel standard deviation.
      learning_rate: every optimizer's learning rate unless ``learning_rates`` names it.
      learning_rates: ``((optimizer, lr), ...)`` overrides (``"sigma_p"`` for the p-sweep).
      weight_decay: coupled L2 coefficient (decoupled for AdaHessian, as its implementation).
      damping: Σ^p's ``δ`` relative to the mean eigenvalue of ``Σ``.
      normalize: Σ^p's normalisation (``None``, ``"max"``, ``"trace"``).
      kfac_refresh: K-FAC's steps between eigendecompositions of its factors.
      data_dir: where to look for the IDX files first (see :mod:`jaxprecond.idx`).
      test_split_only: draw every pool from the 10 000-image test split (when the training
        split is absent; the tests use this).
      root_seed: root of the seeds' keys.
      chunk_size: seeds per compiled call (``None``: all).
      group_size: seeds trained side by side (``vmap``) inside a compiled call; 1 runs them one
        after the other (best for the large image matmuls on a CPU).

    Example:
      >>> cfg = OODConfig(dataset="synthetic", optimizers=("gd", "adam"), powers=(-1, 1))
      >>> cfg.arms, cfg.powers
      (('gd', 'adam', 'sigma_p'), (-1.0, 1.0))
      >>> OODConfig(optimizers=(), powers=())
      Traceback (most recent call last):
      ...
      ValueError: nothing to run: give optimizers or powers
    """

    dataset: str = "mnist"
    optimizers: tuple[str, ...] = OPTIMIZERS
    powers: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
    seeds: int = 8
    steps: int = 500
    log_every: int = 50
    hidden: int = 256
    n_train: int = 1200
    n_val: int = 1200
    n_test: int = 2000
    template_std: float = 0.1
    learning_rate: float = 1e-2
    learning_rates: tuple[tuple[str, float], ...] = ()
    weight_decay: float = 1e-4
    damping: float = 1e-3
    normalize: str | None = None
    kfac_refresh: int = 10
    data_dir: str | None = None
    test_split_only: bool = False
    root_seed: int = 0
    chunk_size: int | None = None
    group_size: int = 1

    def __post_init__(self):
        object.__setattr__(self, "optimizers", tuple(self.optimizers))
        object.__setattr__(self, "powers", tuple(float(p) for p in self.powers))
        object.__setattr__(
            self, "learning_rates", tuple((str(k), float(v)) for k, v in self.learning_rates)
        )
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting.

        Construction (and so ``dataclasses.replace``) calls it.

        Raises:
          ValueError: a setting out of range; the message names it and its value.

        Example:
          >>> cfg = OODConfig()
          >>> cfg.validate()  # the defaults are valid: returns None
          >>> dataclasses.replace(cfg, learning_rates=(("sgd", 0.1),))
          Traceback (most recent call last):
          ...
          ValueError: learning_rates names an unknown optimizer 'sgd'
        """
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        unknown = [o for o in self.optimizers if o not in OPTIMIZERS]
        if unknown:
            raise ValueError(f"unknown optimizers {unknown}; choose from {OPTIMIZERS}")
        if not self.optimizers and not self.powers:
            raise ValueError("nothing to run: give optimizers or powers")
        for name in (
            "seeds",
            "steps",
            "log_every",
            "hidden",
            "n_train",
            "n_val",
            "n_test",
            "group_size",
            "kfac_refresh",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.steps % self.log_every:
            raise ValueError(f"steps={self.steps} must be a multiple of log_every={self.log_every}")
        for name in ("learning_rate", "template_std"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be positive and finite, got {value!r}")
        for name in ("weight_decay", "damping"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be non-negative and finite, got {value!r}")
        for name, lr in self.learning_rates:
            if name not in OPTIMIZERS + (SIGMA_P,):
                raise ValueError(f"learning_rates names an unknown optimizer {name!r}")
            if not np.isfinite(lr) or lr <= 0:
                raise ValueError(f"learning rate of {name!r} must be positive, got {lr!r}")
        if not all(np.isfinite(p) for p in self.powers):
            raise ValueError(f"powers must be finite, got {self.powers!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        chunk = self.chunk_size
        if chunk is not None and (
            not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool) or chunk < 1
        ):
            raise ValueError(f"chunk_size must be a positive integer, got {chunk!r}")

    @property
    def arms(self) -> tuple[str, ...]:
        """The optimizers, then ``"sigma_p"`` if there are powers.

        Returns:
          ``optimizers``, followed by :data:`SIGMA_P` when ``powers`` is not empty.

        Example:
          >>> OODConfig(optimizers=("gd", "kfac"), powers=(0.0,)).arms
          ('gd', 'kfac', 'sigma_p')
          >>> OODConfig(optimizers=("adam",), powers=()).arms
          ('adam',)
        """
        return self.optimizers + ((SIGMA_P,) if self.powers else ())

    def lr(self, arm: str) -> float:
        """The learning rate of ``arm``.

        Args:
          arm: an optimizer of :data:`OPTIMIZERS` or ``"sigma_p"``.

        Returns:
          ``arm``'s entry of ``learning_rates``, else ``learning_rate``.

        Example:
          >>> cfg = OODConfig(learning_rate=0.01, learning_rates=(("adam", 1e-3),))
          >>> cfg.lr("adam"), cfg.lr("gd")
          (0.001, 0.01)
        """
        return dict(self.learning_rates).get(arm, self.learning_rate)


#: Named settings: ``cpu`` (MNIST, 8 seeds: the reference protocol, ~25 min on 2 cores), ``gpu``
#: (32 seeds), ``synthetic`` (the Gaussian task, 256 seeds in minutes on a CPU), ``quick`` (a
#: small MNIST run for ``jaxprecond reproduce --quick``).
OOD_PRESETS = {
    "cpu": OODConfig(),
    "gpu": OODConfig(seeds=32),
    "synthetic": OODConfig(
        dataset="synthetic",
        seeds=256,
        hidden=64,
        n_train=200,
        n_val=1000,
        n_test=1000,
        group_size=64,
    ),
    "quick": OODConfig(
        optimizers=("gd", "adam", "kfac"),
        seeds=2,
        steps=200,
        hidden=128,
        n_train=600,
        n_val=600,
        n_test=1000,
    ),
}


def load_images(config: OODConfig, *, download: bool = False) -> dict:
    """The data set the runs draw from, as float32 features in ``[0, 1]``.

    Returns ``{"pool_images", "pool_labels"}`` plus ``"test_images", "test_labels"`` unless
    ``config.test_split_only`` (then every pool comes from the test split); ``{}`` for the
    synthetic task.

    Args:
      config: the settings (``dataset``, ``data_dir``, ``test_split_only``).
      download: fetch a missing image set into the user cache (see :mod:`jaxprecond.idx`).

    Returns:
      A dict of numpy arrays: ``(N, 784)`` ``float32`` images and ``(N,)`` ``int32`` labels.

    Raises:
      FileNotFoundError, ValueError: the image files are missing, corrupt or not the expected
        version (see :func:`jaxprecond.idx.load_idx_dataset`).

    Example:
      >>> load_images(OODConfig(dataset="synthetic"))  # the synthetic task reads no images
      {}
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as folder:  # files that are not MNIST's
      ...     for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
      ...         _ = (Path(folder) / name).write_bytes(b"not mnist")
      ...     try:
      ...         load_images(OODConfig(data_dir=folder, test_split_only=True))
      ...     except ValueError as error:
      ...         print(str(error)[:17])
      checksum mismatch
    """
    from jaxprecond.idx import load_idx_dataset
    from jaxprecond.ood_data import as_features

    if config.dataset == "synthetic":
        return {}

    def load(split):
        return load_idx_dataset(config.dataset, split, data_dir=config.data_dir, download=download)

    test_images, test_labels = load("test")
    test = {
        "test_images": np.asarray(as_features(test_images)),
        "test_labels": test_labels.astype(np.int32),
    }
    if config.test_split_only:
        return {"pool_images": test["test_images"], "pool_labels": test["test_labels"]}
    images, labels = load("train")
    return {
        "pool_images": np.asarray(as_features(images)),
        "pool_labels": labels.astype(np.int32),
        **test,
    }


def draw_data(key, data: dict, config: OODConfig):
    """One seed's :class:`~jaxprecond.ood_data.OODData` (templates, pools, test sets).

    Args:
      key: the seed's data key.
      data: the arrays of :func:`load_images` (``{}`` for the synthetic task).
      config: the settings (``dataset``, the set sizes, ``template_std``).

    Returns:
      An :class:`~jaxprecond.ood_data.OODData` of :func:`~jaxprecond.ood_data.make_ood_data`
      or, for the synthetic task, :func:`~jaxprecond.ood_data.synthetic_ood_data`.

    Example:
      >>> images, labels = np.full((30, 4), 0.5, np.float32), np.arange(30) % 10
      >>> pool = {"pool_images": images, "pool_labels": labels}  # 30 images of 4 pixels
      >>> cfg = OODConfig(n_train=10, n_val=10, n_test=10, test_split_only=True)
      >>> d = jax.eval_shape(lambda key: draw_data(key, pool, cfg), jax.random.key(0))
      >>> d.x_train.shape, d.x_digit.shape, d.templates.shape  # shapes only, no compiling
      ((10, 4), (10, 4), (10, 4))
      >>> cfg = OODConfig(dataset="synthetic", n_train=8, n_val=4, n_test=6)
      >>> d = jax.eval_shape(lambda key: draw_data(key, {}, cfg), jax.random.key(0))
      >>> d.x_train.shape, d.x_noise.shape, d.templates.shape
      ((8, 20), (6, 20), (2, 20))
    """
    from jaxprecond.ood_data import make_ood_data, synthetic_ood_data

    if config.dataset == "synthetic":
        return synthetic_ood_data(
            key, n_train=config.n_train, n_val=config.n_val, n_test=config.n_test
        )
    return make_ood_data(
        key,
        data["pool_images"],
        data["pool_labels"],
        data.get("test_images"),
        data.get("test_labels"),
        n_train=config.n_train,
        n_val=config.n_val,
        n_test=config.n_test,
        template_std=config.template_std,
    )


def damped_second_moment(x, damping):
    """Eigendecomposition of ``Σ + δI``, ``Σ = xᵀx/N``, ``δ = damping · tr(Σ)/d``.

    Args:
      x: ``(N, d)`` inputs, one per row.
      damping: ``δ`` relative to the mean eigenvalue ``tr(Σ)/d`` of ``Σ``.

    Returns:
      The :class:`~jaxprecond.linalg.Eigh` of ``Σ + δI`` (eigenvalues ascending).

    Example:
      >>> x = jnp.array([[2.0, 0.0], [0.0, 0.0]])  # Σ = diag(2, 0): singular, as border pixels
      >>> eigh = damped_second_moment(x, 0.01)  # δ = 0.01 · tr(Σ)/2 = 0.01
      >>> [round(float(v), 4) for v in eigh.eigenvalues]
      [0.01, 2.01]
    """
    sigma = empirical_covariance(x)
    delta = damping * jnp.trace(sigma) / sigma.shape[0]
    return eigh_psd(sigma, damping=delta)


def arm_optimizer(arm: str, values: dict, x_train, key, config: OODConfig):
    """``(optimizer, loss weight decay)`` of one arm; ``values`` holds the sweep's ``p``.

    Args:
      arm: an optimizer of :data:`OPTIMIZERS` or ``"sigma_p"`` (GD with ``(Σ + δI)^p`` on the
        first-layer kernel, ``Σ`` from ``x_train``, see :func:`damped_second_moment`).
      values: the sweep's axis values (``values["p"]`` for ``"sigma_p"``).
      x_train: ``(N, d)`` training inputs.
      key: the seed's optimizer key (AdaHessian's Hutchinson probes).
      config: the settings (learning rates, ``weight_decay``, ``damping``, ``normalize``,
        ``kfac_refresh``).

    Returns:
      ``(optimizer, weight_decay)``: an optax transformation and the coupled L2 coefficient of
      the loss (``0.0`` for AdaHessian, whose weight decay is decoupled).

    Example:
      >>> cfg = OODConfig(learning_rate=0.1, damping=0.0)
      >>> x = jnp.array([[2.0, 0.0], [0.0, 1.0]])  # Σ = xᵀx/2 = diag(2, 0.5)
      >>> tx, wd = arm_optimizer("sigma_p", {"p": 1.0}, x, None, cfg)
      >>> params = {"W1": jnp.zeros((3, 2)), "b1": jnp.zeros(3)}  # W1: (hidden, d)
      >>> grads = jax.tree.map(jnp.ones_like, params)
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> [round(float(u), 4) for u in updates["W1"][0]], wd  # −lr · gΣ on W1
      ([-0.2, -0.05], 0.0001)
      >>> arm_optimizer("adahessian", {}, x, jax.random.key(0), cfg)[1]  # decoupled decay
      0.0
    """
    lr = config.lr(arm)
    wd = config.weight_decay
    if arm == SIGMA_P:
        eigh = damped_second_moment(x_train, config.damping)
        tx = covariance_power(lr, eigh, values["p"], layout="out_in", normalize=config.normalize)
        return optax.with_extra_args_support(tx), wd
    if arm == "adahessian":  # decoupled weight decay, plain cross-entropy
        return make_optimizer(arm, lr, weight_decay=wd, seed=key), 0.0
    if arm == "sophia_h":  # the coupled L2 term only, not sophia's own decoupled decay too
        return make_optimizer(arm, lr, weight_decay=0.0), wd
    if arm == "kfac":
        options = dict(layers=CLASSIFIER_LAYERS, statistics=classifier_kfac_statistics)
        return make_optimizer(arm, lr, refresh_every=config.kfac_refresh, **options), wd
    return make_optimizer(arm, lr), wd


def train_classifier(params, optimizer, data, *, steps: int, log_every: int, weight_decay):
    """Full-batch training on ``data.x_train``; every ``log_every`` steps record the train
    loss and the validation and OOD accuracies.

    Args:
      params: initial classifier parameters.
      optimizer: an optax transformation (receives the registry's oracles).
      data: a :class:`~jaxprecond.ood_data.OODData`.
      steps, log_every: steps and the recording period (``log_every`` divides ``steps``).
      weight_decay: the coupled L2 coefficient of the loss.

    Returns:
      ``{metric: (steps // log_every,)}`` for :data:`METRICS`.

    Example:
      >>> from jaxprecond.ood_data import synthetic_ood_data
      >>> def run(key):
      ...     data = synthetic_ood_data(key, d=8, n_train=32, n_val=16, n_test=16)
      ...     params = init_classifier(key, 8, 16, 2)
      ...     return train_classifier(
      ...         params, optax.sgd(0.1), data, steps=20, log_every=5, weight_decay=1e-4
      ...     )
      >>> records = jax.eval_shape(run, jax.random.key(0))  # shapes only, no compiling
      >>> {metric: r.shape for metric, r in records.items()}
      {'digit_acc': (4,), 'noise_acc': (4,), 'train_loss': (4,), 'val_acc': (4,)}
    """
    optimizer = optax.with_extra_args_support(optimizer)
    x, y = data.x_train, data.y_train

    def objective(p):
        return classification_loss(p, x, y, weight_decay=weight_decay)

    def step(carry, t):
        params, state = carry
        loss, grads = jax.value_and_grad(objective)(params)
        extra = oracles(objective, params, value=loss, grad=grads, step=t, inputs=x, targets=y)
        updates, state = optimizer.update(grads, state, params, **extra)
        return (optax.apply_updates(params, updates), state), loss

    def block(carry, first):
        carry, losses = jax.lax.scan(step, carry, first + jnp.arange(log_every))
        p = carry[0]
        record = {
            "train_loss": losses[-1],
            "val_acc": accuracy(p, data.x_val, data.y_val),
            "digit_acc": accuracy(p, data.x_digit, data.y_digit),
            "noise_acc": accuracy(p, data.x_noise, data.y_noise),
        }
        # a diverged run is NaN in every metric, so it is reported, never averaged
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(p)]))
        finite &= jnp.isfinite(losses).all()
        return carry, {k: jnp.where(finite, v, jnp.nan) for k, v in record.items()}

    carry = (params, optimizer.init(params))
    _, records = jax.lax.scan(block, carry, jnp.arange(0, steps, log_every))
    return records


def ood_experiment(arm: str, config: OODConfig, data: dict) -> Experiment:
    """The sweep :class:`~jaxprecond.sweep.Experiment` of one arm.

    Args:
      arm: one of ``config.arms``.
      config: the settings.
      data: the arrays of :func:`load_images` (``{}`` for the synthetic task).

    Returns:
      An :class:`~jaxprecond.sweep.Experiment` named ``"ood-<arm>"`` with axes ``p`` and
      ``learning_rate``; its cell draws the seed's data (:func:`draw_data`), initialises the
      classifier and trains it (:func:`train_classifier`).

    Raises:
      ValueError: ``arm`` is not one of ``config.arms``.

    Example:
      >>> cfg = OODConfig(dataset="synthetic", optimizers=("adam",), powers=(), steps=20,
      ...                 log_every=10, hidden=8, learning_rates=(("adam", 1e-3),))
      >>> experiment = ood_experiment("adam", cfg, {})
      >>> experiment.name, experiment.steps, experiment.config["learning_rate"]
      ('ood-adam', (9, 19), 0.001)
      >>> cell = experiment.make_cell(("learning_rate",))
      >>> run = lambda key: cell(key, {"learning_rate": 1e-3}, experiment.data)
      >>> jax.eval_shape(run, jax.random.key(0))["val_acc"].shape  # shapes only, no compiling
      (2,)
      >>> ood_experiment("sigma_p", cfg, {})
      Traceback (most recent call last):
      ...
      ValueError: arm must be one of ('adam',), got 'sigma_p'
    """
    if arm not in config.arms:
        raise ValueError(f"arm must be one of {config.arms}, got {arm!r}")

    def make_cell(names):
        del names

        def cell(key, values, data):
            key_data, key_init, key_opt = jax.random.split(key, 3)
            d = draw_data(key_data, data, config)
            n_classes = int(d.templates.shape[0])
            params = init_classifier(key_init, int(d.x_train.shape[1]), config.hidden, n_classes)
            optimizer, wd = arm_optimizer(arm, values, d.x_train, key_opt, config)
            return train_classifier(
                params,
                optimizer,
                d,
                steps=config.steps,
                log_every=config.log_every,
                weight_decay=wd,
            )

        return cell

    settings = dataclasses.asdict(config)
    settings.update(arm=arm, learning_rate=config.lr(arm))
    return Experiment(
        name=f"ood-{arm}",
        config=json.loads(json.dumps(settings)),
        make_cell=make_cell,
        allowed_axes={"p": "numeric", "learning_rate": "numeric"},
        root_seed=config.root_seed,
        steps=tuple(range(config.log_every - 1, config.steps, config.log_every)),
        data={k: jnp.asarray(v) for k, v in data.items()} or {"none": jnp.zeros(())},
    )


def ood_spec(arm: str, config: OODConfig) -> SweepSpec:
    """The grid of one arm: the powers for Σ^p, the one learning rate otherwise.

    Args:
      arm: ``"sigma_p"`` or an optimizer.
      config: the settings (``powers``, learning rates, ``seeds``, ``chunk_size``,
        ``group_size``).

    Returns:
      A :class:`~jaxprecond.sweep.SweepSpec` over ``config.seeds`` seeds, with a group size of
      at most ``config.seeds``.

    Example:
      >>> cfg = OODConfig(powers=(-1.0, 1.0), seeds=2, group_size=4,
      ...                 learning_rates=(("adam", 1e-3),))
      >>> ood_spec("sigma_p", cfg).axes, ood_spec("adam", cfg).axes
      ((('p', (-1.0, 1.0)),), (('learning_rate', (0.001,)),))
      >>> ood_spec("gd", cfg).group_size  # no more than the seeds
      2
    """
    axes = (("p", config.powers),) if arm == SIGMA_P else (("learning_rate", (config.lr(arm),)),)
    return SweepSpec(
        axes=axes,
        seeds=config.seeds,
        chunk_size=config.chunk_size,
        group_size=min(config.group_size, config.seeds),
    )


@dataclasses.dataclass
class OODResults:
    """Per-seed accuracies of every arm.

    Attributes:
      config: the settings.
      steps: ``(R,)`` recorded step indices.
      arms: ``{arm: {metric: array (points, seeds, R)}}`` where ``points`` is the powers for
        ``"sigma_p"`` and 1 for an optimizer.

    Example:
      >>> cfg = OODConfig(optimizers=("gd",), powers=(-1.0, 1.0), seeds=3, steps=50)
      >>> acc = np.array([[0.6, 0.7, 0.8], [0.2, 0.3, 0.4], [0.9, 0.9, 0.9]])[..., None]
      >>> arms = {"gd": acc[:1], "sigma_p": acc[1:]}  # (points, seeds, records)
      >>> results = OODResults(cfg, np.array([49]), {
      ...     arm: {metric: a for metric in METRICS} for arm, a in arms.items()})
      >>> results.arms["sigma_p"]["digit_acc"][:, :, -1].tolist()  # final, per power and seed
      [[0.2, 0.3, 0.4], [0.9, 0.9, 0.9]]
    """

    config: OODConfig
    steps: np.ndarray
    arms: dict

    def summary(self, arm: str, metric: str) -> SeedSummary:
        """Seed statistics of ``metric``'s final value, shape ``(points,)``; diverged seeds are
        excluded and reported with a :class:`~jaxprecond.stats.DivergenceWarning`.

        Args:
          arm: an arm of :attr:`arms`.
          metric: one of :data:`METRICS`.

        Returns:
          A :class:`~jaxprecond.stats.SeedSummary` of shape ``(points,)``.

        Example:
          >>> cfg = OODConfig(optimizers=("gd",), powers=(-1.0, 1.0), seeds=3, steps=50)
          >>> acc = np.array([[0.6, 0.7, 0.8], [0.2, 0.3, 0.4], [0.9, 0.9, 0.9]])[..., None]
          >>> arms = {"gd": acc[:1], "sigma_p": acc[1:]}  # (points, seeds, records)
          >>> results = OODResults(cfg, np.array([49]), {
          ...     arm: {metric: a for metric in METRICS} for arm, a in arms.items()})
          >>> s = results.summary("sigma_p", "digit_acc")  # p = -1, p = 1
          >>> np.round(s.mean, 4).tolist(), s.n_valid.tolist()
          ([0.3, 0.9], [3, 3])
        """
        return summarize_trajectories(self.arms[arm][metric], 1, name=f"{arm} {metric}")

    def rows(self) -> list[tuple[str, str, int]]:
        """``(label, arm, point)`` for every optimizer and every power.

        Returns:
          The rows of :meth:`table`: ``point`` indexes the first axis of ``arms[arm]``.

        Example:
          >>> cfg = OODConfig(optimizers=("gd",), powers=(-1.0, 1.0), seeds=3, steps=50)
          >>> acc = np.array([[0.6, 0.7, 0.8], [0.2, 0.3, 0.4], [0.9, 0.9, 0.9]])[..., None]
          >>> arms = {"gd": acc[:1], "sigma_p": acc[1:]}  # (points, seeds, records)
          >>> results = OODResults(cfg, np.array([49]), {
          ...     arm: {metric: a for metric in METRICS} for arm, a in arms.items()})
          >>> for row in results.rows():
          ...     print(row)
          ('gd', 'gd', 0)
          ('Σ^p, p=-1', 'sigma_p', 0)
          ('Σ^p, p=1', 'sigma_p', 1)
        """
        rows = [(name, name, 0) for name in self.config.optimizers]
        if SIGMA_P in self.arms:
            rows += [(f"Σ^p, p={p:g}", SIGMA_P, i) for i, p in enumerate(self.config.powers)]
        return rows

    def table(self) -> str:
        """Markdown: final accuracies with 95% intervals per optimizer and power.

        Returns:
          The table: one row per :meth:`rows` entry, with validation, invariant-digit and
          invariant-noise accuracy (mean [95% CI]), valid and diverged seeds.

        Example:
          >>> cfg = OODConfig(optimizers=("gd",), powers=(-1.0, 1.0), seeds=3, steps=50)
          >>> acc = np.array([[0.6, 0.7, 0.8], [0.2, 0.3, 0.4], [0.9, 0.9, 0.9]])[..., None]
          >>> arms = {"gd": acc[:1], "sigma_p": acc[1:]}  # (points, seeds, records)
          >>> results = OODResults(cfg, np.array([49]), {
          ...     arm: {metric: a for metric in METRICS} for arm, a in arms.items()})
          >>> lines = results.table().splitlines()
          >>> print(lines[2])
          | gd | 0.700 [0.452, 0.948] | 0.700 [0.452, 0.948] | 0.700 [0.452, 0.948] | 3 | 0 |
          >>> lines[3].split(" | ")[:2]
          ['| Σ^p, p=-1', '0.300 [0.052, 0.548]']
        """
        lines = [
            "| optimizer | validation acc. | invariant-digit acc. | invariant-noise acc. "
            "| seeds | diverged |",
            "|---|---|---|---|---|---|",
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)
            for label, arm, i in self.rows():
                cells = []
                for metric in ("val_acc", "digit_acc", "noise_acc"):
                    s = self.summary(arm, metric)
                    cells.append(f"{s.mean[i]:.3f} [{s.ci_low[i]:.3f}, {s.ci_high[i]:.3f}]")
                s = self.summary(arm, "val_acc")
                lines.append(
                    f"| {label} | " + " | ".join(cells) + f" | {s.n_valid[i]} | {s.n_diverged[i]} |"
                )
        return "\n".join(lines)

    @classmethod
    def from_sweeps(cls, config: OODConfig, sweeps: dict) -> OODResults:
        """Gather the finished sweep of every arm.

        Args:
          config: the settings.
          sweeps: ``{arm: SweepResults}``, each with one grid axis and the data of every metric
            of :data:`METRICS`; the steps are the first sweep's.

        Returns:
          :class:`OODResults` with ``arms[arm][metric]`` the sweep's ``(points, seeds, R)`` array.

        Raises:
          ValueError: an arm holds fewer than ``config.seeds`` seeds (an unfinished run).

        Example:
          >>> from jaxprecond.sweep import SweepResults
          >>> cfg = OODConfig(optimizers=("gd",), powers=(-1.0, 1.0), seeds=2, steps=50)
          >>> def sweep(axis, acc):  # acc: (points, seeds, records)
          ...     return SweepResults((axis,), np.arange(acc.shape[1]), np.array([49]),
          ...                         {metric: acc for metric in METRICS}, {}, total_seeds=2)
          >>> sweeps = {"gd": sweep(("learning_rate", (0.01,)), np.full((1, 2, 1), 0.5)),
          ...           "sigma_p": sweep(("p", (-1.0, 1.0)), np.array([[[0.2], [0.4]],
          ...                                                         [[0.8], [1.0]]]))}
          >>> results = OODResults.from_sweeps(cfg, sweeps)
          >>> results.steps.tolist(), results.arms["sigma_p"]["noise_acc"][:, :, -1].tolist()
          ([49], [[0.2, 0.4], [0.8, 1.0]])
          >>> sweeps["gd"] = sweep(("learning_rate", (0.01,)), np.full((1, 1, 1), 0.5))
          >>> OODResults.from_sweeps(cfg, sweeps)
          Traceback (most recent call last):
          ...
          ValueError: arm 'gd' has 1 of 2 seeds; resume the run
        """
        steps = next(iter(sweeps.values())).steps
        arms = {}
        for arm, sweep in sweeps.items():
            if len(sweep.seeds) != config.seeds:
                raise ValueError(
                    f"arm {arm!r} has {len(sweep.seeds)} of {config.seeds} seeds; resume the run"
                )
            arms[arm] = {m: np.asarray(sweep.data[m]) for m in METRICS}
        return cls(config=config, steps=np.asarray(steps), arms=arms)

    @classmethod
    def load(cls, directory) -> OODResults:
        """Read a run folder written by :func:`run_ood` (every arm finished).

        Args:
          directory: the run folder: ``config.json`` and one sweep folder per arm.

        Returns:
          :class:`OODResults` (see :meth:`from_sweeps`).

        Raises:
          ValueError: an arm's sweep is unfinished.

        Example:
          A run folder written by hand, with a stand-in cell (every accuracy 0.5) per arm:

          >>> import tempfile
          >>> cfg = OODConfig(dataset="synthetic", optimizers=("gd",), powers=(-1.0, 1.0),
          ...                 seeds=2, steps=20, log_every=10)
          >>> toy = Experiment("toy", {}, allowed_axes={"p": "numeric", "learning_rate": "numeric"},
          ...                  make_cell=lambda names: lambda key, v: {
          ...                      metric: jnp.full(2, 0.5) for metric in METRICS}, steps=(9, 19))
          >>> with tempfile.TemporaryDirectory() as d:
          ...     _ = Path(d, "config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
          ...     for arm in cfg.arms:
          ...         _ = run_sweep(ood_spec(arm, cfg), toy, out=Path(d, arm), progress=False)
          ...     results = OODResults.load(d)
          >>> results.config == cfg, results.steps.tolist()
          (True, [9, 19])
          >>> results.arms["sigma_p"]["val_acc"].shape  # (powers, seeds, records)
          (2, 2, 2)
        """
        directory = Path(directory)
        config = OODConfig(**_config_from_json(json.loads((directory / "config.json").read_text())))
        sweeps = {arm: load_sweep(directory / arm) for arm in config.arms}
        return cls.from_sweeps(config, sweeps)


def _config_from_json(raw: dict) -> dict:
    raw = dict(raw)
    raw["learning_rates"] = tuple(tuple(x) for x in raw.get("learning_rates", ()))
    return raw


def run_ood(
    config: OODConfig, *, out=None, progress: bool = True, download: bool = False
) -> OODResults:
    """Run (or resume) every arm of ``config``; with ``out``, write each arm's sweep to
    ``out/<arm>/`` as it finishes, then ``table.md`` and the figures.

    Args:
      config: the settings.
      out: run folder (``None``: in memory).
      progress: progress bars.
      download: fetch a missing image set into the user cache (see :mod:`jaxprecond.idx`).

    Returns:
      :class:`OODResults`.

    Example:
      >>> import warnings
      >>> cfg = OODConfig(dataset="synthetic", optimizers=("gd",), powers=(-1.0, 1.0), seeds=2,
      ...                 steps=20, log_every=10, hidden=8, n_train=40, n_val=40, n_test=40)
      >>> r = run_ood(cfg, progress=False)
      >>> r.arms["sigma_p"]["digit_acc"].shape  # (powers, seeds, records)
      (2, 2, 2)
    """
    data = load_images(config, download=download)
    directory = None
    if out is not None:
        directory = Path(out)
        directory.mkdir(parents=True, exist_ok=True)
        config_path = directory / "config.json"
        settings = json.loads(json.dumps(dataclasses.asdict(config)))
        if config_path.exists() and json.loads(config_path.read_text()) != settings:
            raise ValueError(
                f"{directory} holds an OOD run with another config; use another folder"
            )
        write_text(config_path, json.dumps(settings, indent=2) + "\n")
    sweeps = {}
    for arm in config.arms:
        sweeps[arm] = run_sweep(
            ood_spec(arm, config),
            ood_experiment(arm, config, data),
            out=None if directory is None else directory / arm,
            progress=progress,
        )
    results = OODResults.from_sweeps(config, sweeps)
    if directory is not None:
        write_text(directory / "table.md", results.table() + "\n")
        from jaxprecond.plotting import plot_ood

        plot_ood(results, directory / "figure.png")
    return results


def add_ood_parser(sub) -> None:
    """Register ``jaxprecond ood`` on an ``argparse`` subparsers object.

    Options left out parse as ``None`` (keep the preset's value, see :func:`ood_config`).

    Args:
      sub: what ``argparse.ArgumentParser.add_subparsers`` returns.

    Example:
      >>> import argparse
      >>> parser = argparse.ArgumentParser(prog="jaxprecond")
      >>> add_ood_parser(parser.add_subparsers(dest="command"))
      >>> args = parser.parse_args(["ood", "--optimizers", "gd", "adam", "--p", "-1", "1"])
      >>> args.command, args.preset, args.optimizers, args.powers, args.seeds
      ('ood', 'cpu', ['gd', 'adam'], [-1.0, 1.0], None)
    """
    p = sub.add_parser(
        "ood",
        help="out-of-distribution generalization under a correlation shift (paper Fig. 2)",
        description="Train every optimizer and the Σ^p p-sweep on the correlation-shift task "
        "over seeds; write accuracies, table.md and figure.png to a run folder.",
    )
    p.add_argument("--preset", choices=sorted(OOD_PRESETS), default="cpu", help="base settings")
    p.add_argument("--dataset", choices=DATASETS, help="image set, or the synthetic task")
    p.add_argument("--optimizers", nargs="*", choices=OPTIMIZERS, help="optimizers to compare")
    p.add_argument("--p", type=float, nargs="*", dest="powers", help="powers of the Σ^p arm")
    p.add_argument("--seeds", type=int, help="seeds per optimizer and per p")
    p.add_argument("--steps", type=int, help="full-batch steps")
    p.add_argument("--log-every", type=int, help="record every K steps")
    p.add_argument("--hidden", type=int, help="hidden width")
    p.add_argument("--lr", type=float, dest="learning_rate", help="every optimizer's lr")
    p.add_argument(
        "--lr-for",
        nargs=2,
        action="append",
        metavar=("OPTIMIZER", "LR"),
        help="one optimizer's lr (repeatable; 'sigma_p' for the p-sweep)",
    )
    p.add_argument("--weight-decay", type=float, help="L2 coefficient")
    p.add_argument("--damping", type=float, help="Σ^p damping relative to the mean eigenvalue")
    p.add_argument("--normalize", choices=["max", "trace"], help="normalise Σ^p")
    p.add_argument("--data-dir", help="folder with the IDX files (see jaxprecond.idx)")
    p.add_argument("--download", action="store_true", help="download a missing image set")
    p.add_argument(
        "--test-split-only",
        action="store_true",
        default=None,
        help="draw every pool from the 10 000-image test split",
    )
    p.add_argument("--chunk-size", type=int, help="seeds per compiled call")
    p.add_argument("--group-size", type=int, help="seeds vmapped side by side")
    p.add_argument("--root-seed", type=int, help="root of every seed's key")
    p.add_argument("--out", help="run folder (default: runs/ood-<time>); resumed if it exists")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def ood_config(args) -> OODConfig:
    """The preset named by ``args.preset`` with every given option replacing its value.

    Args:
      args: options parsed by the parser of :func:`add_ood_parser`.

    Returns:
      An :class:`OODConfig`.

    Raises:
      ValueError: a ``--lr-for`` rate is not a number, or the settings are invalid.

    Example:
      >>> import argparse
      >>> parser = argparse.ArgumentParser(prog="jaxprecond")
      >>> add_ood_parser(parser.add_subparsers(dest="command"))
      >>> args = parser.parse_args(["ood", "--preset", "synthetic", "--seeds", "4",
      ...                           "--lr-for", "sigma_p", "0.2"])
      >>> cfg = ood_config(args)
      >>> cfg.dataset, cfg.hidden, cfg.seeds, cfg.lr("sigma_p"), cfg.lr("gd")
      ('synthetic', 64, 4, 0.2, 0.01)
      >>> ood_config(parser.parse_args(["ood", "--lr-for", "adam", "fast"]))
      Traceback (most recent call last):
      ...
      ValueError: --lr-for adam: 'fast' is not a number
    """
    fields = {f.name for f in dataclasses.fields(OODConfig)}
    changes = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if args.lr_for:
        rates = []
        for name, value in args.lr_for:
            try:
                rates.append((name, float(value)))
            except ValueError:
                raise ValueError(f"--lr-for {name}: {value!r} is not a number") from None
        changes["learning_rates"] = tuple(rates)
    return dataclasses.replace(OOD_PRESETS[args.preset], **changes)


def ood_command(args) -> OODResults:
    """``jaxprecond ood``: run, print the table, say where the results are.

    Args:
      args: options parsed by the parser of :func:`add_ood_parser`.

    Returns:
      The :class:`OODResults`, also written to ``args.out`` (default: ``runs/ood-<time>``).

    Raises:
      ValueError: bad options, before anything runs or is written.

    Example:
      >>> import os, tempfile
      >>> import argparse
      >>> parser = argparse.ArgumentParser(prog="jaxprecond")
      >>> add_ood_parser(parser.add_subparsers(dest="command"))
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     out = os.path.join(folder, "run")
      ...     try:
      ...         ood_command(parser.parse_args(["ood", "--seeds", "0", "--out", out]))
      ...     except ValueError as error:
      ...         print(error, "| folder written:", os.path.exists(out))
      seeds must be a positive integer, got 0 | folder written: False
    """
    import time

    config = ood_config(args)
    out = args.out or time.strftime("runs/ood-%Y%m%d-%H%M%S")
    print(
        f"ood ({config.dataset}): {len(config.arms)} arms x {config.seeds} seeds, "
        f"{config.steps} steps -> {out}"
    )
    start = time.perf_counter()
    results = run_ood(config, out=out, progress=not args.no_progress, download=args.download)
    print(results.table())
    print(f"done in {time.perf_counter() - start:.1f} s; results in {out}/ (table.md, figure.png)")
    return results
