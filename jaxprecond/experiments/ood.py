"""Out-of-distribution generalization under a correlation shift (paper Sec. 4.2, Fig. 2).

Every training image of class ``c`` carries a faint noise template (a low-variance, perfectly
predictive spurious feature; the digit is the high-variance one, see
:mod:`jaxprecond.tasks.correlation_shift`). A 784→256→10 ReLU MLP is trained full batch with
cross-entropy by each optimizer of the comparison, and by GD with the first-layer kernel
preconditioned by ``(Σ + δI)^p`` (``sigma_p``; ``Σ`` the training images' second moment,
``δ = damping × mean eigenvalue``). One run is tested on *invariant-digit* (true labels, the
template of a swapped class: reliance on the digit) and *invariant-noise* (random labels with
their templates: reliance on the template), both from all 10 000 test images as in the authors'
script (``test_split_only``, the fallback with the test split alone: from the images left after
the disjoint training and validation draw, 10 000 − n_train − n_val).

The grid is optimizer × p (``p`` matters to ``sigma_p`` alone); ``jaxprecond ood`` runs the
optimizers at p = 0 (``out/optimizers``) and ``sigma_p`` over the powers (``out/sigma_p``), with
seed ``i``'s data and init the same for each. ``dataset="synthetic"``: a Gaussian task of the same
structure. Unlike the authors' ``src/ood_generalization.py``: seeded pools; invariant-digit keeps
the true labels (theirs are random); L-BFGS runs optax's zoom line search, one iteration a step.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from jaxprecond.checks import SettingError
from jaxprecond.engine.config import (
    FLAG,
    NON_NEGATIVE,
    NUMBER,
    POSITIVE,
    POSITIVE_INT,
    TEXT,
    Config,
    Pairs,
    one_of,
    setting,
)
from jaxprecond.engine.experiment import Experiment
from jaxprecond.engine.trainer import train
from jaxprecond.engine.views import interval, quiet
from jaxprecond.linalg import eigh_psd
from jaxprecond.optim.estimated import NORMALIZATIONS, empirical_covariance
from jaxprecond.optim.registry import make_optimizer, oracles, weight_decay_coupling
from jaxprecond.tasks import correlation_shift
from jaxprecond.tasks.classifier import (
    CLASSIFIER_LAYERS,
    accuracy,
    classification_loss,
    classifier_kfac_statistics,
    init_classifier,
)

DATASETS = ("mnist", "fashion-mnist", "synthetic")
OPTIMIZERS = ("gd", "momentum", "adam", "sam", "lbfgs", "kfac", "adahessian", "sophia_h")
#: GD with Σ^p on layer 1: the optimizer of the p-sweep.
SIGMA_P = "sigma_p"
METRICS = ("train_loss", "val_acc", "digit_acc", "noise_acc")
SCENARIOS = {
    "val_acc": "validation",
    "digit_acc": "invariant-digit",
    "noise_acc": "invariant-noise",
}


@dataclasses.dataclass(frozen=True)
class OODConfig(Config):
    """The OOD experiment's settings; the defaults follow the reference script (8 seeds).

    Example:
      >>> cfg = OODConfig(dataset="synthetic", optimizers=("gd",), powers=(-1, 1),
      ...                 learning_rates=[("sigma_p", 0.2)])
      >>> cfg.lr("sigma_p"), cfg.lr("gd"), sorted(OOD.arms(cfg))
      (0.2, 0.01, ['optimizers', 'sigma_p'])
    """

    seeds: int = setting(8, "seeds per grid point", POSITIVE_INT)
    group_size: int | None = setting(1, "seeds run side by side in a call", POSITIVE_INT.maybe())
    dataset: str = setting("mnist", "image set, or the synthetic task", one_of(*DATASETS))
    optimizers: tuple[str, ...] = setting(
        OPTIMIZERS, "optimizers to compare", one_of(*OPTIMIZERS, SIGMA_P).many(empty=True)
    )
    powers: tuple[float, ...] = setting(
        (-1.0, -0.5, 0.0, 0.5, 1.0), "powers of the Sigma^p arm", NUMBER.many(empty=True),
        traced=True, flag="--p",
    )  # fmt: skip
    steps: int = setting(500, "full-batch steps", POSITIVE_INT)
    log_every: int = setting(50, "record every K steps", POSITIVE_INT)
    hidden: int = setting(256, "hidden width", POSITIVE_INT)
    n_train: int = setting(1200, "training images", POSITIVE_INT)
    n_val: int = setting(1200, "in-distribution validation images", POSITIVE_INT)
    n_test: int | None = setting(None, "OOD test images (default: all)", POSITIVE_INT.maybe())
    template_std: float = setting(0.1, "the templates' per-pixel std", POSITIVE)
    learning_rate: float = setting(1e-2, "every optimizer's lr", POSITIVE, traced=True, flag="--lr")
    learning_rates: tuple[tuple[str, float], ...] = setting(
        (), "one optimizer's lr (repeatable; 'sigma_p' for the p-sweep)",
        Pairs(one_of(*OPTIMIZERS, SIGMA_P), POSITIVE), flag="--lr-for",
        cli=dict(metavar=("OPTIMIZER", "LR")),
    )  # fmt: skip
    weight_decay: float = setting(1e-4, "L2 coefficient", NON_NEGATIVE, traced=True)
    damping: float = setting(1e-3, "Sigma^p damping relative to the mean eigenvalue", NON_NEGATIVE)
    normalize: str | None = setting(None, "normalise P", one_of(*NORMALIZATIONS[1:]).maybe())
    kfac_refresh: int = setting(10, "K-FAC's steps between factor refreshes", POSITIVE_INT)
    data_dir: str | None = setting(None, "folder with the IDX files", TEXT.maybe())
    test_split_only: bool = setting(False, "draw every pool, disjointly, from the test split", FLAG)
    download: bool = setting(False, "fetch a missing image set", FLAG, identity=False, axis=False)

    def validate(self) -> None:
        if not self.optimizers and not self.powers:
            raise SettingError("nothing to run: give optimizers or powers")
        run = set(self.optimizers) | ({SIGMA_P} if self.powers else set())
        idle = [name for name, _ in self.learning_rates if name not in run]
        if idle:
            raise SettingError(f"learning_rates names {idle}, which this run does not train")

    def lr(self, optimizer: str) -> float:
        """``optimizer``'s entry of ``learning_rates``, else ``learning_rate``."""
        return dict(self.learning_rates).get(optimizer, self.learning_rate)


#: ``cpu`` (MNIST, 8 seeds: the reference protocol), ``gpu`` (32 seeds), ``synthetic`` (the
#: Gaussian task, 20→64→2, 256 seeds; 64 take 5 minutes on 2 CPU cores), ``quick`` (small MNIST).
PRESETS = {
    "cpu": OODConfig(),
    "gpu": OODConfig(seeds=32),
    "synthetic": OODConfig(
        dataset="synthetic", seeds=256, hidden=64, n_train=200, n_val=1000, n_test=1000,
        group_size=64,
    ),
    "quick": OODConfig(
        optimizers=("gd", "adam", "kfac"), seeds=2, steps=200, hidden=128, n_train=600,
        n_val=600, n_test=1000,
    ),
}  # fmt: skip


def load_images(config: OODConfig) -> dict | None:
    """The image pools every run draws from (``None`` for the synthetic task)."""
    where = dict(data_dir=config.data_dir, test_split_only=config.test_split_only)
    return correlation_shift.load_pools(config.dataset, download=config.download, **where)


def optimizer_of(name: str, power, x_train, key, config: OODConfig):
    """``(optimizer, loss weight decay)`` of ``name`` (``sigma_p``: GD, ``(Σ + δI)^p`` on W1).

    Weight decay goes where the authors put it (``weight_decay_coupling``). ``sigma_p`` keeps the
    loss's L2 term, so ``wd·W1`` passes through ``P`` (up to 9e3 at p = −1 on MNIST), as in the
    authors' Σ^p code (``vanilla_generalization_cov.py``): each p is P-preconditioned GD on one
    objective, ``L + ½wd‖θ‖²``. Decoupled decay would stop at a point of ``L + ½wd Σ_j w_jᵀP⁻¹w_j``
    instead: a second, p-dependent bias (at p = −1 against the digit's high-variance directions).
    Dropping wd moves no seed's accuracy by more than 0.006 (benchmarks/RESULTS.md).

    Example:
      >>> cfg = OODConfig(learning_rate=0.1, damping=0.0)
      >>> x = jnp.array([[2.0, 0.0], [0.0, 1.0]])  # Σ = diag(2, 0.5)
      >>> tx, wd = optimizer_of("sigma_p", 1.0, x, None, cfg)
      >>> params = {"W1": jnp.zeros((3, 2)), "b1": jnp.zeros(3)}
      >>> updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
      >>> [round(float(u), 4) for u in updates["W1"][0]], wd  # −lr · gΣ on W1
      ([-0.2, -0.05], 0.0001)
    """
    registered = "covariance_power" if name == SIGMA_P else name
    options, weight_decay = weight_decay_coupling(registered, config.weight_decay)
    if name == SIGMA_P:
        sigma = empirical_covariance(x_train)
        eigh = eigh_psd(sigma, damping=config.damping * jnp.trace(sigma) / sigma.shape[0])
        options.update(covariance=eigh, power=power, normalize=config.normalize)
    elif name == "adahessian":
        options["seed"] = key
    elif name == "kfac":
        options.update(layers=CLASSIFIER_LAYERS, statistics=classifier_kfac_statistics)
        options["refresh_every"] = config.kfac_refresh
    return make_optimizer(registered, config.lr(name), **options), weight_decay


def run(key, point, config: OODConfig, images=None) -> dict:
    """One seed, one optimizer (and ``p``): draw the data, train full batch, record
    :data:`METRICS` every ``log_every`` steps (NaN once the parameters or loss are not finite).

    Example:
      >>> cfg = OODConfig(dataset="synthetic", steps=20, log_every=10, hidden=8)
      >>> run_seed = lambda key: run(key, {"optimizer": "adam", "p": 0.0}, cfg)
      >>> jax.eval_shape(run_seed, jax.random.key(0))["val_acc"].shape  # shapes only
      (2,)
    """
    key_data, key_init, key_opt = jax.random.split(key, 3)
    sizes = dict(n_train=config.n_train, n_val=config.n_val, n_test=config.n_test)
    data = correlation_shift.draw(key_data, images, template_std=config.template_std, **sizes)
    n_classes, d = data.templates.shape
    params = init_classifier(key_init, int(d), config.hidden, int(n_classes))
    optimizer, wd = optimizer_of(point["optimizer"], point["p"], data.x_train, key_opt, config)

    def record(p, losses):
        metrics = {
            "train_loss": losses[-1],
            "val_acc": accuracy(p, data.x_val, data.y_val),
            "digit_acc": accuracy(p, data.x_digit, data.y_digit),
            "noise_acc": accuracy(p, data.x_noise, data.y_noise),
        }
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(p)]))
        finite &= jnp.isfinite(losses).all()
        return {k: jnp.where(finite, v, jnp.nan) for k, v in metrics.items()}

    return train(
        params,
        optimizer,
        lambda p, batch: classification_loss(p, *batch, weight_decay=wd),
        steps=config.steps,
        log_every=config.log_every,
        record=record,
        batch=lambda t: (data.x_train, data.y_train),
        oracles=oracles,
    )[1]


def arms(config: OODConfig) -> dict:
    """The optimizers at p = 0 and, apart, ``sigma_p`` over the powers (``{}`` arms left out)."""
    runs = {}

    def rates(*kept):  # the learning rates of the optimizers an arm trains
        return tuple((name, lr) for name, lr in config.learning_rates if name in kept)

    if [o for o in config.optimizers if o != SIGMA_P]:
        runs["optimizers"] = dataclasses.replace(
            config, powers=(0.0,), learning_rates=rates(*config.optimizers)
        )
    if config.powers:
        runs[SIGMA_P] = dataclasses.replace(
            config, optimizers=(SIGMA_P,), learning_rates=rates(SIGMA_P)
        )
    return runs


def _rows(results):
    """``(label, index)`` per grid point: the optimizer, or ``Σ^p, p=…``."""
    for i, name in enumerate(results.values("optimizer")):
        for j, p in enumerate(results.values("p")):
            if name != SIGMA_P and j:
                continue  # p does not change the other optimizers
            yield (f"Σ^p, p={p:g}" if name == SIGMA_P else name), (i, j)


def table(results) -> str | None:
    """Markdown: final accuracies (mean [95% CI]) per optimizer and power."""
    if [n for n, _ in results.axes] != ["optimizer", "p"]:
        return None
    summaries = {m: quiet(results.summary, m) for m in SCENARIOS}
    head = "| optimizer | " + " | ".join(f"{v} acc." for v in SCENARIOS.values())
    lines = [head + " | seeds | diverged |", "|---|---|---|---|---|---|"]
    for name, index in _rows(results):
        cells = [interval(s, index, digits=3) for s in summaries.values()]
        s = summaries["val_acc"]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {s.n_valid[index]} | {s.n_diverged[index]} |"
        )
    return "\n".join(lines)


def figure(results) -> Figure | None:
    """Fig. 2: (a) accuracy per optimizer in each scenario; (b) Σ^p's accuracy against p."""
    if [n for n, _ in results.axes] != ["optimizer", "p"]:
        return None
    names = [n for n in results.values("optimizer") if n != SIGMA_P]
    panels = bool(names) + (SIGMA_P in results.values("optimizer"))
    fig = Figure(figsize=(6 * panels, 4.5), layout="tight")
    axes = list(fig.subplots(1, panels, squeeze=False)[0])
    summaries = {m: quiet(results.summary, m) for m in SCENARIOS}
    optimizers = list(results.values("optimizer"))
    if names:
        ax, x = axes[0], np.arange(len(names))
        for k, (metric, label) in enumerate(SCENARIOS.items()):
            s, rows = summaries[metric], [optimizers.index(n) for n in names]
            mean = s.mean[rows, 0]
            error = np.nan_to_num(np.abs(np.stack([s.ci_low[rows, 0], s.ci_high[rows, 0]]) - mean))
            ax.bar(x + (k - 1) * 0.27, mean, 0.27, yerr=error, capsize=2, label=label)
        ax.set_xticks(x, names, rotation=30)
        ax.set(ylabel="accuracy", ylim=(0, 1.05), title="(a) optimizers")
        ax.legend(fontsize="small")
    if SIGMA_P in optimizers:
        ax, i = axes[-1], optimizers.index(SIGMA_P)
        powers = np.asarray(results.values("p"), float)
        for metric, label in SCENARIOS.items():
            s = summaries[metric]
            error = np.nan_to_num(np.stack([s.mean[i] - s.ci_low[i], s.ci_high[i] - s.mean[i]]))
            ax.errorbar(powers, s.mean[i], yerr=error, marker="o", capsize=3, label=label)
        ax.set(xlabel="p", ylabel="accuracy", ylim=(0, 1.05), title="(b) GD with Σ^p on layer 1")
        ax.legend(fontsize="small")
    fig.suptitle(f"Correlation shift ({results.config.dataset}): {len(results.seeds)} seeds")
    return fig


EXPERIMENT = OOD = Experiment(
    "ood", OODConfig, PRESETS, run=run, grid={"optimizer": "optimizers", "p": "powers"},
    metrics=tuple(SCENARIOS), table=table, figure=figure, data=load_images, arms=arms,
    description=__doc__.splitlines()[0],
)  # fmt: skip
