"""The noise-robustness experiment (paper Fig. 1a,b): case × p × SNR × seeds in one program.

Each cell trains the student with the first-layer kernel preconditioned by ``Σ^p`` on the
single-index teacher with label noise at a given SNR. Seed ``i`` draws its data and init from
``fold_in(root, i)``, identical in every cell, so cells are paired seed by seed.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxprecond.adahessian import PROBES, adahessian
from jaxprecond.data import (
    CASES,
    Spectrum,
    case_spectrum,
    random_rotation,
    sample_task,
    stack_spectra,
)
from jaxprecond.linalg import Eigh
from jaxprecond.model import init_mlp, init_mlp_gaussian
from jaxprecond.plotting import plot_noise
from jaxprecond.stats import DivergenceWarning, SeedSummary, summarize_trajectories
from jaxprecond.store import ARRAYS, load_run, save_run, write_text
from jaxprecond.sweep import MANIFEST, Experiment, SweepResults, SweepSpec, load_sweep, run_sweep
from jaxprecond.train import Trajectory, train
from jaxprecond.transforms import NORMALIZATIONS, covariance_power, preconditioner

INITS = ("kaiming", "gaussian")
PRECONDITIONERS = ("covariance_power", "adahessian")
PRECISIONS = {
    "highest": jax.lax.Precision.HIGHEST,
    "high": jax.lax.Precision.HIGH,
    "default": jax.lax.Precision.DEFAULT,
}


@dataclasses.dataclass(frozen=True)
class NoiseConfig:
    """Settings of the noise-robustness experiment; the defaults are the reference settings.

    Attributes:
      cases: input-spectrum cases, a subset of ``("high", "low")``.
      powers: preconditioner exponents ``p``.
      snrs: signal-to-noise ratios.
      seeds: number of seeds per cell.
      steps: gradient steps.
      log_every: record metrics every this many steps.
      dx, dh: input dimension and hidden width.
      n, n_train: total points and training points (the rest test).
      scale, k: the large eigenvalue (small one ``1/scale``) and the teacher's number of
        eigen-directions.
      learning_rate, weight_decay, init_scale: as in the reference.
      init: ``"kaiming"`` (kaiming-uniform × init_scale, zero biases: the reference) or
        ``"gaussian"`` (the theory's ``w_j ~ N(0, init_scale² P)``).
      preconditioner: ``"covariance_power"`` (exact ``Σ^p`` on W1, plain GD elsewhere) or
        ``"adahessian"`` (every layer, ``hessian_power = −p``, decoupled weight decay and a plain
        MSE loss, as the paper's Fig. 1c,d).
      probe: AdaHessian's Hutchinson probe: ``"rademacher"`` or ``"minus_ones"`` (what the
        authors' pytorch-optimizer 3.x computed; see :mod:`jaxprecond.adahessian`).
      normalize: normalisation of ``P`` (``None``, ``"max"``, ``"trace"``).
      batch_size: minibatch size, ``None`` for full batch.
      rotate: rotate the spectrum's eigenvectors by a random orthogonal matrix (one per run).
      root_seed: the root of every seed's key.
      chunk_size: seeds per compiled call (``None``: all seeds at once).
      eval_block_size: test points evaluated at once.
      float64: compute in float64 instead of float32.
      precision: matmul precision name: ``"highest"``, ``"high"`` or ``"default"``.

    Example:
      >>> cfg = NoiseConfig(cases=("high",), powers=(0.0, 1.0), steps=200, log_every=100)
      >>> cfg.grid_shape, cfg.records  # (case, p, snr) cells and records per run
      ((1, 2, 5), 2)
      >>> NoiseConfig(steps=150, log_every=100)
      Traceback (most recent call last):
      ...
      ValueError: steps=150 must be a multiple of log_every=100
    """

    cases: tuple[str, ...] = CASES
    powers: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
    snrs: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    seeds: int = 16
    steps: int = 10_000
    log_every: int = 100
    dx: int = 10
    dh: int = 500
    n: int = 10_000
    n_train: int = 200
    scale: float = 10.0
    k: int = 1
    learning_rate: float = 1e-2
    weight_decay: float = 1e-6
    init_scale: float = 1e-3
    init: str = "kaiming"
    preconditioner: str = "covariance_power"
    probe: str = "rademacher"
    normalize: str | None = None
    batch_size: int | None = None
    rotate: bool = False
    root_seed: int = 0
    chunk_size: int | None = None
    eval_block_size: int = 980
    float64: bool = False
    precision: str = "highest"

    def __post_init__(self):
        for name in ("cases", "powers", "snrs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting.

        Construction (and so ``dataclasses.replace``) calls it.

        Raises:
          ValueError: a setting out of range; the message names it and its value.

        Example:
          >>> cfg = NoiseConfig(dx=4)
          >>> cfg.validate()  # a valid config: returns None
          >>> dataclasses.replace(cfg, k=4)
          Traceback (most recent call last):
          ...
          ValueError: need k < dx, got k=4, dx=4
        """

        def positive_int(name):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

        for name in (
            "seeds",
            "steps",
            "log_every",
            "dx",
            "dh",
            "n",
            "n_train",
            "k",
            "eval_block_size",
        ):
            positive_int(name)
        for name in ("chunk_size", "batch_size"):
            if getattr(self, name) is not None:
                positive_int(name)
        if self.steps % self.log_every:
            raise ValueError(f"steps={self.steps} must be a multiple of log_every={self.log_every}")
        if not self.cases or any(c not in CASES for c in self.cases):
            raise ValueError(f"cases must be a non-empty subset of {CASES}, got {self.cases!r}")
        if len(set(self.cases)) != len(self.cases):
            raise ValueError(f"cases repeat: {self.cases!r}")
        if not self.powers or not all(math.isfinite(p) for p in self.powers):
            raise ValueError(
                f"powers must be a non-empty list of finite numbers, got {self.powers!r}"
            )
        if not self.snrs or not all(s > 0 for s in self.snrs):
            raise ValueError(
                f"snrs must be a non-empty list of positive numbers, got {self.snrs!r}"
            )
        if not 1 < self.n_train < self.n:
            raise ValueError(f"need 1 < n_train < n, got n_train={self.n_train}, n={self.n}")
        if not self.k < self.dx:
            raise ValueError(f"need k < dx, got k={self.k}, dx={self.dx}")
        for name in ("scale", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("weight_decay", "init_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)!r}")
        if self.preconditioner not in PRECONDITIONERS:
            raise ValueError(
                f"preconditioner must be one of {PRECONDITIONERS}, got {self.preconditioner!r}"
            )
        if self.probe not in PROBES:
            raise ValueError(f"probe must be one of {PROBES}, got {self.probe!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {tuple(PRECISIONS)}, got {self.precision!r}"
            )

    @property
    def dtype(self):
        """The floating dtype of the runs' arrays.

        Returns:
          ``jnp.float64`` if ``float64`` is set, else ``jnp.float32``.

        Example:
          >>> jnp.dtype(NoiseConfig().dtype), jnp.dtype(NoiseConfig(float64=True).dtype)
          (dtype('float32'), dtype('float64'))
        """
        return jnp.float64 if self.float64 else jnp.float32

    @property
    def records(self) -> int:
        """Records per run: one every ``log_every`` steps.

        Returns:
          ``steps // log_every``, the length of each trajectory's record axis.

        Example:
          >>> NoiseConfig(steps=2_000, log_every=100).records
          20
        """
        return self.steps // self.log_every

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """The shape of the grid of cells, ``(case, p, snr)``.

        Returns:
          ``(len(cases), len(powers), len(snrs))``.

        Example:
          >>> NoiseConfig(cases=("low",), powers=(0.0, 0.5, 1.0), snrs=(1.0, 4.0)).grid_shape
          (1, 3, 2)
        """
        return len(self.cases), len(self.powers), len(self.snrs)


#: The main job's CPU-sized default (a few minutes on 2 cores) and the paper's settings.
PRESETS = {
    "cpu": NoiseConfig(snrs=(0.25, 1.0, 4.0), seeds=4, steps=2_000, log_every=100),
    "paper": NoiseConfig(),
}


def spectra(config: NoiseConfig) -> Spectrum:
    """The stacked input spectra of ``config.cases`` (leading axis: case).

    Args:
      config: the experiment's settings (``cases``, ``dx``, ``k``, ``scale``, ``rotate``,
        ``root_seed``, ``float64``).

    Returns:
      A :class:`~jaxprecond.data.Spectrum` whose leaves have a leading axis of
      ``len(config.cases)``. With ``config.rotate``, every case shares one random rotation
      drawn from ``config.root_seed``.

    Example:
      >>> s = spectra(NoiseConfig(dx=3))
      >>> s.eigenvalues  # Case High, then Case Low
      Array([[10. ,  0.1,  0.1],
             [10. , 10. ,  0.1]], dtype=float32)
      >>> np.asarray(s.teacher_basis)[:, :, 0].tolist()  # the teacher: large λ, then small λ
      [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    rotation = None
    if config.rotate:
        key = jax.random.fold_in(jax.random.key(config.root_seed), 2**31 - 1)
        rotation = random_rotation(key, config.dx, config.dtype)
    return stack_spectra(
        [
            case_spectrum(
                c,
                dx=config.dx,
                k=config.k,
                scale=config.scale,
                rotation=rotation,
                dtype=config.dtype,
            )
            for c in config.cases
        ]
    )


def train_student(
    key,
    spectrum: Spectrum,
    power,
    snr,
    *,
    config: NoiseConfig,
    learning_rate=None,
    weight_decay=None,
):
    """Train one student (one seed, one case, one ``p``, one SNR); keep its final weights.

    Args:
      key: the seed's key, ``fold_in(key(config.root_seed), seed_index)``.
      spectrum: the case's input spectrum.
      power: the exponent ``p`` (may be traced).
      snr: the signal-to-noise ratio (may be traced).
      config: the experiment's settings.
      learning_rate, weight_decay: values replacing the config's (may be traced, for sweeps).

    Returns:
      ``(final_params, trajectory)``: the trained parameter dict and the run's
      :class:`~jaxprecond.train.Trajectory`.

    Example:
      >>> cfg = NoiseConfig(seeds=1, steps=20, log_every=10, dh=8, n=300, n_train=50)
      >>> run = lambda key: train_student(key, case_spectrum("high"), 1.0, 1.0, config=cfg)
      >>> params, traj = jax.eval_shape(run, jax.random.key(0))  # shapes only, no compiling
      >>> params["W1"].shape, traj.test_mse.shape
      ((8, 10), (2,))
    """
    key_data, key_init, key_batch = jax.random.split(key, 3)
    task = sample_task(key_data, spectrum, snr, n=config.n, n_train=config.n_train)
    eigh = Eigh(spectrum.eigenvalues, spectrum.eigenvectors)
    if config.init == "gaussian":
        p_matrix = preconditioner(eigh, power, normalize=config.normalize)
        if p_matrix is None:  # a Python p = 0
            p_matrix = jnp.eye(config.dx, dtype=config.dtype)
        params = init_mlp_gaussian(key_init, p_matrix, config.dh, sigma=config.init_scale)
    else:
        params = init_mlp(
            key_init, config.dx, config.dh, scale=config.init_scale, dtype=config.dtype
        )
    if learning_rate is None:
        learning_rate = config.learning_rate
    if weight_decay is None:
        weight_decay = config.weight_decay
    if config.preconditioner == "adahessian":
        optimizer = adahessian(
            learning_rate,
            hessian_power=-power,
            weight_decay=weight_decay,
            probe=config.probe,
            seed=jax.random.fold_in(key_batch, 1),
        )
        weight_decay = 0.0  # decoupled: the loss is plain MSE, as in the paper's AdaHessian arm
    else:
        optimizer = covariance_power(
            learning_rate, eigh, power, layout="out_in", normalize=config.normalize
        )
    return train(
        params,
        optimizer,
        task,
        steps=config.steps,
        log_every=config.log_every,
        weight_decay=weight_decay,
        eigenvectors=spectrum.eigenvectors,
        batch_size=config.batch_size,
        key=key_batch,
        eval_block_size=config.eval_block_size,
        precision=PRECISIONS[config.precision],
    )


def simulate_cell(
    key,
    spectrum: Spectrum,
    power,
    snr,
    *,
    config: NoiseConfig,
    learning_rate=None,
    weight_decay=None,
) -> Trajectory:
    """Train one student: one seed, one case, one ``p``, one SNR.

    Args:
      key: the seed's key, ``fold_in(key(config.root_seed), seed_index)``.
      spectrum: the case's input spectrum.
      power: the exponent ``p`` (may be traced).
      snr: the signal-to-noise ratio (may be traced).
      config: the experiment's settings.
      learning_rate, weight_decay: values replacing the config's (may be traced, for sweeps).

    Returns:
      The run's :class:`~jaxprecond.train.Trajectory` (:func:`train_student` without the
      final weights).

    Example:
      >>> cfg = NoiseConfig(seeds=1, steps=20, log_every=10, dx=4, dh=8, n=64, n_train=32)
      >>> run = lambda key: simulate_cell(key, case_spectrum("low", dx=4), 0.5, 2.0, config=cfg)
      >>> traj = jax.eval_shape(run, jax.random.key(0))  # shapes only, no compiling
      >>> {name: leaf.shape for name, leaf in traj._asdict().items()}
      {'train_loss': (2,), 'test_mse': (2,), 'alignment': (2,), 'energy': (2, 4)}
    """
    return train_student(
        key,
        spectrum,
        power,
        snr,
        config=config,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
    )[1]


NOISE_AXES = {
    "case": CASES,
    "p": "numeric",
    "snr": "numeric",
    "learning_rate": "numeric",
    "weight_decay": "numeric",
}


def noise_experiment(config: NoiseConfig) -> Experiment:
    """The noise experiment as a sweep :class:`~jaxprecond.sweep.Experiment`.

    Sweepable axes: ``case`` (``"high"``/``"low"``), ``p``, ``snr``, ``learning_rate`` and
    ``weight_decay``. An axis left out of the grid takes the config's value (for ``case``, ``p``
    and ``snr``: the first of ``config.cases``, ``config.powers``, ``config.snrs``).

    Args:
      config: the experiment's settings.

    Returns:
      An :class:`~jaxprecond.sweep.Experiment` named ``"noise"``, recording at the steps
      ``log_every − 1, 2·log_every − 1, …``; its cell is :func:`simulate_cell`.

    Example:
      >>> cfg = NoiseConfig(seeds=1, steps=20, log_every=10, dx=4, dh=8, n=64, n_train=32)
      >>> experiment = noise_experiment(cfg)
      >>> experiment.name, experiment.steps
      ('noise', (9, 19))
      >>> cell = experiment.make_cell(("p", "snr"))
      >>> run = lambda key: cell(key, {"p": 1.0, "snr": 4.0})
      >>> traj = jax.eval_shape(run, jax.random.key(0))  # shapes only, no compiling
      >>> traj.test_mse.shape, traj.energy.shape
      ((2,), (2, 4))
    """

    def make_cell(names):
        del names

        def cell(key, values):
            every_case = spectra(dataclasses.replace(config, cases=CASES))
            case = values.get("case", CASES.index(config.cases[0]))
            spectrum = jax.tree.map(lambda leaf: leaf[case], every_case)
            return simulate_cell(
                key,
                spectrum,
                values.get("p", config.powers[0]),
                values.get("snr", config.snrs[0]),
                config=config,
                learning_rate=values.get("learning_rate"),
                weight_decay=values.get("weight_decay"),
            )

        return cell

    steps = tuple(range(config.log_every - 1, config.steps, config.log_every))
    return Experiment(
        name="noise",
        config=dataclasses.asdict(config),
        make_cell=make_cell,
        allowed_axes=NOISE_AXES,
        root_seed=config.root_seed,
        steps=steps,
        float64=config.float64,
    )


def noise_sweep_spec(config: NoiseConfig, *, group_size: int | None = None) -> SweepSpec:
    """The Fig. 1 grid of ``config``: axes case × p × snr, ``config.seeds`` seeds.

    Args:
      config: the experiment's settings (``cases``, ``powers``, ``snrs``, ``seeds``,
        ``chunk_size``).
      group_size: runs trained side by side inside the program (``None``: 4 on a CPU, 4 096
        on an accelerator; see :func:`~jaxprecond.sweep.default_group_size`).

    Returns:
      A :class:`~jaxprecond.sweep.SweepSpec`.

    Example:
      >>> spec = noise_sweep_spec(NoiseConfig(powers=(0.0, 1.0), snrs=(1.0,), seeds=3))
      >>> spec.names, spec.shape, spec.seeds
      (('case', 'p', 'snr'), (2, 2, 1), 3)
    """
    return SweepSpec(
        axes=(("case", config.cases), ("p", config.powers), ("snr", config.snrs)),
        seeds=config.seeds,
        chunk_size=config.chunk_size,
        group_size=group_size,
    )


METRICS = ("train_loss", "test_mse", "alignment", "energy")


@dataclasses.dataclass
class NoiseResults:
    """Results of :func:`run_noise`: trajectories of every seed in every cell.

    Attributes:
      config: the experiment's settings.
      steps: ``(R,)`` the step index ``t`` of each record (loss before, test MSE after step t).
      train_loss, test_mse, alignment: ``(case, p, snr, seed, R)`` trajectories.
      energy: ``(case, p, snr, seed, R, dx)`` first-layer energy along Σ's eigenvectors.

    Example:
      >>> cfg = NoiseConfig(cases=("high",), powers=(0.0, 1.0), snrs=(1.0,), seeds=3, steps=20,
      ...                   log_every=10, dx=2)
      >>> mse = np.arange(12.0).reshape(1, 2, 1, 3, 2)  # (case, p, snr, seed, record)
      >>> energy = np.full(mse.shape + (2,), 0.5)
      >>> r = NoiseResults(cfg, np.array([9, 19]), mse, mse, mse, energy)
      >>> r.test_mse[0, 1, 0, :, -1]  # p = 1: the last record of each seed
      array([ 7.,  9., 11.])
    """

    config: NoiseConfig
    steps: np.ndarray
    train_loss: np.ndarray
    test_mse: np.ndarray
    alignment: np.ndarray
    energy: np.ndarray

    def final(self, metric: str) -> np.ndarray:
        """The last record of ``metric``: ``(case, p, snr, seed)`` (``energy``: ``(..., dx)``).

        Args:
          metric: ``"train_loss"``, ``"test_mse"``, ``"alignment"`` or ``"energy"``.

        Returns:
          The metric at the last record, without the record axis.

        Example:
          >>> cfg = NoiseConfig(cases=("high",), powers=(0.0, 1.0), snrs=(1.0,), seeds=3, steps=20,
          ...                   log_every=10, dx=2)
          >>> mse = np.arange(12.0).reshape(1, 2, 1, 3, 2)  # (case, p, snr, seed, record)
          >>> energy = np.full(mse.shape + (2,), 0.5)
          >>> r = NoiseResults(cfg, np.array([9, 19]), mse, mse, mse, energy)
          >>> r.final("test_mse")[0, :, 0].tolist()  # (p, seed)
          [[1.0, 3.0, 5.0], [7.0, 9.0, 11.0]]
          >>> r.final("energy").shape
          (1, 2, 1, 3, 2)
        """
        values = getattr(self, metric)
        return values[..., -1, :] if metric == "energy" else values[..., -1]

    def summary(self, metric: str = "test_mse", *, final: bool = True) -> SeedSummary:
        """Seed statistics of ``metric`` (final value, or the whole trajectory).

        A seed whose trajectory of ``metric`` holds a NaN or inf anywhere counts as diverged: it
        is excluded and reported with a :class:`~jaxprecond.stats.DivergenceWarning`.

        Args:
          metric: ``"train_loss"``, ``"test_mse"`` or ``"alignment"``.
          final: summarise the last record only (else every record).

        Returns:
          A :class:`~jaxprecond.stats.SeedSummary` of shape ``(case, p, snr)``, with a trailing
          record axis unless ``final``.

        Raises:
          ValueError: another ``metric``.

        Example:
          >>> cfg = NoiseConfig(cases=("high",), powers=(0.0, 1.0), snrs=(1.0,), seeds=3, steps=20,
          ...                   log_every=10, dx=2)
          >>> mse = np.arange(12.0).reshape(1, 2, 1, 3, 2)  # (case, p, snr, seed, record)
          >>> energy = np.full(mse.shape + (2,), 0.5)
          >>> r = NoiseResults(cfg, np.array([9, 19]), mse, mse, mse, energy)
          >>> r.summary("test_mse").mean.tolist()  # means of (1, 3, 5) and (7, 9, 11)
          [[[3.0], [9.0]]]
          >>> r.summary("test_mse", final=False).mean[0, :, 0].tolist()
          [[2.0, 3.0], [8.0, 9.0]]
          >>> r.summary("energy")
          Traceback (most recent call last):
          ...
          ValueError: metric must be one of ('train_loss', 'test_mse', 'alignment'), got 'energy'
        """
        if metric not in METRICS[:3]:
            raise ValueError(f"metric must be one of {METRICS[:3]}, got {metric!r}")
        return summarize_trajectories(getattr(self, metric), 3, final=final, name=metric)

    def table(self) -> str:
        """A Markdown table of final train loss and test MSE (mean and 95% CI) per cell.

        Diverged seeds are left out of the statistics and counted in the last column.

        Returns:
          The table, one row per (case, p, SNR) cell.

        Example:
          >>> cfg = NoiseConfig(cases=("high",), powers=(0.0, 1.0), snrs=(1.0,), seeds=3, steps=20,
          ...                   log_every=10, dx=2)
          >>> mse = np.arange(12.0).reshape(1, 2, 1, 3, 2)  # (case, p, snr, seed, record)
          >>> energy = np.full(mse.shape + (2,), 0.5)
          >>> mse[0, 1, 0, 2, 0] = np.nan  # p = 1: the last seed diverged
          >>> r = NoiseResults(cfg, np.array([9, 19]), mse, mse, mse, energy)
          >>> print(r.table())
          | case | p | SNR | test MSE (95% CI) | train loss (95% CI) | seeds | diverged |
          |---|---|---|---|---|---|---|
          | high | 0 | 1 | 3.0000 [-1.9683, 7.9683] | 3.0000 [-1.9683, 7.9683] | 3 | 0 |
          | high | 1 | 1 | 8.0000 [-4.7062, 20.7062] | 8.0000 [-4.7062, 20.7062] | 2 | 1 |
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)
            test, train = self.summary("test_mse"), self.summary("train_loss")
        lines = [
            "| case | p | SNR | test MSE (95% CI) | train loss (95% CI) | seeds | diverged |",
            "|---|---|---|---|---|---|---|",
        ]
        for i, case in enumerate(self.config.cases):
            for j, p in enumerate(self.config.powers):
                for k, snr in enumerate(self.config.snrs):
                    c = (i, j, k)
                    lines.append(
                        f"| {case} | {p:g} | {snr:g} "
                        f"| {test.mean[c]:.4f} [{test.ci_low[c]:.4f}, {test.ci_high[c]:.4f}] "
                        f"| {train.mean[c]:.4f} [{train.ci_low[c]:.4f}, {train.ci_high[c]:.4f}] "
                        f"| {test.n_valid[c]} | {test.n_diverged[c]} |"
                    )
        return "\n".join(lines)

    def save(self, directory, *, overwrite: bool = False) -> Path:
        """Write the run folder (arrays, config, environment, ``summary.md``, ``figure.png``).

        Args:
          directory: the run folder (created if needed).
          overwrite: replace existing results instead of refusing.

        Returns:
          The folder's path; :meth:`load` reads it back.

        Example:
          >>> import tempfile
          >>> cfg = NoiseConfig(cases=("high",), powers=(0.0, 1.0), snrs=(1.0,), seeds=3, steps=20,
          ...                   log_every=10, dx=2)
          >>> mse = np.arange(12.0).reshape(1, 2, 1, 3, 2)  # (case, p, snr, seed, record)
          >>> energy = np.full(mse.shape + (2,), 0.5)
          >>> r = NoiseResults(cfg, np.array([9, 19]), mse, mse, mse, energy)
          >>> with tempfile.TemporaryDirectory() as folder:
          ...     run = r.save(Path(folder) / "run")
          ...     print(sorted(path.name for path in run.iterdir()))
          ...     print(np.array_equal(NoiseResults.load(run).test_mse, r.test_mse))
          ['arrays.npz', 'config.json', 'environment.json', 'figure.png', 'summary.md']
          True
        """
        arrays = {name: getattr(self, name) for name in ("steps",) + METRICS}
        directory = save_run(
            directory, arrays, dataclasses.asdict(self.config), overwrite=overwrite
        )
        write_text(directory / "summary.md", self.table() + "\n")
        plot_noise(self, directory / "figure.png")
        return directory

    @classmethod
    def load(cls, directory) -> NoiseResults:
        """Read a run folder written by :meth:`save` or, if unfinished, by :func:`run_noise`.

        Args:
          directory: a folder with ``arrays.npz`` (finished, see :meth:`save`), or a sweep run
            folder of :func:`run_noise` (its finished chunks are read).

        Returns:
          :class:`NoiseResults`; for an unfinished run, of the seeds present (``config.seeds``
          counts them).

        Example:
          An interrupted run, its last chunk missing (a stand-in cell replaces the training):

          >>> import tempfile
          >>> cfg = NoiseConfig(cases=("high",), powers=(0.0, 1.0), snrs=(1.0,), seeds=3,
          ...                   chunk_size=2, steps=20, log_every=10, dx=2)
          >>> def cell(key, values):  # every record is p + 1
          ...     r = jnp.full(2, values["p"] + 1.0)
          ...     return Trajectory(r, r, r, jnp.ones((2, 2)))
          >>> toy = dataclasses.replace(noise_experiment(cfg), make_cell=lambda names: cell)
          >>> with tempfile.TemporaryDirectory() as d:
          ...     _ = run_sweep(noise_sweep_spec(cfg), toy, out=d, progress=False)
          ...     sorted(Path(d, "chunks").iterdir())[-1].unlink()  # seed 2's chunk
          ...     r = NoiseResults.load(d)
          >>> r.config.seeds, r.test_mse[0, :, 0, :, -1].tolist()  # final records, (p, seed)
          (2, [[1.0, 1.0], [2.0, 2.0]])
        """
        if not (Path(directory) / ARRAYS).exists() and (Path(directory) / MANIFEST).exists():
            sweep = load_sweep(directory)
            return cls.from_sweep(sweep, NoiseConfig(**sweep.config))
        arrays, config = load_run(directory)
        return cls(config=NoiseConfig(**config), **arrays)

    @classmethod
    def from_sweep(cls, sweep: SweepResults, config: NoiseConfig) -> NoiseResults:
        """View a case × p × snr sweep as noise results (seeds present: ``sweep.seeds``).

        Args:
          sweep: a sweep with axes ``(case, p, snr)`` and the data of every metric of
            :data:`METRICS`.
          config: the experiment's fixed settings; ``cases``, ``powers`` and ``snrs`` are
            replaced by the sweep's axis values and ``seeds`` by the seeds present.

        Returns:
          :class:`NoiseResults` holding the sweep's arrays and steps.

        Raises:
          ValueError: the sweep's axes are not ``(case, p, snr)``.

        Example:
          Two of four seeds finished:

          >>> cfg = NoiseConfig(seeds=4, steps=20, log_every=10, dx=2)  # 5 p and 5 SNRs
          >>> mse = np.arange(8.0).reshape(1, 2, 1, 2, 2)  # (case, p, snr, seed, record)
          >>> data = dict(train_loss=mse, test_mse=mse, alignment=mse,
          ...             energy=np.full(mse.shape + (2,), 0.5))
          >>> axes = (("case", ("high",)), ("p", (0.0, 1.0)), ("snr", (1.0,)))
          >>> sweep = SweepResults(axes, seeds=np.array([0, 1]), steps=np.array([9, 19]),
          ...                      data=data, config={}, total_seeds=4)
          >>> r = NoiseResults.from_sweep(sweep, cfg)
          >>> r.config.seeds, r.config.powers, r.config.snrs  # the sweep's, not cfg's
          (2, (0.0, 1.0), (1.0,))
          >>> r.test_mse[0, 1, 0, :, -1].tolist()  # p = 1: final records
          [5.0, 7.0]
          >>> NoiseResults.from_sweep(dataclasses.replace(sweep, axes=axes[1:]), cfg)
          Traceback (most recent call last):
          ...
          ValueError: need axes (case, p, snr), got ['p', 'snr']
        """
        if tuple(n for n, _ in sweep.axes) != ("case", "p", "snr"):
            raise ValueError(f"need axes (case, p, snr), got {[n for n, _ in sweep.axes]}")
        axes = dict(sweep.axes)
        config = dataclasses.replace(
            config,
            cases=tuple(axes["case"]),
            powers=tuple(float(p) for p in axes["p"]),
            snrs=tuple(float(s) for s in axes["snr"]),
            seeds=len(sweep.seeds),
        )
        fields = {name: sweep.data[name] for name in METRICS}
        return cls(config=config, steps=np.asarray(sweep.steps), **fields)


def run_noise(
    config: NoiseConfig, *, out=None, progress: bool = True, group_size: int | None = None
) -> NoiseResults:
    """Run the noise-robustness grid (case × p × SNR) over all seeds, through the sweep engine.

    Seeds run ``config.chunk_size`` at a time (the last chunk padded, so seed ``i``'s result is
    the same bit for bit whatever the number of seeds). With ``out``, chunks are written there
    as they finish and a run started again resumes; the folder then also gets ``arrays.npz``,
    ``summary.md`` and ``figure.png``.

    Args:
      config: the experiment's settings.
      out: run folder, or ``None`` to keep the results in memory.
      progress: show a progress bar over chunks.
      group_size: runs trained side by side inside the program (``None``: 4 on a CPU, 4 096
        on an accelerator; see :func:`~jaxprecond.sweep.default_group_size`).

    Returns:
      :class:`NoiseResults`.

    Example:
      >>> cfg = NoiseConfig(cases=("high",), powers=(0.0,), snrs=(1.0,), seeds=2, steps=20,
      ...                   log_every=10, dh=8, n=300, n_train=50)
      >>> run_noise(cfg, progress=False).test_mse.shape
      (1, 1, 1, 2, 2)
    """
    sweep = run_sweep(
        noise_sweep_spec(config, group_size=group_size),
        noise_experiment(config),
        out=out,
        progress=progress,
    )
    if sweep is None:  # a non-zero process of a multi-process run
        return None
    results = NoiseResults.from_sweep(sweep, config)
    if out is not None and len(sweep.seeds) == config.seeds:
        results.save(out, overwrite=True)
    return results
