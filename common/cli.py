"""`python -m common ...`: one entry point; each command group lives in `common/commands/`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m common", description=__doc__)
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
