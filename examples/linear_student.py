"""A linear student of the single-index teacher, trained by GD with Σ^p: one file, any sweep."""

import dataclasses

import jax
import jax.numpy as jnp

from jaxprecond import Eigh, covariance_power, sample_task
from jaxprecond.engine.config import NUMBER, POSITIVE, POSITIVE_INT, Config, one_of, setting
from jaxprecond.engine.experiment import Experiment
from jaxprecond.engine.trainer import train
from jaxprecond.tasks.single_index import CASES, case_spectrum, stack_spectra


@dataclasses.dataclass(frozen=True)
class LinearConfig(Config):
    """Each setting is checked, sweepable by name, and an option of the command line."""

    cases: tuple[str, ...] = setting(CASES, "spectrum cases", one_of(*CASES).many(), traced=True)
    powers: tuple[float, ...] = setting((-1.0, 0.0, 1.0), "powers p", NUMBER.many(), traced=True)
    snr: float = setting(1.0, "signal-to-noise ratio", POSITIVE, traced=True)
    learning_rate: float = setting(0.005, "learning rate", POSITIVE, traced=True)
    steps: int = setting(400, "gradient steps", POSITIVE_INT)
    log_every: int = setting(100, "record every K steps", POSITIVE_INT)
    n: int = setting(2_000, "points drawn (train + test)", POSITIVE_INT)
    n_train: int = setting(200, "training points", POSITIVE_INT)


def run(key, point, config, data):
    """One seed at one grid point: fit ``x·w + b`` by GD with Σ^p on ``w``; record MSEs."""
    every_case = stack_spectra([case_spectrum(case) for case in CASES])
    spectrum = jax.tree.map(lambda leaf: leaf[point["case"]], every_case)
    task = sample_task(key, spectrum, config.snr, n=config.n, n_train=config.n_train)
    sigma = Eigh(spectrum.eigenvalues, spectrum.eigenvectors)
    optimizer = covariance_power(config.learning_rate, sigma, point["p"], layout="out_in",
                                 kernel="w")  # fmt: skip

    def mse(params, batch):
        x, y = batch
        return jnp.mean((x @ params["w"][0] + params["b"] - y) ** 2)

    def record(params, losses):  # after every log_every steps
        return {"train_loss": losses[-1], "test_mse": mse(params, (task.x_test, task.y_test))}

    params = {"w": jnp.zeros((1, task.x_train.shape[1])), "b": jnp.zeros(())}
    full_batch = lambda step: (task.x_train, task.y_train)  # noqa: E731
    return train(params, optimizer, mse, steps=config.steps, log_every=config.log_every,
                 record=record, batch=full_batch)[1]  # fmt: skip


EXPERIMENT = Experiment(
    "linear_student", LinearConfig, {"default": LinearConfig(seeds=8)}, run=run,
    grid={"case": "cases", "p": "powers"}, metrics=("test_mse", "train_loss"),
)  # fmt: skip
