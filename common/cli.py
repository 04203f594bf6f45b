"""`python -m common ...`: one entry point; each command group lives in `common/commands/`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from typing import NoReturn

from common.errors import UserError

# Each module defines `register(subparsers)`, which adds its commands with `set_defaults(func=...)`.
COMMAND_MODULES = (
    "common.commands.data",
    "common.commands.evaluate",
    "common.commands.train",
    "common.commands.enhance",
    "common.commands.export",
)


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line reported like every other: one line, exit 2.

    (argparse prints the whole usage block first; `--help` still shows it.) Sub-commands get
    this class too, as argparse builds them with the parent's class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="python -m common", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warnings
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
