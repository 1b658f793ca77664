"""The tiny sweep shared by the sweep tests and their worker processes.

The noise experiment at toy size: case × p (its own axes, one SNR) × a traced learning-rate
axis, 4 seeds.
"""

from jaxprecond.experiments.noise import NOISE, NoiseConfig

TINY_AXES = {"learning_rate": [0.01, 0.05]}


def tiny_config(chunk_size, seeds=4, **changes):
    settings = dict(
        cases=("high", "low"),
        powers=(-1.0, 1.0),
        snrs=(1.0,),
        seeds=seeds,
        chunk_size=chunk_size,
        group_size=2,
        steps=20,
        log_every=10,
        dh=8,
        n=300,
        n_train=50,
    )
    return NoiseConfig(**(settings | changes))


def run_tiny(chunk_size, **options):
    """The tiny sweep of the tests: ``NOISE`` over the tiny config and ``TINY_AXES``."""
    from jaxprecond.engine.sweep import run

    return run(NOISE, tiny_config(chunk_size), axes=TINY_AXES, progress=False, **options)
