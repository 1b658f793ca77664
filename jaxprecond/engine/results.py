"""The results of a sweep: every seed at every grid point, labelled."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from jaxprecond.engine.config import to_json
from jaxprecond.engine.experiment import Experiment
from jaxprecond.engine.stats import SeedSummary, summarize_trajectories


@dataclasses.dataclass
class SweepResults:
    """Per-seed results of a sweep, labelled.

    Attributes:
      experiment: the :class:`~jaxprecond.engine.experiment.Experiment` (its table, figure).
      config: its settings.
      axes: ``((name, values), ...)`` of the grid.
      seeds: ``(S,)`` the seed indices present.
      steps: ``(R,)`` step index of each record.
      data: metric → array with axes ``(*grid, seed, record, ...)``.
      total_seeds: the seeds the sweep asked for (more than ``len(seeds)`` while unfinished).

    Example:
      Two of four seeds finished, one ``lr`` axis, two records:

      >>> res = SweepResults(None, None, axes=(("lr", (0.1, 0.2)),), seeds=np.array([0, 2]),
      ...                    steps=np.array([0, 10]), data={"loss": np.ones((2, 2, 2))},
      ...                    total_seeds=4)
      >>> res.dims, res.missing_seeds.tolist(), res.values("lr")
      (('lr', 'seed', 'step'), [1, 3], (0.1, 0.2))
    """

    experiment: Experiment | None
    config: object
    axes: tuple
    seeds: np.ndarray
    steps: np.ndarray
    data: dict
    total_seeds: int

    @property
    def missing_seeds(self) -> np.ndarray:
        """Seed indices not finished yet, sorted."""
        return np.setdiff1d(np.arange(self.total_seeds), self.seeds)

    @property
    def dims(self) -> tuple[str, ...]:
        """The names of the leading axes of every ``data`` array: the grid, seed, step."""
        return tuple(n for n, _ in self.axes) + ("seed", "step")

    def values(self, axis: str) -> tuple:
        """The values of grid axis ``axis``."""
        return dict(self.axes)[axis]

    def final(self, metric: str) -> np.ndarray:
        """``metric`` at the last record: axes ``(*grid, seed, ...)``.

        Example:
          >>> res = SweepResults(None, None, (("lr", (0.1,)),), np.arange(2), np.array([0, 9]),
          ...                    {"loss": np.array([[[3.0, 1.0], [4.0, 2.0]]])}, 2)
          >>> res.final("loss").tolist()
          [[1.0, 2.0]]
        """
        return self.data[metric][(slice(None),) * (len(self.axes) + 1) + (-1,)]

    def summary(self, metric: str, *, final: bool = True, bootstrap: int = 0) -> SeedSummary:
        """Seed statistics of ``metric``'s final value (or of every record).

        A seed whose trajectory holds a NaN or inf counts as diverged: it is excluded and
        reported (:func:`~jaxprecond.engine.stats.summarize_trajectories`).

        Args:
          metric: a key of ``data`` with axes ``(*grid, seed, record)``.
          final: summarise the last record only (else every record).
          bootstrap: bootstrap resamples for the interval (0: Student-t).

        Returns:
          A :class:`~jaxprecond.engine.stats.SeedSummary` of shape ``grid``
          (``(*grid, record)`` if not ``final``).

        Example:
          >>> loss = np.array([[[4.0, 1.0], [4.0, 3.0]], [[2.0, 2.0], [2.0, 4.0]]])
          >>> res = SweepResults(None, None, (("lr", (0.1, 0.2)),), np.arange(2),
          ...                    np.array([0, 10]), {"loss": loss}, 2)
          >>> res.summary("loss").mean.tolist(), res.summary("loss", final=False).mean.tolist()
          ([2.0, 3.0], [[4.0, 2.0], [2.0, 3.0]])
        """
        values = self.data[metric]
        if values.ndim != len(self.dims):
            raise ValueError(f"{metric!r} is not a scalar trajectory")
        return summarize_trajectories(
            values, len(self.axes), final=final, name=metric, bootstrap=bootstrap
        )

    def table(self) -> str:
        """The experiment's Markdown table (its own, or the generic one of its metrics)."""
        from jaxprecond.engine.views import table

        return table(self)

    def figure(self):
        """The experiment's figure (its own, or the generic one), a matplotlib ``Figure``."""
        from jaxprecond.engine.views import figure

        return figure(self)

    def to_xarray(self):
        """An ``xarray.Dataset`` with dims ``(*axes, seed, step[, component])``.

        Returns:
          The dataset: one variable per metric, coordinates the axis values, seeds and steps,
          and the settings as JSON in ``attrs["config"]``.

        Example:
          >>> res = SweepResults(None, None, (("lr", (0.1, 0.2)),), np.arange(3), np.array([0, 10]),
          ...                    {"loss": np.arange(12.0).reshape(2, 3, 2),
          ...                     "energy": np.zeros((2, 3, 2, 4))}, 3)
          >>> ds = res.to_xarray()
          >>> dict(ds.sizes), float(ds["loss"].sel(lr=0.2, seed=1, step=10))
          ({'lr': 2, 'seed': 3, 'step': 2, 'energy_component': 4}, 9.0)
        """
        import xarray as xr

        coords = {n: list(v) for n, v in self.axes}
        coords.update(seed=self.seeds, step=self.steps)
        variables = {}
        for name, values in self.data.items():
            extra = tuple(f"{name}_component" for _ in range(values.ndim - len(self.dims)))
            variables[name] = (self.dims + extra, values)
        config = {} if self.config is None else to_json(self.config)
        return xr.Dataset(variables, coords=coords, attrs={"config": json.dumps(config)})

    def to_dataframe(self):
        """A long ``pandas.DataFrame``: one row per grid point and seed, the final value of
        every scalar metric (metrics with component axes are left out).

        Example:
          >>> res = SweepResults(None, None, (("lr", (0.1, 0.2)),), np.arange(2),
          ...                    np.array([0, 10]), {"loss": np.arange(8.0).reshape(2, 2, 2)}, 2)
          >>> res.to_dataframe().loss.tolist()
          [1.0, 3.0, 5.0, 7.0]
        """
        import pandas as pd

        index = pd.MultiIndex.from_product(
            [list(v) for _, v in self.axes] + [self.seeds],
            names=[n for n, _ in self.axes] + ["seed"],
        )
        columns = {
            name: values[..., -1].reshape(-1)
            for name, values in self.data.items()
            if values.ndim == len(self.dims)
        }
        return pd.DataFrame(columns, index=index).reset_index()
