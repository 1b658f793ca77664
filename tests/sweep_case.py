"""The tiny sweep shared by the sweep tests and their worker processes."""

from jaxprecond.experiments.noise import NoiseConfig, noise_experiment
from jaxprecond.engine.sweep import SweepSpec

TINY_CONFIG = NoiseConfig(
    cases=("high",),
    powers=(1.0,),
    snrs=(1.0,),
    seeds=4,
    steps=20,
    log_every=10,
    dh=8,
    n=300,
    n_train=50,
)
TINY_EXPERIMENT = noise_experiment(TINY_CONFIG)


def tiny_spec(chunk_size, seeds=4):
    return SweepSpec(
        axes=(("case", ("high", "low")), ("p", (-1.0, 1.0)), ("learning_rate", (0.01, 0.05))),
        seeds=seeds,
        chunk_size=chunk_size,
        group_size=2,
    )
