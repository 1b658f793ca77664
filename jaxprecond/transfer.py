"""Forward knowledge transfer (paper Sec. 4.3): train with ``Σ^p``, freeze layer 1, refit the head.

Stage 1 trains the student on a case's spectrum and teacher exactly as the noise experiment
(:func:`jaxprecond.noise.train_student`, same keys: stage 1 of seed ``i`` *is* the noise run of
seed ``i``). Stage 2 draws a new data set with the same spectrum and SNR and a fresh teacher on
the top-k (``"high"``) or bottom-k (``"low"``) eigenvectors of that spectrum, freezes the first
layer and refits the head in closed form by ridge regression on the centred ReLU features
(:func:`jaxprecond.ridge.ridge_head`). A pair ``(train, transfer)`` names the stage-1 case and
the stage-2 direction: High→Low is the Case High spectrum with the new teacher on a small
eigenvalue.

As in the authors' ``transfer_learning_cov.py``:

- the stage-2 teacher is ``β₂ = Q[:, axes] c`` with fresh coefficients ``c ~ N(0, I_k)`` on the
  eigenvectors ``axes = argsort(λ)[-k:]`` (high) or ``argsort(λ)[:k]`` (low), not a new random
  direction: for High→High / Low→Low the new teacher lies in the stage-1 teacher's eigenspace
  (for ``k = 1`` on its axis, with a new coefficient: sign and size), for High→Low with
  ``k = 1`` on axis 1 (the first small eigenvalue; the fixture's), for Low→High on axis
  ``dx − 2`` (the last large one); see :func:`transfer_axes` for ties when ``k ≥ 2``;
- stage-2 targets are standardised with the stage-2 training mean and standard deviation;
- the ridge penalty is ``λ·N·‖w‖²`` with ``λ = 1e-3``, the intercept ``ȳ − h̄·w``.

Differences: stage 2's data come from ``fold_in(seed_key, 1)`` (the authors continue one NumPy
stream), so for a seed every pair shares the stage-2 inputs, noise and teacher coefficients
(only the teacher's axis differs), and the two pairs of one stage-1 case share stage 1. Stage 1
is therefore trained once per case and both directions are refitted from it: the sweep's axes
are ``case`` × ``p`` (× any of ``snr``, ``learning_rate``, ``weight_decay``), half the work of a
``pair`` axis.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxprecond.data import CASES, Spectrum, sample_task, stack_spectra
from jaxprecond.model import hidden
from jaxprecond.noise import PRECISIONS, NoiseConfig, spectra, train_student
from jaxprecond.options import add_student_options, preset_with
from jaxprecond.plotting import plot_transfer
from jaxprecond.ridge import ridge_head
from jaxprecond.stats import DivergenceWarning, SeedSummary, summarize_seeds
from jaxprecond.store import ARRAYS, load_run, save_run, write_text
from jaxprecond.sweep import MANIFEST, Experiment, SweepResults, SweepSpec, load_sweep, run_sweep
from jaxprecond.train import blocked_mse, first_layer_features

DIRECTIONS = ("high", "low")
PAIRS = (("high", "low"), ("low", "high"), ("high", "high"), ("low", "low"))
#: Fold of a seed's key that draws its stage-2 data (stage 1 splits the key itself).
STAGE2_FOLD = 1
#: Per-seed metrics of a transfer run, arrays ``(pair, p, seed)`` in :class:`TransferResults`.
METRICS = (
    "transfer_test_mse",
    "transfer_train_mse",
    "stage1_test_mse",
    "stage1_train_loss",
    "stage1_alignment",
    "transfer_alignment",
)


def _pair_label(pair) -> str:
    """``("high", "low")`` → ``"high_to_low"`` (the fixtures' naming)."""
    return f"{pair[0]}_to_{pair[1]}"


def parse_pair(pair) -> tuple[str, str]:
    """A pair from ``("high", "low")`` or ``"high_to_low"``; ``ValueError`` if it is neither.

    Example:
      >>> parse_pair("low_to_high")
      ('low', 'high')
    """
    parts = pair.split("_to_") if isinstance(pair, str) else list(pair)
    if len(parts) != 2 or any(p not in DIRECTIONS for p in parts):
        raise ValueError(
            f"a pair is (train, transfer) with both in {DIRECTIONS}, or 'high_to_low' etc., "
            f"got {pair!r}"
        )
    return tuple(parts)


def transfer_axes(case: str, direction: str, *, dx: int, k: int) -> np.ndarray:
    """The eigen-axes of Case ``case``'s spectrum that the stage-2 teacher lies on.

    The authors' rule, ``argsort(λ)[-k:]`` for ``"high"`` and ``argsort(λ)[:k]`` for ``"low"``,
    with a stable sort. NumPy's default sort orders ties in an implementation-defined way (NumPy
    2.4 on x86 agrees with the stable order for ``k = 1`` but picks other tied axes for
    ``k ≥ 2``); tied axes are exchangeable (``Σ`` is isotropic on them, the init and the stage-1
    teacher do not single one out), so the choice changes no distribution.

    Args:
      case: the spectrum's case, ``"high"`` or ``"low"``.
      direction: ``"high"`` (top-k eigenvectors) or ``"low"`` (bottom-k).
      dx, k: input dimension and number of teacher eigen-directions.

    Returns:
      ``(k,)`` axis indices.

    Example:
      >>> transfer_axes("high", "low", dx=10, k=1), transfer_axes("low", "high", dx=10, k=1)
      (array([1]), array([8]))
    """
    if case not in CASES or direction not in DIRECTIONS:
        raise ValueError(f"case and direction must be in {CASES}, got {case!r}, {direction!r}")
    n_large = k if case == "high" else dx - k
    eigenvalues = np.r_[np.full(n_large, 2.0), np.full(dx - n_large, 1.0)]  # only the order
    order = np.argsort(eigenvalues, kind="stable")
    return order[-k:] if direction == "high" else order[:k]


def transfer_spectrum(spectrum: Spectrum, axes) -> Spectrum:
    """``spectrum`` with its teacher moved to the eigenvectors ``axes`` (same ``Σ``).

    Args:
      spectrum: a :class:`~jaxprecond.data.Spectrum` (unstacked).
      axes: ``(k,)`` indices of the eigenvectors the new teacher lies on
        (:func:`transfer_axes`).

    Returns:
      The spectrum with ``teacher_basis = eigenvectors[:, axes]``; eigenvalues and
      eigenvectors unchanged.

    Example:
      High→Low moves Case High's teacher from the large eigenvalue to the first small one:

      >>> from jaxprecond.data import case_spectrum
      >>> high = case_spectrum("high", dx=3)
      >>> moved = transfer_spectrum(high, transfer_axes("high", "low", dx=3, k=1))
      >>> high.teacher_basis[:, 0].tolist(), moved.teacher_basis[:, 0].tolist()
      ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
      >>> moved.eigenvalues.tolist() == high.eigenvalues.tolist()
      True
    """
    return spectrum._replace(teacher_basis=spectrum.eigenvectors[:, np.asarray(axes)])


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """Settings of the transfer experiment; the defaults are the reference settings.

    Every setting of :class:`~jaxprecond.noise.NoiseConfig` except ``cases`` and ``snrs`` has
    the same meaning here (stage 1 is that experiment's run); see there.

    Attributes:
      pairs: ``(train, transfer)`` pairs, each direction ``"high"`` or ``"low"`` (or labels
        ``"high_to_low"``, …); default all four.
      snr: the signal-to-noise ratio of both stages.
      ridge: ``λ`` of the stage-2 head, penalty ``λ·N·‖w‖²``.
      ridge_form: ``"auto"`` (dual when ``dh > n_train``, the authors'), ``"primal"`` or
        ``"dual"``.
      others: as :class:`~jaxprecond.noise.NoiseConfig` (``powers``, ``seeds``, ``steps``, …;
        ``preconditioner`` ``"covariance_power"`` or ``"adahessian"``).

    Example:
      >>> cfg = TransferConfig(pairs="high_to_low", powers=[0, 1], dx=4)
      >>> cfg.pairs, cfg.labels, cfg.cases, cfg.powers
      ((('high', 'low'),), ('high_to_low',), ('high',), (0, 1))
      >>> cfg.stage1.cases, cfg.stage1.snrs, cfg.stage1.dx  # stage 1: the noise experiment
      (('high', 'low'), (1.0,), 4)
      >>> TransferConfig(pairs=[("high", "low")], dx=4, k=3)
      Traceback (most recent call last):
      ...
      ValueError: a transfer to the other direction needs 2k <= dx (k eigen-directions of each \
size), got k=3, dx=4
    """

    pairs: tuple[tuple[str, str], ...] = PAIRS
    powers: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
    snr: float = 1.0
    ridge: float = 1e-3
    ridge_form: str = "auto"
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
        pairs = self.pairs
        if isinstance(pairs, str) or (len(pairs) == 2 and all(p in DIRECTIONS for p in pairs)):
            pairs = (pairs,)  # one pair given bare
        object.__setattr__(self, "pairs", tuple(parse_pair(p) for p in pairs))
        object.__setattr__(self, "powers", tuple(self.powers))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting.

        Called on construction (and by ``dataclasses.replace``); the settings shared with
        stage 1 are checked by :meth:`~jaxprecond.noise.NoiseConfig.validate`.

        Example:
          >>> cfg = TransferConfig(dx=4)
          >>> cfg.validate()  # every setting is fine: nothing raised
          >>> dataclasses.replace(cfg, ridge=0.0)
          Traceback (most recent call last):
          ...
          ValueError: ridge must be a positive number, got 0.0
          >>> dataclasses.replace(cfg, steps=150)  # log_every is 100
          Traceback (most recent call last):
          ...
          ValueError: steps=150 must be a multiple of log_every=100
        """
        if not self.pairs:
            raise ValueError("pairs must be non-empty")
        if len(set(self.pairs)) != len(self.pairs):
            raise ValueError(f"pairs repeat: {self.pairs!r}")
        if isinstance(self.snr, bool) or not (isinstance(self.snr, (int, float)) and self.snr > 0):
            raise ValueError(f"snr must be a positive number, got {self.snr!r}")
        if not (isinstance(self.ridge, (int, float)) and math.isfinite(self.ridge)) or not (
            self.ridge > 0
        ):
            raise ValueError(f"ridge must be a positive number, got {self.ridge!r}")
        if self.ridge_form not in ("auto", "primal", "dual"):
            raise ValueError(
                f"ridge_form must be one of ('auto', 'primal', 'dual'), got {self.ridge_form!r}"
            )
        self.stage1  # noqa: B018 - the shared settings are checked by NoiseConfig
        if any(a != b for a, b in self.pairs) and 2 * self.k > self.dx:
            raise ValueError(
                f"a transfer to the other direction needs 2k <= dx (k eigen-directions of each "
                f"size), got k={self.k}, dx={self.dx}"
            )

    @property
    def stage1(self) -> NoiseConfig:
        """The noise experiment whose runs are stage 1 (every case, this SNR).

        Returns:
          A :class:`~jaxprecond.noise.NoiseConfig` with ``cases = CASES``, ``snrs = (snr,)`` and
          every other shared setting copied.

        Example:
          >>> s1 = TransferConfig(pairs="low_to_high", powers=(0.0, 1.0), snr=2.0, dx=4).stage1
          >>> s1.cases, s1.powers, s1.snrs, s1.dx
          (('high', 'low'), (0.0, 1.0), (2.0,), 4)
        """
        shared = {f.name for f in dataclasses.fields(NoiseConfig)} - {"cases", "snrs"}
        return NoiseConfig(
            cases=CASES, snrs=(self.snr,), **{name: getattr(self, name) for name in shared}
        )

    @property
    def cases(self) -> tuple[str, ...]:
        """The stage-1 cases the pairs need, in ``CASES`` order.

        Returns:
          The distinct training directions of ``pairs``, ordered as ``CASES``.

        Example:
          >>> TransferConfig(pairs=["low_to_high", "low_to_low"]).cases
          ('low',)
          >>> TransferConfig(pairs=["low_to_high", "high_to_high"]).cases
          ('high', 'low')
        """
        return tuple(c for c in CASES if any(train == c for train, _ in self.pairs))

    @property
    def labels(self) -> tuple[str, ...]:
        """The pairs' names, ``"<train>_to_<transfer>"``, in the order of ``pairs``.

        Returns:
          One label per pair (see :func:`_pair_label`).

        Example:
          >>> TransferConfig(pairs=[("low", "high"), "high_to_high"]).labels
          ('low_to_high', 'high_to_high')
        """
        return tuple(_pair_label(p) for p in self.pairs)


#: CPU-sized default (about a minute on 2 cores) and the paper's settings.
TRANSFER_PRESETS = {
    "cpu": TransferConfig(seeds=4, steps=2_000, n=2_000),
    "paper": TransferConfig(),
}


def stage_spectra(config: TransferConfig) -> tuple[Spectrum, Spectrum]:
    """Stage-1 spectra per case and stage-2 spectra per ``(case, direction)``.

    Args:
      config: the experiment's settings (``dx``, ``k``, ``scale``, ``rotate``, dtype).

    Returns:
      ``(stage1, stage2)``: stage 1 stacked over ``CASES``, stage 2 over ``CASES`` ×
      ``DIRECTIONS`` (leading axes ``(2,)`` and ``(2, 2)``).

    Example:
      The axis each teacher lies on, for ``dx = 4``: Case High's teacher on axis 0 (its large
      eigenvalue), Case Low's on axis 3 (its small one); stage 2 as :func:`transfer_axes`:

      >>> stage_spectra_jit = jax.jit(stage_spectra, static_argnums=0)  # one compilation
      >>> stage1, stage2 = stage_spectra_jit(TransferConfig(dx=4))
      >>> stage1.teacher_basis.shape, stage2.teacher_basis.shape
      ((2, 4, 1), (2, 2, 4, 1))
      >>> np.argmax(stage1.teacher_basis[..., 0], -1).tolist()  # case
      [0, 3]
      >>> np.argmax(stage2.teacher_basis[..., 0], -1).tolist()  # case × (high, low)
      [[0, 1], [2, 3]]
    """
    stage1 = spectra(config.stage1)
    per_case = []
    for i, case in enumerate(CASES):
        spectrum = jax.tree.map(lambda leaf, i=i: leaf[i], stage1)
        per_case.append(
            stack_spectra(
                [
                    transfer_spectrum(spectrum, transfer_axes(case, d, dx=config.dx, k=config.k))
                    for d in DIRECTIONS
                ]
            )
        )
    return stage1, stack_spectra(per_case)


def refit_head(params, task, *, config: TransferConfig):
    """Stage 2: the ridge head on frozen ``params``' features of ``task``, and its MSEs.

    Args:
      params: the stage-1 parameters (``W1`` and ``b1`` are kept).
      task: the stage-2 :class:`~jaxprecond.data.Task`.
      config: the experiment's settings (``ridge``, ``ridge_form``, precision, blocks).

    Returns:
      ``(head_params, train_mse, test_mse)``: ``params`` with the fitted ``W2``, ``b2``, and the
      plain MSEs on the stage-2 train and test sets.

    Example:
      With ``W1 = I``, ``b1 = 0`` the features of non-negative inputs are the inputs, so a
      target ``2·x₀ − x₁ + 1`` is fitted exactly by a nearly unpenalised head:

      >>> from jaxprecond.data import Task
      >>> params = {"W1": np.eye(2, dtype=np.float32), "b1": np.zeros(2, np.float32),
      ...           "W2": np.zeros(2, np.float32), "b2": np.float32(0)}
      >>> x = np.array([[0, 1], [1, 0], [2, 1], [3, 2], [1, 3], [2, 2]], np.float32)
      >>> y = 2 * x[:, 0] - x[:, 1] + 1
      >>> task = Task(x[:4], y[:4], x[4:], y[4:], beta=np.ones(2, np.float32))
      >>> fit = jax.jit(refit_head, static_argnames="config")  # one compilation
      >>> head, train_mse, test_mse = fit(params, task, config=TransferConfig(ridge=1e-8))
      >>> [round(float(w), 3) for w in head["W2"]], round(float(head["b2"]), 3)
      ([2.0, -1.0], 1.0)
      >>> round(float(train_mse), 4), round(float(test_mse), 4)
      (0.0, 0.0)
      >>> np.array_equal(head["W1"], params["W1"]), np.array_equal(head["b1"], params["b1"])
      (True, True)
    """
    precision = PRECISIONS[config.precision]
    features = hidden(params, task.x_train, precision)
    w, b = ridge_head(
        features, task.y_train, ridge=config.ridge, form=config.ridge_form, precision=precision
    )
    head = dict(params, W2=w, b2=b)
    fitted = jnp.matmul(features, w, precision=precision) + b
    train_mse = jnp.mean((fitted - task.y_train) ** 2)
    test_mse = blocked_mse(
        head,
        task.x_test,
        task.y_test,
        block_size=config.eval_block_size,
        precision=precision,
    )
    return head, train_mse, test_mse


def simulate_transfer(
    key,
    spectrum: Spectrum,
    transfer: Spectrum,
    power,
    *,
    config: TransferConfig,
    snr=None,
    learning_rate=None,
    weight_decay=None,
) -> dict:
    """One seed, one stage-1 case, one ``p``: train stage 1, refit the head for each direction.

    Args:
      key: the seed's key, ``fold_in(key(config.root_seed), seed_index)``.
      spectrum: the stage-1 spectrum (teacher on the case's axes).
      transfer: the stage-2 spectra, stacked over directions ``("high", "low")`` (same ``Σ``,
        the teacher on the top-k / bottom-k eigenvectors), from :func:`stage_spectra`.
      power: the exponent ``p`` (may be traced).
      config: the experiment's settings.
      snr, learning_rate, weight_decay: values replacing the config's (may be traced).

    Returns:
      A dict of ``(1,)`` arrays (one record, at the last step): ``stage1_train_loss``,
      ``stage1_test_mse``, ``stage1_alignment`` and, for ``d`` in ``high``/``low``,
      ``to_{d}_train_mse``, ``to_{d}_test_mse``, ``to_{d}_alignment`` (the frozen layer's
      energy along the stage-2 teacher).

    Example:
      >>> cfg = TransferConfig(seeds=1, steps=20, log_every=10, dh=8, n=300, n_train=50)
      >>> stage1, stage2 = stage_spectra(cfg)  # leading axis: case ("high", "low")
      >>> high = lambda tree: jax.tree.map(lambda leaf: leaf[0], tree)
      >>> run = lambda key: simulate_transfer(key, high(stage1), high(stage2), 1.0, config=cfg)
      >>> jax.eval_shape(run, jax.random.key(0))["to_low_test_mse"].shape  # no compiling
      (1,)
    """
    snr = config.snr if snr is None else snr
    params, trajectory = train_student(
        key,
        spectrum,
        power,
        snr,
        config=config.stage1,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
    )
    out = {
        "stage1_train_loss": trajectory.train_loss[-1:],
        "stage1_test_mse": trajectory.test_mse[-1:],
        "stage1_alignment": trajectory.alignment[-1:],
    }
    key_stage2 = jax.random.fold_in(key, STAGE2_FOLD)

    def stage2(target):
        task = sample_task(key_stage2, target, snr, n=config.n, n_train=config.n_train)
        _, train_mse, test_mse = refit_head(params, task, config=config)
        alignment, _ = first_layer_features(params["W1"], target.eigenvectors, task.beta)
        return train_mse, test_mse, alignment

    train_mse, test_mse, alignment = jax.vmap(stage2)(transfer)  # over DIRECTIONS
    for i, direction in enumerate(DIRECTIONS):
        out[f"to_{direction}_train_mse"] = train_mse[i, None]
        out[f"to_{direction}_test_mse"] = test_mse[i, None]
        out[f"to_{direction}_alignment"] = alignment[i, None]
    return out


TRANSFER_AXES = {
    "case": CASES,
    "p": "numeric",
    "snr": "numeric",
    "learning_rate": "numeric",
    "weight_decay": "numeric",
}


def transfer_experiment(config: TransferConfig) -> Experiment:
    """The transfer experiment as a sweep :class:`~jaxprecond.sweep.Experiment`.

    Sweepable axes: ``case`` (the stage-1 case), ``p``, ``snr``, ``learning_rate`` and
    ``weight_decay``; an axis left out takes the config's value (``case``: the first case of
    the pairs, ``p``: the first power). Each run records one step: the last.

    Args:
      config: the experiment's settings (recorded as the experiment's ``config``).

    Returns:
      The :class:`~jaxprecond.sweep.Experiment`; its cell returns the dict of
      :func:`simulate_transfer`.

    Example:
      >>> cfg = TransferConfig(pairs="high_to_low", seeds=1, steps=4, log_every=2, dx=3, dh=4,
      ...                      n=24, n_train=16)
      >>> exp = transfer_experiment(cfg)
      >>> exp.name, exp.steps, sorted(exp.allowed_axes)
      ('transfer', (3,), ['case', 'learning_rate', 'p', 'snr', 'weight_decay'])
      >>> cell = exp.make_cell(("p",))  # case: "high", the pairs' only stage-1 case
      >>> out = jax.eval_shape(cell, jax.random.key(0), {"p": jnp.float32(1.0)})  # no compiling
      >>> sorted(out)[:4], out["to_low_test_mse"].shape
      (['stage1_alignment', 'stage1_test_mse', 'stage1_train_loss', 'to_high_alignment'], (1,))
    """

    def make_cell(names):
        del names

        def cell(key, values):
            stage1, stage2 = stage_spectra(config)
            case = values.get("case", CASES.index(config.cases[0]))
            return simulate_transfer(
                key,
                jax.tree.map(lambda leaf: leaf[case], stage1),
                jax.tree.map(lambda leaf: leaf[case], stage2),
                values.get("p", config.powers[0]),
                config=config,
                snr=values.get("snr"),
                learning_rate=values.get("learning_rate"),
                weight_decay=values.get("weight_decay"),
            )

        return cell

    return Experiment(
        name="transfer",
        config=dataclasses.asdict(config),
        make_cell=make_cell,
        allowed_axes=TRANSFER_AXES,
        root_seed=config.root_seed,
        steps=(config.steps - 1,),
        float64=config.float64,
    )


def transfer_sweep_spec(config: TransferConfig, *, group_size: int | None = None) -> SweepSpec:
    """The grid of ``config``: axes case (the stage-1 cases of its pairs) × p.

    Args:
      config: the experiment's settings.
      group_size: runs trained side by side (``None``: see
        :func:`~jaxprecond.sweep.default_group_size`).

    Returns:
      The :class:`~jaxprecond.sweep.SweepSpec`.

    Example:
      >>> cfg = TransferConfig(pairs=[("high", "low"), ("high", "high")], powers=(0.0, 1.0))
      >>> spec = transfer_sweep_spec(cfg, group_size=2)
      >>> spec.axes, spec.seeds == cfg.seeds  # one stage-1 case serves both pairs
      ((('case', ('high',)), ('p', (0.0, 1.0))), True)
    """
    return SweepSpec(
        axes=(("case", config.cases), ("p", config.powers)),
        seeds=config.seeds,
        chunk_size=config.chunk_size,
        group_size=group_size,
    )


@dataclasses.dataclass
class TransferResults:
    """Results of :func:`run_transfer`: final metrics of every seed for every pair and ``p``.

    Attributes:
      config: the experiment's settings.
      transfer_test_mse, transfer_train_mse: ``(pair, p, seed)`` stage-2 MSEs of the ridge head.
      stage1_test_mse, stage1_train_loss: ``(pair, p, seed)`` final stage-1 values (equal for the
        two pairs of one stage-1 case).
      stage1_alignment: ``(pair, p, seed)`` energy fraction of the first layer along the stage-1
        teacher.
      transfer_alignment: ``(pair, p, seed)`` the same along the stage-2 teacher.

    Example:
      Results of two pairs × two powers × three seeds, built by hand:

      >>> cfg = TransferConfig(pairs=["high_to_low", "low_to_high"], powers=(0.0, 1.0), seeds=3)
      >>> mse = np.array([[[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]], [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]])
      >>> res = TransferResults(cfg, mse, mse / 2, *[np.ones((2, 2, 3))] * 4)
      >>> res.transfer_test_mse.shape, res.config.labels
      ((2, 2, 3), ('high_to_low', 'low_to_high'))
    """

    config: TransferConfig
    transfer_test_mse: np.ndarray
    transfer_train_mse: np.ndarray
    stage1_test_mse: np.ndarray
    stage1_train_loss: np.ndarray
    stage1_alignment: np.ndarray
    transfer_alignment: np.ndarray

    def summary(self, metric: str = "transfer_test_mse") -> SeedSummary:
        """Seed statistics of ``metric``, shape ``(pair, p)``; non-finite seeds are excluded and
        reported with a :class:`~jaxprecond.stats.DivergenceWarning`.

        Args:
          metric: one of :data:`METRICS`.

        Returns:
          A :class:`~jaxprecond.stats.SeedSummary` with fields of shape ``(pair, p)``.

        Example:
          >>> import warnings
          >>> cfg = TransferConfig(pairs="high_to_low", powers=(0.0, 1.0), seeds=3)
          >>> mse = np.array([[[1.0, 2.0, 3.0], [0.5, np.nan, 0.5]]])  # one seed diverged
          >>> res = TransferResults(cfg, mse, *[np.ones((1, 2, 3))] * 5)
          >>> with warnings.catch_warnings(record=True) as caught:
          ...     warnings.simplefilter("always")
          ...     s = res.summary()
          >>> s.mean.tolist(), s.n_diverged.tolist(), caught[0].category.__name__
          ([[2.0, 0.5]], [[0, 1]], 'DivergenceWarning')
          >>> res.summary("test_mse")  # doctest: +ELLIPSIS
          Traceback (most recent call last):
          ...
          ValueError: metric must be one of (...), got 'test_mse'
        """
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        return summarize_seeds(getattr(self, metric), axis=2, name=metric)

    def table(self, metric: str = "transfer_test_mse") -> str:
        """Markdown: rows = pairs, columns = p, mean ± 95% CI half-width of ``metric``.

        The lowest mean of each row is in bold (for an MSE, the best ``p`` of that pair).

        Args:
          metric: one of :data:`METRICS`.

        Returns:
          The Markdown table (no trailing newline).

        Example:
          >>> cfg = TransferConfig(pairs=["high_to_low", "low_to_high"], powers=(0.0, 1.0),
          ...                      seeds=3)
          >>> mse = np.array([[[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]],
          ...                 [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]])
          >>> print(TransferResults(cfg, mse, *[np.ones((2, 2, 3))] * 5).table())
          | transfer_test_mse | p = 0 | p = 1 |
          |---|---|---|
          | High→Low | 2.0000 ± 2.4841 | **0.5000 ± 0.0000** |
          | Low→High | **1.0000 ± 0.0000** | 2.0000 ± 0.0000 |
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)
            s = self.summary(metric)
        powers = self.config.powers
        lines = [
            f"| {metric} | " + " | ".join(f"p = {p:g}" for p in powers) + " |",
            "|---|" + "---|" * len(powers),
        ]
        for i, (train, transfer) in enumerate(self.config.pairs):
            means = np.where(np.isfinite(s.mean[i]), s.mean[i], np.inf)
            best = int(np.argmin(means)) if np.isfinite(means).any() else -1
            cells = []
            for j in range(len(powers)):
                half = (s.ci_high[i, j] - s.ci_low[i, j]) / 2
                cell = f"{s.mean[i, j]:.4f} ± {half:.4f}"
                if s.n_diverged[i, j]:
                    cell += f" ({s.n_diverged[i, j]} diverged)"
                cells.append(f"**{cell}**" if j == best else cell)
            name = f"{train.capitalize()}→{transfer.capitalize()}"
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def report(self) -> str:
        """The Markdown of ``table.md``: the stage-2 test and train MSE and stage-1 test MSE.

        Returns:
          A header line and three :meth:`table` s, separated by blank lines.

        Example:
          >>> cfg = TransferConfig(pairs="high_to_low", powers=(0.0, 1.0), seeds=2, steps=200)
          >>> res = TransferResults(cfg, *[np.ones((1, 2, 2))] * 6)
          >>> print(res.report())  # doctest: +NORMALIZE_WHITESPACE
          Forward transfer, covariance_power, 2 seeds, 200 stage-1 steps, SNR 1, ridge λ = 0.001
          (mean ± 95% CI; bold: best p per pair)
          <BLANKLINE>
          | transfer_test_mse | p = 0 | p = 1 |
          |---|---|---|
          | High→Low | **1.0000 ± 0.0000** | 1.0000 ± 0.0000 |
          <BLANKLINE>
          | transfer_train_mse | p = 0 | p = 1 |
          |---|---|---|
          | High→Low | **1.0000 ± 0.0000** | 1.0000 ± 0.0000 |
          <BLANKLINE>
          | stage1_test_mse | p = 0 | p = 1 |
          |---|---|---|
          | High→Low | **1.0000 ± 0.0000** | 1.0000 ± 0.0000 |
          <BLANKLINE>
        """
        seeds = self.transfer_test_mse.shape[-1]
        head = (
            f"Forward transfer, {self.config.preconditioner}, {seeds} seeds, "
            f"{self.config.steps} stage-1 steps, SNR {self.config.snr:g}, "
            f"ridge λ = {self.config.ridge:g} (mean ± 95% CI; bold: best p per pair)"
        )
        parts = [head] + [
            self.table(m) for m in ("transfer_test_mse", "transfer_train_mse", "stage1_test_mse")
        ]
        return "\n\n".join(parts) + "\n"

    def save(self, directory, *, overwrite: bool = False) -> Path:
        """Write the run folder (arrays, config, environment, ``table.md``, ``figure.png``).

        Args:
          directory: the run folder (created if needed).
          overwrite: replace existing results instead of refusing (``FileExistsError``).

        Returns:
          The folder's path; :meth:`load` reads it back.

        Example:
          >>> import tempfile
          >>> cfg = TransferConfig(pairs="high_to_low", powers=(0.0, 1.0), seeds=2)
          >>> res = TransferResults(cfg, *[np.arange(4.0).reshape(1, 2, 2)] * 6)
          >>> with tempfile.TemporaryDirectory() as d:
          ...     run = res.save(Path(d) / "run")
          ...     print(sorted(p.name for p in run.iterdir()))
          ...     back = TransferResults.load(run)
          ['arrays.npz', 'config.json', 'environment.json', 'figure.png', 'table.md']
          >>> back.config == cfg, np.array_equal(back.transfer_test_mse, res.transfer_test_mse)
          (True, True)
        """
        arrays = {name: getattr(self, name) for name in METRICS}
        directory = save_run(
            directory, arrays, dataclasses.asdict(self.config), overwrite=overwrite
        )
        write_text(directory / "table.md", self.report())
        plot_transfer(self, directory / "figure.png")
        return directory

    @classmethod
    def load(cls, directory) -> TransferResults:
        """Read a run folder written by :meth:`save` or, if unfinished, by :func:`run_transfer`.

        Args:
          directory: a folder with ``arrays.npz`` (finished, see :meth:`save`), or a sweep run
            folder of :func:`run_transfer` (its finished chunks are read).

        Returns:
          :class:`TransferResults`; for an unfinished run, of the seeds present
          (``config.seeds`` counts them).

        Example:
          An interrupted run, its last chunk missing (a stand-in cell replaces both stages):

          >>> import tempfile
          >>> cfg = TransferConfig(pairs="low_to_high", powers=(0.0, 1.0), seeds=3, chunk_size=2)
          >>> names = ["stage1_train_loss", "stage1_test_mse", "stage1_alignment"] + [
          ...     f"to_{d}_{m}" for d in DIRECTIONS for m in ("train_mse", "test_mse", "alignment")]
          >>> def cell(key, values):  # every metric is p + 1
          ...     return {name: jnp.full(1, values["p"] + 1.0) for name in names}
          >>> toy = dataclasses.replace(transfer_experiment(cfg), make_cell=lambda axes: cell)
          >>> with tempfile.TemporaryDirectory() as d:
          ...     _ = run_sweep(transfer_sweep_spec(cfg), toy, out=d, progress=False)
          ...     sorted(Path(d, "chunks").iterdir())[-1].unlink()  # seed 2's chunk
          ...     res = TransferResults.load(d)
          >>> res.config.seeds, res.transfer_test_mse.tolist()  # (pair, p, seed)
          (2, [[[1.0, 1.0], [2.0, 2.0]]])
        """
        if not (Path(directory) / ARRAYS).exists() and (Path(directory) / MANIFEST).exists():
            sweep = load_sweep(directory)
            return cls.from_sweep(sweep, TransferConfig(**sweep.config))
        arrays, config = load_run(directory)
        return cls(config=TransferConfig(**config), **arrays)

    @classmethod
    def from_sweep(cls, sweep: SweepResults, config: TransferConfig) -> TransferResults:
        """View a case × p sweep as results per pair (seeds present: ``sweep.seeds``).

        Args:
          sweep: a sweep with axes ``(case, p)`` and the records of :func:`simulate_transfer`.
          config: the experiment's settings; ``seeds`` is set to the seeds present.

        Returns:
          :class:`TransferResults`: each pair's final records, taken from its stage-1 case and
          (for the stage-2 metrics) its transfer direction.

        Raises:
          ValueError: the sweep's axes are not ``(case, p)``.

        Example:
          Stage-2 test MSE ``10·case + d`` (``d`` 0 to high, 1 to low), one p, one seed:

          >>> cfg = TransferConfig(pairs=["high_to_low", "low_to_high"], powers=(0.0,), seeds=1)
          >>> data = {name: np.zeros((2, 1, 1, 1)) for name in (
          ...     "stage1_train_loss", "stage1_test_mse", "stage1_alignment", "to_high_train_mse",
          ...     "to_low_train_mse", "to_high_alignment", "to_low_alignment")}
          >>> data["to_high_test_mse"] = np.array([0.0, 10.0]).reshape(2, 1, 1, 1)
          >>> data["to_low_test_mse"] = np.array([1.0, 11.0]).reshape(2, 1, 1, 1)
          >>> axes = (("case", ("high", "low")), ("p", (0.0,)))
          >>> sweep = SweepResults(axes, seeds=np.arange(1), steps=np.array([9999]), data=data,
          ...                      config={}, total_seeds=1)
          >>> TransferResults.from_sweep(sweep, cfg).transfer_test_mse[:, 0, 0].tolist()
          [1.0, 10.0]
          >>> TransferResults.from_sweep(dataclasses.replace(sweep, axes=axes[1:]), cfg)
          Traceback (most recent call last):
          ...
          ValueError: need axes (case, p), got ['p']
        """
        names = tuple(n for n, _ in sweep.axes)
        if names != ("case", "p"):
            raise ValueError(f"need axes (case, p), got {list(names)}")
        if len(sweep.seeds) != config.seeds:
            config = dataclasses.replace(config, seeds=len(sweep.seeds))
        cases = list(dict(sweep.axes)["case"])

        def per_pair(name):
            return np.stack(
                [
                    sweep.data[name.format(d=transfer)][cases.index(train), ..., -1]
                    for train, transfer in config.pairs
                ]
            )

        return cls(
            config=config,
            transfer_test_mse=per_pair("to_{d}_test_mse"),
            transfer_train_mse=per_pair("to_{d}_train_mse"),
            stage1_test_mse=per_pair("stage1_test_mse"),
            stage1_train_loss=per_pair("stage1_train_loss"),
            stage1_alignment=per_pair("stage1_alignment"),
            transfer_alignment=per_pair("to_{d}_alignment"),
        )


def run_transfer(
    config: TransferConfig, *, out=None, progress: bool = True, group_size: int | None = None
) -> TransferResults:
    """Run the transfer experiment (pairs × p) over all seeds, through the sweep engine.

    One compiled program covers every stage-1 case, ``p`` and seed (seeds in chunks of
    ``config.chunk_size``); with ``out``, chunks are written there as they finish and a run
    started again resumes; the folder then also gets ``arrays.npz``, ``table.md`` and
    ``figure.png``.

    Args:
      config: the experiment's settings.
      out: run folder, or ``None`` to keep the results in memory.
      progress: show a progress bar over chunks.
      group_size: runs trained side by side inside the program (``None``: 4 on a CPU, 4 096
        on an accelerator; see :func:`~jaxprecond.sweep.default_group_size`).

    Returns:
      :class:`TransferResults` (``None`` on a non-zero process of a multi-process run).

    Example:
      >>> cfg = TransferConfig(pairs=[("high", "low")], powers=(0.0, 1.0), seeds=2, steps=20,
      ...                      log_every=10, dh=8, n=300, n_train=50)
      >>> run_transfer(cfg, progress=False).transfer_test_mse.shape
      (1, 2, 2)
    """
    sweep = run_sweep(
        transfer_sweep_spec(config, group_size=group_size),
        transfer_experiment(config),
        out=out,
        progress=progress,
    )
    if sweep is None:
        return None
    results = TransferResults.from_sweep(sweep, config)
    if out is not None and len(sweep.seeds) == config.seeds:
        results.save(out, overwrite=True)
    return results


def add_transfer_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``jaxprecond transfer`` to a subparsers object (:func:`transfer_command` runs it).

    Args:
      subparsers: the object ``ArgumentParser.add_subparsers()`` returned.

    Returns:
      The ``transfer`` subparser; options left out parse as ``None`` (the preset's value).

    Example:
      >>> parser = argparse.ArgumentParser(prog="jaxprecond")
      >>> _ = add_transfer_parser(parser.add_subparsers(dest="command"))
      >>> args = parser.parse_args(["transfer", "--seeds", "2", "--p", "-1", "0",
      ...                           "--pairs", "high_to_low", "--lr", "0.1"])
      >>> args.command, args.preset, args.seeds, args.powers, args.pairs, args.learning_rate
      ('transfer', 'cpu', 2, [-1.0, 0.0], ['high_to_low'], 0.1)
      >>> args.steps is None, args.no_progress
      (True, False)
    """
    p = subparsers.add_parser(
        "transfer",
        help="forward knowledge transfer (paper Sec. 4.3)",
        description="Train stage 1 with Sigma^p (or AdaHessian), freeze layer 1, refit the head "
        "by ridge regression on a new teacher; pairs x p over seeds, written to a run folder.",
    )
    p.add_argument(
        "--preset",
        choices=sorted(TRANSFER_PRESETS),
        default="cpu",
        help="base settings: 'cpu' (about a minute on 2 cores) or 'paper'",
    )
    p.add_argument("--steps", type=int, help="stage-1 gradient steps")
    p.add_argument("--log-every", type=int, help="record stage-1 metrics every K steps")
    p.add_argument(
        "--pairs",
        nargs="+",
        choices=[_pair_label(pair) for pair in PAIRS],
        help="(stage-1 case, stage-2 direction) pairs (default: all four)",
    )
    p.add_argument("--snr", type=float, help="signal-to-noise ratio of both stages")
    p.add_argument("--ridge", type=float, help="ridge lambda of the stage-2 head (1e-3)")
    p.add_argument("--n", type=int, help="points per stage (train + test)")
    p.add_argument("--n-train", type=int, help="training points per stage")
    add_student_options(p, "transfer")
    return p


def transfer_config(args: argparse.Namespace) -> TransferConfig:
    """The preset named by ``args.preset`` with every given option replacing its value.

    Args:
      args: parsed ``transfer`` arguments (see :func:`add_transfer_parser`); an option left
        out (``None``) keeps the preset's value.

    Returns:
      The :class:`TransferConfig` to run.

    Example:
      >>> parser = argparse.ArgumentParser(prog="jaxprecond")
      >>> _ = add_transfer_parser(parser.add_subparsers(dest="command"))
      >>> cfg = transfer_config(parser.parse_args(["transfer", "--seeds", "3", "--p", "1"]))
      >>> cfg.seeds, cfg.powers, cfg.steps == TRANSFER_PRESETS["cpu"].steps
      (3, (1.0,), True)
    """
    return preset_with(TRANSFER_PRESETS, args)


def transfer_command(args: argparse.Namespace) -> TransferResults:
    """Run ``jaxprecond transfer ...``: the experiment, its table printed, the run folder.

    Args:
      args: the options parsed by the parser of :func:`add_transfer_parser`; ``args.out``
        (default ``runs/transfer-<time>``) is the run folder.

    Returns:
      The :class:`TransferResults`.

    Raises:
      ValueError: an option makes an invalid :class:`TransferConfig` (before anything runs).

    Example:
      Even the smallest run compiles for several seconds, so here only the check of the
      options: 150 steps are not a multiple of the preset's ``log_every``:

      >>> parser = argparse.ArgumentParser(prog="jaxprecond")
      >>> _ = add_transfer_parser(parser.add_subparsers(dest="command"))
      >>> transfer_command(parser.parse_args(["transfer", "--steps", "150"]))
      Traceback (most recent call last):
      ...
      ValueError: steps=150 must be a multiple of log_every=100
    """
    config = transfer_config(args)
    out = args.out or time.strftime("runs/transfer-%Y%m%d-%H%M%S")
    print(
        f"transfer: {len(config.pairs)} pairs x {len(config.powers)} powers x {config.seeds} "
        f"seeds, {config.steps} stage-1 steps ({config.preconditioner}) -> {out}"
    )
    start = time.perf_counter()
    results = run_transfer(
        config, out=out, progress=not args.no_progress, group_size=args.group_size
    )
    elapsed = time.perf_counter() - start
    print(results.table())
    print(f"done in {elapsed:.1f} s; results in {out}/ (table.md, figure.png, arrays.npz)")
    return results


__all__ = [
    "PAIRS",
    "TRANSFER_PRESETS",
    "TransferConfig",
    "TransferResults",
    "add_transfer_parser",
    "parse_pair",
    "refit_head",
    "run_transfer",
    "simulate_transfer",
    "stage_spectra",
    "transfer_axes",
    "transfer_command",
    "transfer_experiment",
    "transfer_spectrum",
]
