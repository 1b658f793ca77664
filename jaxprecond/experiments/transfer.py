"""Forward knowledge transfer (paper Sec. 4.3): train with ``Σ^p``, freeze layer 1, refit the head.

Stage 1 trains the student on a case's spectrum and teacher exactly as the noise experiment
(same keys: stage 1 of seed ``i`` *is* the noise run of seed ``i``). Stage 2 draws a new data set
with the same spectrum and SNR and a fresh teacher on the top-k (``"high"``) or bottom-k
(``"low"``) eigenvectors of that spectrum, freezes the first layer and refits the head in closed
form by ridge regression on the centred ReLU features. A pair ``(train, transfer)`` names the
stage-1 case and the stage-2 direction: High→Low is Case High's spectrum with the new teacher on a
small eigenvalue.

As in the authors' ``transfer_learning_cov.py``: the stage-2 teacher is ``β₂ = Q[:, axes] c``
with fresh ``c ~ N(0, I_k)`` on the eigenvectors of :func:`transfer_axes`; stage-2 targets are
standardised with the stage-2 training mean and std; the ridge penalty is ``λ·N·‖w‖²``
(``λ = 1e-3``), the intercept ``ȳ − h̄·w``. Differences: stage 2's data come from
``fold_in(seed_key, 1)`` (the authors continue one NumPy stream), so for a seed every pair shares
the stage-2 inputs, noise and teacher coefficients, and the two pairs of one stage-1 case share
stage 1: it is trained once per case and both directions are refitted from it (the grid is
case × p, half the work of a pair axis).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from jaxprecond.checks import SettingError
from jaxprecond.engine.config import POSITIVE, one_of, setting
from jaxprecond.engine.experiment import Experiment, last_record
from jaxprecond.engine.stats import summarize_seeds
from jaxprecond.engine.views import quiet
from jaxprecond.tasks.ridge import ridge_head
from jaxprecond.tasks.single_index import CASES, sample_task, stack_spectra
from jaxprecond.tasks.student import blocked_mse, first_layer_features, hidden
from jaxprecond.training.regression import (
    PRECISIONS,
    PreconditionerConfig,
    spectra,
    train_student,
)

DIRECTIONS = ("high", "low")
PAIRS = (("high", "low"), ("low", "high"), ("high", "high"), ("low", "low"))
#: Fold of a seed's key that draws its stage-2 data (stage 1 splits the key itself).
STAGE2_FOLD = 1


def pair_label(pair) -> str:
    """``("high", "low")`` → ``"high_to_low"`` (the fixtures' naming)."""
    return f"{pair[0]}_to_{pair[1]}"


def check_pairs(name: str, pairs) -> tuple[tuple[str, str], ...]:
    """Pairs from labels (``"high_to_low"``) or ``(train, transfer)`` tuples; one may be bare.

    Example:
      >>> check_pairs("pairs", "high_to_low"), check_pairs("pairs", [["low", "low"]])
      ((('high', 'low'),), (('low', 'low'),))
    """
    if isinstance(pairs, str) or (len(pairs) == 2 and all(p in DIRECTIONS for p in pairs)):
        pairs = (pairs,)
    checked = []
    for pair in pairs:
        parts = tuple(pair.split("_to_") if isinstance(pair, str) else pair)
        if len(parts) != 2 or any(p not in DIRECTIONS for p in parts) or parts in checked:
            raise SettingError(f"{name} must be distinct pairs like 'high_to_low', got {pair!r}")
        checked.append(parts)
    if not checked:
        raise SettingError(f"{name} must not be empty")
    return tuple(checked)


def transfer_axes(case: str, direction: str, *, dx: int, k: int) -> np.ndarray:
    """The eigen-axes of Case ``case``'s spectrum that the stage-2 teacher lies on.

    The authors' rule, ``argsort(λ)[-k:]`` for ``"high"`` and ``argsort(λ)[:k]`` for ``"low"``,
    with a stable sort (NumPy's default sort orders ties in an implementation-defined way; tied
    axes are exchangeable, so the choice changes no distribution).

    Example:
      >>> transfer_axes("high", "low", dx=10, k=1), transfer_axes("low", "high", dx=10, k=1)
      (array([1]), array([8]))
    """
    n_large = k if case == "high" else dx - k
    eigenvalues = np.r_[np.full(n_large, 2.0), np.full(dx - n_large, 1.0)]  # only the order
    order = np.argsort(eigenvalues, kind="stable")
    return order[-k:] if direction == "high" else order[:k]


@dataclasses.dataclass(frozen=True)
class TransferConfig(PreconditionerConfig):
    """The transfer experiment's settings: the student's (stage 1), the pairs and stage 2's.

    Example:
      >>> cfg = TransferConfig(pairs="high_to_low", dx=4)
      >>> cfg.pairs, cfg.cases
      ((('high', 'low'),), ('high',))
      >>> TransferConfig(pairs=[("high", "low")], dx=4, k=3)
      Traceback (most recent call last):
      ...
      jaxprecond.checks.SettingError: a transfer to the other direction needs 2k <= dx, got k=3, \
dx=4
    """

    pairs: tuple[tuple[str, str], ...] = setting(
        PAIRS,
        "(stage-1 case, stage-2 direction) pairs",
        check_pairs,
        cli=dict(nargs="+", choices=[pair_label(p) for p in PAIRS]),
    )
    snr: float = setting(1.0, "signal-to-noise ratio of both stages", POSITIVE, traced=True)
    ridge: float = setting(1e-3, "ridge lambda of the stage-2 head", POSITIVE)
    ridge_form: str = setting(
        "auto", "the head's solve (auto: dual when dh > n_train)", one_of("auto", "primal", "dual")
    )

    def validate(self) -> None:
        super().validate()
        if any(a != b for a, b in self.pairs) and 2 * self.k > self.dx:
            raise SettingError(
                f"a transfer to the other direction needs 2k <= dx, got k={self.k}, dx={self.dx}"
            )

    @property
    def cases(self) -> tuple[str, ...]:
        """The stage-1 cases the pairs need, in ``CASES`` order."""
        return tuple(c for c in CASES if any(train == c for train, _ in self.pairs))


#: CPU-sized (about a minute on 2 cores) and the paper's settings.
PRESETS = {"cpu": TransferConfig(seeds=4, steps=2_000, n=2_000), "paper": TransferConfig()}


def stage_spectra(config: TransferConfig):
    """Stage-1 spectra per case of ``config.cases`` and stage-2 per ``(case, direction)``.

    Example:
      >>> stage1, stage2 = stage_spectra(TransferConfig(dx=4))
      >>> np.argmax(stage2.teacher_basis[..., 0], -1).tolist()  # case × (high, low)
      [[0, 1], [2, 3]]
    """
    every = spectra(config)
    stage1, stage2 = [], []
    for case in config.cases:
        index = CASES.index(case)
        spectrum = jax.tree.map(lambda leaf, i=index: leaf[i], every)
        stage1.append(spectrum)
        moved = [transfer_axes(case, d, dx=config.dx, k=config.k) for d in DIRECTIONS]
        stage2.append(
            stack_spectra(
                [spectrum._replace(teacher_basis=spectrum.eigenvectors[:, a]) for a in moved]
            )
        )
    return stack_spectra(stage1), stack_spectra(stage2)


def refit_head(params, task, *, config: TransferConfig):
    """Stage 2: the ridge head on frozen ``params``' features of ``task``, and its MSEs.

    Returns:
      ``(head_params, train_mse, test_mse)``: ``params`` with the fitted ``W2``, ``b2``.

    Example:
      With ``W1 = I``, ``b1 = 0`` the features of non-negative inputs are the inputs, so a
      target ``2·x₀ − x₁ + 1`` is fitted exactly by a nearly unpenalised head:

      >>> from jaxprecond.tasks.single_index import Task
      >>> params = {"W1": np.eye(2, dtype=np.float32), "b1": np.zeros(2, np.float32)}
      >>> x = np.array([[0, 1], [1, 0], [2, 1], [3, 2], [1, 3], [2, 2]], np.float32)
      >>> task = Task(x[:4], 2 * x[:4, 0] - x[:4, 1] + 1, x[4:], 2 * x[4:, 0] - x[4:, 1] + 1,
      ...             beta=np.ones(2, np.float32))
      >>> head, train_mse, test_mse = refit_head(params, task, config=TransferConfig(ridge=1e-8))
      >>> [round(float(w), 3) for w in head["W2"]], round(float(test_mse), 4)
      ([2.0, -1.0], 0.0)
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
        head, task.x_test, task.y_test, block_size=config.eval_block_size, precision=precision
    )
    return head, train_mse, test_mse


def run(key, point, config: TransferConfig, data=None) -> dict:
    """One seed, one stage-1 case, one ``p``: stage 1, then the head refitted per direction.

    Returns:
      ``(1,)`` arrays (one record, the last step): ``stage1_train_loss``, ``stage1_test_mse``,
      ``stage1_alignment`` and, for ``d`` in ``high``/``low``, ``to_{d}_train_mse``,
      ``to_{d}_test_mse``, ``to_{d}_alignment`` (the frozen layer's energy along the new teacher).

    Example:
      >>> cfg = TransferConfig(steps=20, log_every=10, dh=8, n=300, n_train=50)
      >>> out = jax.eval_shape(lambda key: run(key, {"case": 0, "p": 1.0}, cfg), jax.random.key(0))
      >>> out["to_low_test_mse"].shape
      (1,)
    """
    stage1, stage2 = (
        jax.tree.map(lambda leaf: leaf[point["case"]], s) for s in stage_spectra(config)
    )
    params, trajectory = train_student(key, stage1, point["p"], config.snr, config)
    out = {
        "stage1_train_loss": trajectory.train_loss[-1:],
        "stage1_test_mse": trajectory.test_mse[-1:],
        "stage1_alignment": trajectory.alignment[-1:],
    }
    key_stage2 = jax.random.fold_in(key, STAGE2_FOLD)

    def refit(target):
        task = sample_task(key_stage2, target, config.snr, n=config.n, n_train=config.n_train,
                           teacher_scale=config.teacher_scale)  # fmt: skip
        _, train_mse, test_mse = refit_head(params, task, config=config)
        alignment, _ = first_layer_features(params["W1"], target.eigenvectors, task.beta)
        return train_mse, test_mse, alignment

    train_mse, test_mse, alignment = jax.vmap(refit)(stage2)  # over DIRECTIONS
    for i, direction in enumerate(DIRECTIONS):
        out[f"to_{direction}_train_mse"] = train_mse[i, None]
        out[f"to_{direction}_test_mse"] = test_mse[i, None]
        out[f"to_{direction}_alignment"] = alignment[i, None]
    return out


def by_pair(results, metric: str = "test_mse") -> np.ndarray | None:
    """The final ``metric`` of every pair: ``(pair, p, seed)`` (``None`` unless the grid is
    case × p; single-valued extra axes are dropped).

    ``metric`` is a stage-2 metric (``test_mse``, ``train_mse``, ``alignment``: of the pair's
    direction) or a stage-1 one (``stage1_test_mse``, ...: of the pair's case).
    """
    names = [n for n, _ in results.axes]
    if names[:2] != ["case", "p"] or any(len(v) > 1 for _, v in results.axes[2:]):
        return None
    cases = list(results.values("case"))
    rows = []
    for train, transfer in results.config.pairs:
        name = metric if metric.startswith("stage1") else f"to_{transfer}_{metric}"
        final = results.final(name)[cases.index(train)]
        rows.append(final.reshape(final.shape[0], -1))
    return np.stack(rows)


def table(results) -> str | None:
    """Three Markdown tables, rows = pairs, columns = p: the stage-2 test and train MSE and the
    stage-1 test MSE (mean ± 95% half-width; bold: the lowest mean of the row)."""
    if by_pair(results) is None:
        return None
    powers = results.values("p")
    parts = [f"Forward transfer, {len(results.seeds)} seeds (mean ± 95% CI; bold: best p per pair)"]
    for metric in ("test_mse", "train_mse", "stage1_test_mse"):
        s = quiet(summarize_seeds, by_pair(results, metric), axis=-1)
        lines = [f"| {metric} | " + " | ".join(f"p = {p:g}" for p in powers) + " |"]
        lines.append("|---|" + "---|" * len(powers))
        for i, pair in enumerate(results.config.pairs):
            means = np.where(np.isfinite(s.mean[i]), s.mean[i], np.inf)
            best = int(np.argmin(means)) if np.isfinite(means).any() else -1
            cells = []
            for j in range(len(powers)):
                cell = f"{s.mean[i, j]:.4f} ± {(s.ci_high[i, j] - s.ci_low[i, j]) / 2:.4f}"
                cell += f" ({s.n_diverged[i, j]} diverged)" if s.n_diverged[i, j] else ""
                cells.append(f"**{cell}**" if j == best else cell)
            lines.append(
                f"| {pair[0].capitalize()}→{pair[1].capitalize()} | " + " | ".join(cells) + " |"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def figure(results) -> Figure | None:
    """The stage-2 test (left) and train (right) MSE against ``p``, one line per pair."""
    if by_pair(results) is None:
        return None
    powers = np.asarray(results.values("p"), float)
    fig = Figure(figsize=(11, 4.5), layout="tight")
    for ax, metric in zip(fig.subplots(1, 2), ("test_mse", "train_mse"), strict=True):
        s = quiet(summarize_seeds, by_pair(results, metric), axis=-1)
        for i, pair in enumerate(results.config.pairs):
            error = np.nan_to_num(np.stack([s.mean[i] - s.ci_low[i], s.ci_high[i] - s.mean[i]]))
            label = f"{pair[0].capitalize()}→{pair[1].capitalize()}"
            ax.errorbar(powers, s.mean[i], yerr=error, marker="o", capsize=3, label=label)
        ax.set(xlabel="p", ylabel=f"stage-2 {metric.replace('_', ' ')}".replace("mse", "MSE"))
        ax.set_xticks(powers, [f"{p:g}" for p in powers])
        ax.legend(fontsize="small")
    fig.suptitle(f"Forward transfer: frozen layer 1, ridge head; {len(results.seeds)} seeds")
    return fig


EXPERIMENT = TRANSFER = Experiment(
    "transfer", TransferConfig, PRESETS, run=run, grid={"case": "cases", "p": "powers"},
    steps=last_record, table=table, figure=figure, description=__doc__.splitlines()[0],
)  # fmt: skip
