"""Where a value a user gives is checked: the configuration dataclasses call these in their
`__post_init__` (so the command line, the notebooks and the demo all pass through them), and the
command lines use the argparse types below for options that set no configuration field.

A bad value raises `SettingError`, a `UserError` that knows the field (`train.batch_size`), the
value and what is allowed. Its message names the field as a notebook or recipe writes it
(`train.batch_size=0: must be a whole number from 1 to 65536`); the command line renames it to
the option the user typed (`--batch-size 0: ...`, see common.cli.FLAG_FIELDS).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from common.errors import UserError


def show(value: Any, typed: bool = False) -> str:
    """A value as a recipe holds it (`typed`: as typed on a command line, text unquoted)."""
    if typed and isinstance(value, str) and value.strip() == value and value:
        return value
    if typed and isinstance(value, list | tuple):
        return " ".join(show(v, typed) for v in value)
    return repr(value)


class SettingError(UserError):
    """A configuration field with a value it does not allow."""

    def __init__(self, field: str, value: Any, rule: str, source: str = "") -> None:
        self.field, self.value, self.rule, self.source = field, value, rule, source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}={show(value)}: {rule}")

    def named(self, name: str) -> UserError:
        """The same error, naming the setting as `name` (a command-line option)."""
        return UserError(f"{name} {show(self.value, typed=True)}: {self.rule}")

    def within(self, source: str) -> SettingError:
        """The same error, saying where the value came from (a recipe file)."""
        return SettingError(self.field, self.value, self.rule, source)


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    def fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"

    if lo is not None and hi is not None and not lo_open and not hi_open:
        return f"from {fmt(lo)} to {fmt(hi)}"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {fmt(lo)}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {fmt(hi)}")
    return " and ".join(parts)


def number(
    field: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    whole: bool = False,
    optional: bool = False,
) -> Any:
    """`value` if it is a finite number (an int when `whole`) in the range, else SettingError."""
    if value is None and optional:
        return value
    kind = "a whole number" if whole else "a finite number"
    limits = _range_text(lo, hi, lo_open, hi_open)
    rule = f"must be {kind}" + (f" {limits}" if limits else "")
    if optional:
        rule += " (or none)"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingError(field, value, rule)
    if whole and not isinstance(value, int):
        raise SettingError(field, value, rule)
    if not math.isfinite(value):
        raise SettingError(field, value, rule)
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise SettingError(field, value, rule)
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise SettingError(field, value, rule)
    return value


def choice(field: str, value: Any, options: Iterable[Any]) -> Any:
    options = tuple(options)
    if value not in options or isinstance(value, bool) != isinstance(options[0], bool):
        raise SettingError(field, value, f"use one of {', '.join(map(str, options))}")
    return value


def flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingError(field, value, "must be true or false")
    return value


def text(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingError(field, value, "must be a non-empty text")
    return value


# --- argparse types for options that set no configuration field -------------------------------


def _argtype(parse: Callable[[str], Any], check: Callable[[Any], Any]) -> Callable[[str], Any]:
    def convert(text_value: str) -> Any:
        try:
            value = parse(text_value.strip())
        except ValueError:
            value = text_value
        try:
            return check(value)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(f"{text_value!r}: {exc.rule}") from None

    return convert


def number_arg(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Callable[[str], float]:
    """A finite float in the range (argparse `type=`)."""
    return _argtype(float, lambda v: number("", v, lo, hi, lo_open=lo_open, hi_open=hi_open))


def whole_arg(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """A whole number in the range (argparse `type=`)."""
    return _argtype(int, lambda v: number("", v, lo, hi, whole=True))


def path_arg(text_value: str) -> str:
    """A file or folder name (argparse `type=`): not empty (an empty path would mean `.`)."""
    if not text_value.strip():
        raise argparse.ArgumentTypeError(f"{text_value!r}: give a file or folder name")
    return text_value


MAX_PORT = 65535
port_arg = whole_arg(1, MAX_PORT)
MAX_SEED = 2**32 - 1  # what numpy's and every worker's seeding accepts
seed_arg = whole_arg(0, MAX_SEED)


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line reported like every other: one line, exit 2.

    (argparse prints the whole usage block first; `--help` still shows it.) Sub-commands get
    this class too, as argparse builds them with the parent's class.
    """

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # argparse drops a "--" given as an option's value (`--segment=--`), leaving the option
        # an empty list that no `type=` saw; the value "--" goes through `type=` like any other.
        if action.option_strings and arg_strings == ["--"] and action.nargs in (None, "?"):
            return self._get_value(action, "--")
        return super()._get_values(action, arg_strings)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")
