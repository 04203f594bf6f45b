"""`python -m common ...`: one entry point; each command group lives in `common/commands/`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from common.errors import UserError

# Each module defines `register(subparsers)`, which adds its command with `set_defaults(func=...)`.
# A run imports only the module of the command it names (`enhance` never loads the metrics, pystoi
# or scipy.signal of `evaluate`); the others are listed by name and the help line here, which a
# test keeps equal to the help each module registers.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("common.commands.data", "prepare and check data"),
    "evaluate": (
        "common.commands.evaluate",
        "PESQ/STOI/ESTOI/SI-SDR against clean files, and DNSMOS (also without them)",
    ),
    "train": ("common.commands.train", "train a model"),
    "enhance": ("common.commands.enhance", "enhance audio files with a checkpoint"),
    "export": ("common.commands.export", "export a checkpoint to ONNX (fp32 or int8)"),
}


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line reported like every other: one line, exit 2.

    (argparse prints the whole usage block first; `--help` still shows it.) Sub-commands get
    this class too, as argparse builds them with the parent's class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _named_command(argv: Sequence[str]) -> str | None:
    """The command `argv` names: its first word that is not an option (the top level has none
    but -h)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of `python -m common`. Given the command line `argv`, only the module of the
    command it names is imported, and the other commands are listed by their help line; without
    it, every command is registered in full (documentation, tests)."""
    parser = OneLineArgumentParser(prog="python -m common", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = None if argv is None else _named_command(argv)
    for name, (module, help_line) in COMMANDS.items():
        if argv is None or name == wanted:
            importlib.import_module(module).register(sub)
        else:  # listed by `--help` and accepted as a choice, never parsed (not the named command)
            sub.add_parser(name, help=help_line, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warnings
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
