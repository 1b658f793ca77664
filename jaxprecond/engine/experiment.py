"""What an experiment is: settings, a per-seed function, a table and a figure; nothing else.

An :class:`Experiment` is declared once per experiment module. Everything else is generic:
:func:`jaxprecond.engine.sweep.run` sweeps it over a grid × seeds into a resumable run folder,
:func:`~jaxprecond.engine.folder.load` reads the folder back (finished or partial),
:mod:`jaxprecond.engine.views` writes its report, and :mod:`jaxprecond.cli` builds its command
from the settings' fields.

A grid has two kinds of axes (:func:`grid_axes`): the experiment's own (``grid``: each backed by
a list-valued setting, e.g. ``p`` by ``powers``), always present; and any other setting swept by
a sweep file. An axis whose setting is ``traced`` passes its values to one compiled program;
any other axis compiles one program per value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

from jaxprecond.checks import SettingError
from jaxprecond.engine.config import RUN_SETTINGS, Values, checked_fields
from jaxprecond.engine.store import write_text


def every_record(config) -> tuple[int, ...]:
    """The recorded steps ``log_every − 1, 2·log_every − 1, …`` of ``config.steps`` steps.

    Example:
      >>> import types
      >>> every_record(types.SimpleNamespace(steps=300, log_every=100))
      (99, 199, 299)
    """
    return tuple(range(config.log_every - 1, config.steps, config.log_every))


def last_record(config) -> tuple[int, ...]:
    """One record, after the last of ``config.steps`` steps."""
    return (config.steps - 1,)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Everything an experiment is.

    Attributes:
      name: the experiment's name (its command and the run folder's ``experiment``).
      config: its settings, a subclass of :class:`~jaxprecond.engine.config.Config`.
      presets: named settings; the first is the default.
      run: ``run(key, point, config, data) -> {metric: array}`` trains one seed at one grid
        point: ``point`` maps each ``grid`` axis to its value (a categorical axis gives the
        index of its value among the setting's choices), ``config`` holds the other settings
        (traced where swept), ``data`` is :attr:`data`'s arrays. Each metric has a leading
        record axis.
      grid: axis name → the list-valued setting holding its values, in grid order (a
        property of the config instead gives a traced categorical axis over its values).
      steps: ``steps(config)``: the step of each record (default :func:`every_record`).
      metrics: the metrics of the default table (final value, mean and 95% interval).
      table: ``table(results) -> str`` (Markdown), or ``None`` for the default table.
      figure: ``figure(results) -> matplotlib Figure``, or ``None`` for the default figure.
      data: ``data(config) -> pytree of arrays`` read once and given to every run, or ``None``.
      arms: ``arms(config) -> {name: config}``: the command runs one sweep per arm, each into
        a subfolder of the run folder; ``None``: one sweep.
      description: one line for ``--help``.
      source: where a user's own experiment was loaded from (``"file.py:NAME"``), recorded in
        its run folders so that ``jaxprecond report`` finds it again.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxprecond.engine.config import POSITIVE, Config, setting
      >>> @dataclasses.dataclass(frozen=True)
      ... class Coin(Config):
      ...     bias: float = setting(0.5, "probability of heads", POSITIVE, traced=True)
      >>> coin = Experiment("coin", Coin, {"one": Coin(seeds=4)}, steps=lambda c: (0,),
      ...     run=lambda key, point, config, data: {
      ...         "heads": jax.random.bernoulli(key, config.bias, (1,)).astype(jnp.float32)})
      >>> results = coin.sweep(Coin(seeds=2), axes={"bias": [0.0001, 0.9999]}, progress=False)
      >>> results.dims, results.data["heads"][:, :, 0].tolist()
      (('bias', 'seed', 'step'), [[0.0, 0.0], [1.0, 1.0]])
    """

    name: str
    config: type
    presets: Mapping
    run: Callable = dataclasses.field(repr=False)
    grid: Mapping[str, str] = dataclasses.field(default_factory=dict)
    steps: Callable = every_record
    metrics: tuple[str, ...] = ()
    table: Callable | None = None
    figure: Callable | None = None
    data: Callable | None = None
    arms: Callable | None = None
    description: str = ""
    source: str = ""

    def sweep(self, config=None, **options):
        """Sweep this experiment: :func:`jaxprecond.engine.sweep.run` with ``self`` (which turns
        on JAX's persistent compilation cache, see :mod:`jaxprecond.engine.compile_cache`).

        Args:
          config: its settings (default: the first preset).
          **options: ``axes``, ``out``, ``progress``, ... of
            :func:`~jaxprecond.engine.sweep.run`.

        Returns:
          The :class:`~jaxprecond.engine.results.SweepResults` (with :attr:`arms`, a dict of
          them by arm, each arm in the subfolder ``out/<arm>``).
        """
        from jaxprecond.engine.sweep import run

        config = next(iter(self.presets.values())) if config is None else config
        if self.arms is None:
            return run(self, config, **options)
        out = options.pop("out", None)
        results = {
            arm: run(self, arm_config, out=None if out is None else Path(out, arm), **options)
            for arm, arm_config in self.arms(config).items()
        }
        if out is not None and None not in results.values():  # process 0: the arms' reports
            text = "\n".join(Path(out, arm, "report.md").read_text() for arm in results)
            write_text(Path(out, "report.md"), text)
        return results


@dataclasses.dataclass(frozen=True)
class Axis:
    """One axis of a sweep's grid.

    Attributes:
      name: the axis's name (a ``grid`` axis, or the setting it sweeps).
      values: its values, checked by the setting's check.
      setting: the setting behind it.
      traced: its values are arguments of one program (else one program per value).
      choices: a categorical axis's possible values (the run sees the index), else ``None``.
      own: one of the experiment's ``grid`` axes (the run reads it from ``point``).

    Example:
      >>> Axis("p", (-1.0, 1.0), "powers", traced=True).categorical
      False
    """

    name: str
    values: tuple
    setting: str
    traced: bool
    choices: tuple | None = None
    own: bool = True

    @property
    def categorical(self) -> bool:
        """Whether the axis's values are names rather than numbers."""
        return self.choices is not None


def grid_axes(experiment: Experiment, config, axes: Mapping | None = None):
    """The config and the axes of a sweep: the experiment's own axes, then those of ``axes``.

    Args:
      experiment: the definition.
      config: its settings (the values of its own axes).
      axes: axis name → values: an own axis's replace its setting's values; any other names a
        setting of one value to sweep (not one of how a sweep is run: seeds, chunks, ...).

    Returns:
      ``(config, axes)``: the config with the own axes' values, and a tuple of :class:`Axis`.

    Raises:
      SettingError: an unknown axis or a bad value (checked as the setting checks it; swept
        values also pass the config's cross-field checks).

    Example:
      >>> from jaxprecond.experiments.noise import NOISE, NoiseConfig
      >>> config, axes = grid_axes(NOISE, NoiseConfig(), {"p": [0, 1], "learning_rate": [0.1]})
      >>> [(a.name, a.values, a.traced) for a in axes][1:]
      [('p', (0.0, 1.0), True), ('snr', (0.25, 0.5, 1.0, 2.0, 4.0), True), \
('learning_rate', (0.1,), True)]
      >>> grid_axes(NOISE, config, {"snr": [0.0]})
      Traceback (most recent call last):
      ...
      jaxprecond.checks.SettingError: axes.snr: every value of snrs must be a positive number, \
got 0.0
    """
    axes = dict(axes or {})
    fields = checked_fields(config)
    own = {}
    for name, setting in experiment.grid.items():
        if name in axes:
            try:
                config = dataclasses.replace(config, **{setting: axes.pop(name)})
            except SettingError as error:
                raise SettingError(f"axes.{name}: {error}") from None
        own[name] = setting
    result = []
    for name, setting in own.items():
        if setting not in fields:  # derived from other settings: categorical over its values
            if name in axes:
                raise SettingError(f"axes.{name} follows from other settings; set those")
            values = getattr(config, setting)
            result.append(Axis(name, values, setting, traced=True, choices=values))
            continue
        meta = fields[setting].metadata
        values = getattr(config, setting)
        if not values:
            raise SettingError(f"{setting} is empty: the grid axis {name!r} needs a value")
        choices = meta["check"].choices if isinstance(meta["check"], Values) else None
        result.append(Axis(name, values, setting, meta["traced"], choices))
    sweepable = [
        n
        for n, f in fields.items()
        if n not in RUN_SETTINGS and f.metadata["axis"] and not _is_list(f) and n not in own
    ]
    for name, values in axes.items():
        if name not in sweepable:
            raise SettingError(
                f"axes.{name} is not an axis of {experiment.name!r}; axes: "
                f"{', '.join(list(own) + sorted(sweepable))}"
            )
        try:
            values = fields[name].metadata["check"].many()(name, values)
        except SettingError as error:
            raise SettingError(f"axes.{name}: {error}") from None
        for value in values:  # each value also passes the config's cross-field checks
            try:
                dataclasses.replace(config, **{name: value})
            except SettingError as error:
                raise SettingError(f"axes.{name}: {error}") from None
        traced = fields[name].metadata["traced"]
        result.append(Axis(name, values, name, traced, own=False))
    return config, tuple(result)


def traced_settings(config) -> tuple[str, ...]:
    """The config's scalar settings marked ``traced``: arguments of every compiled program,
    swept or not, so that runs differing only in their values share one program.

    Example:
      >>> from jaxprecond.experiments.ood import OODConfig
      >>> traced_settings(OODConfig())
      ('learning_rate', 'weight_decay')
    """
    fields = checked_fields(config)
    return tuple(n for n, f in fields.items() if f.metadata["traced"] and not _is_list(f))


def _is_list(field: dataclasses.Field) -> bool:
    check = field.metadata["check"]
    return not isinstance(check, Values) or check.listed
