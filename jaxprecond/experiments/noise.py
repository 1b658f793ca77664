"""Robustness to label noise (paper Fig. 1): case × p × SNR × seeds in one program.

Each run trains the student (:mod:`jaxprecond.training.regression`) with the first-layer
kernel preconditioned by ``Σ^p`` (or AdaHessian with ``hessian_power = −p``, Fig. 1c,d) on the
single-index teacher with label noise at one SNR. Seed ``i`` draws its data and init from
``fold_in(root, i)``, the same in every cell, so cells are paired seed by seed.

Example:
  >>> cfg = NoiseConfig(cases=("high",), powers=(0.0, 1.0), snrs=(4.0,), seeds=2, steps=20,
  ...                   log_every=10, dh=8, n=300, n_train=50)
  >>> results = NOISE.sweep(cfg, progress=False)
  >>> results.dims, results.data["test_mse"].shape
  (('case', 'p', 'snr', 'seed', 'step'), (1, 2, 1, 2, 2))
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from matplotlib.figure import Figure

from jaxprecond.engine.config import POSITIVE, one_of, setting
from jaxprecond.engine.experiment import Experiment
from jaxprecond.engine.views import quiet
from jaxprecond.tasks.single_index import CASES
from jaxprecond.training.regression import PreconditionerConfig, spectra, train_student


@dataclasses.dataclass(frozen=True)
class NoiseConfig(PreconditionerConfig):
    """The noise experiment's settings: the student's (see
    :class:`~jaxprecond.training.regression.PreconditionerConfig`) and the grid's cases and SNRs.

    Example:
      >>> NoiseConfig(cases=["low"], snrs=[1, 4]).snrs
      (1.0, 4.0)
    """

    cases: tuple[str, ...] = setting(
        CASES, "input-spectrum cases", one_of(*CASES).many(), traced=True
    )
    snrs: tuple[float, ...] = setting(
        (0.25, 0.5, 1.0, 2.0, 4.0), "signal-to-noise ratios", POSITIVE.many(), traced=True,
        flag="--snr",
    )  # fmt: skip


#: CPU-sized (a few minutes on 2 cores) and the paper's settings.
PRESETS = {
    "cpu": NoiseConfig(snrs=(0.25, 1.0, 4.0), seeds=4, steps=2_000),
    "paper": NoiseConfig(),
}


def run(key, point, config: NoiseConfig, data=None):
    """One seed in one cell: the student's :class:`~jaxprecond.training.regression.Trajectory`.

    Args:
      key: the seed's key.
      point: ``case`` (index into ``CASES``), ``p`` and ``snr``.
      config: the settings.
      data: unused.

    Example:
      >>> cfg = NoiseConfig(steps=20, log_every=10, dx=4, dh=8, n=64, n_train=32)
      >>> point = {"case": 1, "p": 0.5, "snr": 2.0}
      >>> jax.eval_shape(lambda key: run(key, point, cfg), jax.random.key(0)).energy.shape
      (2, 4)
    """
    spectrum = jax.tree.map(lambda leaf: leaf[point["case"]], spectra(config))
    return train_student(key, spectrum, point["p"], point["snr"], config)[1]


def figure(results, *, trajectory_snr: float = 1.0):
    """Fig. 1: final test MSE against SNR per ``p`` (top), trajectories at one SNR (bottom).

    One column per case; bands and the bottom row's lines are seed means with 95% intervals.
    Returns ``None`` (the generic figure) when more axes than case × p × SNR vary.
    """
    names = [n for n, _ in results.axes]
    if names[:3] != ["case", "p", "snr"] or any(len(v) > 1 for _, v in results.axes[3:]):
        return None
    cases, powers, snrs = (results.values(n) for n in names[:3])
    shape = (len(cases), len(powers), len(snrs))
    final = quiet(results.summary, "test_mse")
    test, train = (quiet(results.summary, m, final=False) for m in ("test_mse", "train_loss"))
    k = int(np.argmin(np.abs(np.asarray(snrs) - trajectory_snr)))
    colors = [(c, 0.3, 1 - c) for c in np.linspace(0, 1, len(powers))]
    fig = Figure(figsize=(5 * len(cases), 8), layout="tight")
    axes = fig.subplots(2, len(cases), squeeze=False)
    for i, case in enumerate(cases):
        top, bottom = axes[0, i], axes[1, i]
        for j, (p, color) in enumerate(zip(powers, colors, strict=True)):
            mean, low, high = (
                v.reshape(shape)[i, j] for v in (final.mean, final.ci_low, final.ci_high)
            )
            top.plot(snrs, mean, "o-", color=color, label=f"p = {p:g}")
            top.fill_between(snrs, low, high, color=color, alpha=0.2)
            steps = results.steps
            bottom.plot(steps, test.mean.reshape(shape + (-1,))[i, j, k], "-", color=color)
            bottom.plot(steps, train.mean.reshape(shape + (-1,))[i, j, k], "--", color=color)
        top.set(xscale="log", xlabel="SNR", ylabel="final test MSE", title=f"Case {case}")
        top.set_xticks(snrs, [f"{s:g}" for s in snrs])
        top.minorticks_off()
        top.legend(fontsize="small")
        title = f"Case {case}, SNR = {snrs[k]:g} (solid: test, dashed: train)"
        bottom.set(yscale="log", xlabel="step", ylabel="MSE", title=title)
    config = results.config
    fig.suptitle(f"{config.preconditioner}, {len(results.seeds)} seeds, {config.steps} steps")
    return fig


EXPERIMENT = NOISE = Experiment(
    "noise", NoiseConfig, PRESETS, run=run, grid={"case": "cases", "p": "powers", "snr": "snrs"},
    metrics=("test_mse", "train_loss"), figure=figure, description=__doc__.splitlines()[0],
)  # fmt: skip
