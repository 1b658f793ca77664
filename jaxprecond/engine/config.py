"""Experiment settings: frozen dataclasses whose fields carry their own check, help and flag.

Every value, from the command line, a TOML file, a run folder's manifest or Python, goes through
the field's :class:`Values` check when the dataclass is built (``dataclasses.replace`` too), so
one path validates them all before anything is written or compiled. The command line's options
are made from the same fields (:func:`add_options`).

Example:
  >>> @dataclasses.dataclass(frozen=True)
  ... class Toy(Config):
  ...     lr: float = setting(0.1, "learning rate", POSITIVE, traced=True)
  >>> Toy(lr=0.5).lr, Toy().seeds
  (0.5, 16)
  >>> Toy(lr=-1)
  Traceback (most recent call last):
  ...
  jaxprecond.checks.SettingError: lr must be a positive number, got -1
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping

import jax
import numpy as np

from jaxprecond.checks import SettingError

_TYPES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclasses.dataclass(frozen=True)
class Values:
    """What a setting accepts: a type, a lower bound or choices, ``None``, one value or a list.

    Calling it checks a value: ``check(name, value)`` returns the value converted (a list to a
    tuple, an integer to a float where a number is asked for) or raises :class:`SettingError`
    naming ``name`` and the value. Traced values are passed through unchecked.

    Attributes:
      type: ``int``, ``float``, ``str`` or ``bool``.
      low: the smallest value allowed (``strict``: excluded).
      high: values must be below it.
      choices: the allowed values (of a ``str`` setting).
      optional: ``None`` is allowed (and means "the default").
      listed: a list of values (see :meth:`many`): non-empty unless ``empty``, no repeats.

    Example:
      >>> POSITIVE_INT("steps", 3), POSITIVE.many()("snrs", [1, 4])
      (3, (1.0, 4.0))
      >>> POSITIVE.many()("snrs", [1.0, 1.0])
      Traceback (most recent call last):
      ...
      jaxprecond.checks.SettingError: snrs repeats 1.0
    """

    type: type
    low: float | None = None
    strict: bool = False
    high: float | None = None
    choices: tuple | None = None
    optional: bool = False
    listed: bool = False
    empty: bool = False

    def many(self, *, empty: bool = False) -> Values:
        """A non-empty list (or ``empty``: any list) of distinct such values."""
        return dataclasses.replace(self, listed=True, empty=empty)

    def maybe(self) -> Values:
        """These values or ``None``."""
        return dataclasses.replace(self, optional=True)

    def describe(self) -> str:
        """The values in words, as the error messages say them.

        Example:
          >>> POSITIVE_INT.describe(), one_of("max", "trace").maybe().describe()
          ('a positive integer', "one of (None, 'max', 'trace')")
        """
        if self.choices is not None:
            return f"one of {((None,) if self.optional else ()) + self.choices}"
        kind = {int: "integer", float: "number"}.get(self.type)
        if self.high is None and self.low == 0:
            return f"a {'positive' if self.strict else 'non-negative'} {kind}"
        if self.high is None and self.low == 1 and self.type is int:
            return "a positive integer"
        if self.low is not None:
            return f"an {kind} in [{self.low}, {self.high})"
        return "a finite number" if self.type is float else _TYPES[self.type]

    def __call__(self, name: str, value):
        if not self.listed:
            return self._one(name, value)
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise SettingError(f"{name} must be a list of values, got {value!r}")
        items = tuple(self._one(name, v, listed=True) for v in value)
        if not items and not self.empty:
            raise SettingError(f"{name} must not be empty")
        for i, item in enumerate(items):
            if item in items[:i]:
                raise SettingError(f"{name} repeats {item!r}")
        return items

    def _one(self, name: str, value, *, listed: bool = False):
        if (value is None and self.optional) or isinstance(value, jax.core.Tracer):
            return value
        if listed:
            name = f"every value of {name}"
        bad = SettingError(f"{name} must be {self.describe()}, got {value!r}")
        if self.type is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise bad
            return bool(value)
        if self.type in (int, float):
            numeric = (int, np.integer) + ((float, np.floating) if self.type is float else ())
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numeric):
                raise bad
            value = self.type(value)
            if not math.isfinite(value):
                raise bad
            if self.low is not None and (value < self.low or (self.strict and value == self.low)):
                raise bad
            if self.high is not None and value >= self.high:
                raise bad
            return value
        if not isinstance(value, str) or (self.choices is not None and value not in self.choices):
            raise bad
        return value


@dataclasses.dataclass(frozen=True)
class Pairs:
    """A list of ``(name, value)`` pairs, no name twice: per-name overrides, given on the command
    line as ``--flag NAME VALUE`` (repeatable; the value arrives as a string).

    Example:
      >>> Pairs(Values(str, choices=("adam", "gd")), Values(float, low=0, strict=True))(
      ...     "rates", [["adam", "1e-3"]])
      (('adam', 0.001),)
    """

    names: Values
    values: Values

    def __call__(self, name: str, pairs):
        checked = []
        for key, value in pairs:
            if isinstance(value, str) and self.values.type is not str:
                try:
                    value = self.values.type(value)
                except ValueError:
                    raise SettingError(f"{name}: {value!r} is not a number (for {key!r})") from None
            key = self.names(f"{name}: the name", key)
            checked.append((key, self.values(f"{name}: the value of {key!r}", value)))
        names = [key for key, _ in checked]
        if len(set(names)) != len(names):
            raise SettingError(f"{name} names one twice: {[list(p) for p in pairs]!r}")
        return tuple(checked)


POSITIVE_INT = Values(int, low=1)
POSITIVE = Values(float, low=0, strict=True)
NON_NEGATIVE = Values(float, low=0)
NUMBER = Values(float)
FLAG = Values(bool)
TEXT = Values(str)
#: A seed of ``jax.random.key``.
SEED = Values(int, low=0, high=2**32)


def one_of(*choices: str) -> Values:
    """A string among ``choices``.

    Example:
      >>> one_of("high", "low").many()("cases", ["low"])
      ('low',)
    """
    return Values(str, choices=tuple(choices))


def setting(
    default,
    help: str,
    check: Callable,
    *,
    traced: bool = False,
    flag: str | None = None,
    cli: dict | None = None,
    identity: bool = True,
    axis: bool = True,
):
    """A dataclass field that is a setting.

    Args:
      default: its default value.
      help: one line for ``--help``.
      check: a :class:`Values` (or any ``check(name, value) -> value``).
      traced: a sweep over it passes its values to one compiled program (else one program per
        value).
      flag: its command-line flag (default: ``--name-with-dashes``).
      cli: extra ``argparse`` keywords (``False``: no option).
      identity: part of a run's identity (a resumed run must agree on it).
      axis: a sweep may have an axis over it.

    Returns:
      A ``dataclasses.field``.

    Example:
      >>> field = setting(1e-2, "learning rate", POSITIVE, traced=True, flag="--lr")
      >>> field.default, field.metadata["flag"]
      (0.01, '--lr')
    """
    meta = dict(help=help, check=check, traced=traced, flag=flag, cli=cli, identity=identity)
    meta["axis"] = axis
    return dataclasses.field(default=default, metadata=meta)


def checked_fields(config) -> dict[str, dataclasses.Field]:
    """The fields of ``config`` (a class or an instance) that are settings, by name.

    Example:
      >>> sorted(checked_fields(Config))
      ['chunk_size', 'group_size', 'memory_budget', 'root_seed', 'seeds']
    """
    return {f.name: f for f in dataclasses.fields(config) if "check" in f.metadata}


@dataclasses.dataclass(frozen=True)
class Config:
    """The settings every experiment has: seeds and how they are split into compiled calls.

    Subclasses add their own fields (with :func:`setting`) and cross-field checks
    (:meth:`validate`). Construction checks every field, that ``steps`` (if there are such
    fields) is a multiple of ``log_every``, then calls :meth:`validate`.

    Attributes:
      seeds: seeds per grid point.
      root_seed: seed ``i``'s key is ``fold_in(key(root_seed), i)``.
      chunk_size: seeds per compiled call (``None``: from ``memory_budget``, else all).
      memory_budget: bytes one chunk may use on one device.
      group_size: runs ``vmap``-ped together inside a call (``None``: 4 on a CPU, 4 096 on an
        accelerator).

    Example:
      >>> Config(seeds=4, chunk_size=2).chunk_size
      2
      >>> Config(root_seed=2**63)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      jaxprecond.checks.SettingError: root_seed must be an integer in [0, 4294967296), got ...
    """

    seeds: int = setting(16, "seeds per grid point", POSITIVE_INT)
    root_seed: int = setting(0, "root of every seed's key", SEED)
    chunk_size: int | None = setting(None, "seeds per compiled call", POSITIVE_INT.maybe())
    memory_budget: int | None = setting(
        None, "bytes a chunk may use on one device (sets the chunk size)", POSITIVE_INT.maybe()
    )
    group_size: int | None = setting(
        None,
        "runs trained side by side in a call (default: 4 on a CPU, 4096 elsewhere)",
        POSITIVE_INT.maybe(),
    )

    def __post_init__(self):
        for name, field in checked_fields(self).items():
            object.__setattr__(self, name, field.metadata["check"](name, getattr(self, name)))
        steps, log_every = getattr(self, "steps", None), getattr(self, "log_every", None)
        if isinstance(steps, int) and isinstance(log_every, int) and steps % log_every:
            raise SettingError(f"steps={steps} must be a multiple of log_every={log_every}")
        self.validate()

    def validate(self) -> None:
        """Cross-field checks (raise :class:`SettingError`); the base class has none."""


#: The settings of how a sweep is run, not of what it computes: never a sweep axis.
RUN_SETTINGS = tuple(f.name for f in dataclasses.fields(Config))


def substitute(config, **values):
    """``config`` with some fields replaced, unchecked (by traced values inside a program).

    Example:
      >>> substitute(Config(), seeds="anything").seeds
      'anything'
    """
    config = copy.copy(config)
    for name, value in values.items():
        object.__setattr__(config, name, value)
    return config


def from_mapping(base, values: Mapping, *, where: str = ""):
    """``base`` with the settings of ``values`` (a TOML table, a manifest's config).

    Args:
      base: a config instance.
      values: setting name → value.
      where: prefixed to error messages (e.g. ``"sweep.toml: config."``).

    Returns:
      The new config, every field checked.

    Raises:
      SettingError: an unknown name, or a bad value (the message names both).

    Example:
      >>> from_mapping(Config(), {"seeds": 3}).seeds
      3
      >>> from_mapping(Config(), {"seed": 3}, where="run.toml: config.")
      Traceback (most recent call last):
      ...
      jaxprecond.checks.SettingError: run.toml: config.seed is not a setting of Config; \
settings: chunk_size, group_size, memory_budget, root_seed, seeds
    """
    known = checked_fields(base)
    for name in values:
        if name not in known:
            raise SettingError(
                f"{where}{name} is not a setting of {type(base).__name__}; "
                f"settings: {', '.join(sorted(known))}"
            )
    try:
        return dataclasses.replace(base, **values)
    except SettingError as error:
        raise SettingError(f"{where}{error}") from None


def to_json(config) -> dict:
    """The settings of ``config`` as JSON values (tuples become lists).

    Example:
      >>> to_json(Config(seeds=2))["seeds"]
      2
    """
    return {name: _plain(getattr(config, name)) for name in checked_fields(config)}


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def add_options(parser: argparse.ArgumentParser, config_class) -> None:
    """An option per setting of ``config_class``; each defaults to ``None`` (the preset's value).

    Example:
      >>> parser = argparse.ArgumentParser()
      >>> add_options(parser, Config)
      >>> vars(parser.parse_args(["--seeds", "3"]))["seeds"], parser.parse_args([]).chunk_size
      (3, None)
    """
    for name, field in checked_fields(config_class).items():
        meta, check = field.metadata, field.metadata["check"]
        if meta["cli"] is False:
            continue
        options = dict(dest=name, default=None, help=meta["help"])
        if isinstance(check, Values) and check.type is bool:
            options["action"] = "store_true"
        elif isinstance(check, Values):
            options.update(type=check.type, choices=check.choices)
            if check.listed:
                options["nargs"] = "*" if check.empty else "+"
        elif isinstance(check, Pairs):
            options.update(nargs=2, action="append", metavar=("NAME", "VALUE"))
        options.update(meta["cli"] or {})
        parser.add_argument(meta["flag"] or "--" + name.replace("_", "-"), **options)


def preset_with(presets: Mapping, args: argparse.Namespace):
    """The preset named by ``args.preset`` with every option given replacing its value.

    Example:
      >>> args = argparse.Namespace(preset="small", seeds=2, chunk_size=None)
      >>> preset_with({"small": Config(seeds=8, chunk_size=4)}, args)
      Config(seeds=2, root_seed=0, chunk_size=4, memory_budget=None, group_size=None)
    """
    base = presets[args.preset]
    given = {k: v for k, v in vars(args).items() if k in checked_fields(base) and v is not None}
    return dataclasses.replace(base, **given)
