"""`python -m common ...`: one entry point; each command group lives in `common/commands/`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from common.checks import OneLineArgumentParser, SettingError
from common.errors import UserError, exit_status, warnings_on_one_line

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


# The configuration field each option sets, by command. Values are checked once, where the
# configuration is made (common.checks); an error about a field set by one of these options
# names the option as the user typed it (`--batch-size 0: ...`), not the field.
FLAG_FIELDS: dict[str, dict[str, str]] = {
    "train": {
        "--model": "model.name",
        "--data-root": "data.root",
        "--work-dir": "data.work_dir",
        "--segment-seconds": "data.segment_seconds",
        "--val-fraction": "data.val_fraction",
        "--mix-items": "data.mix_items",
        "--snr": "data.snr_db",
        "--exclude-noncommercial": "data.exclude_noncommercial",
        "--n-fft": "stft.n_fft",
        "--stft-hop": "stft.hop_length",
        "--epochs": "train.epochs",
        "--max-minutes": "train.max_minutes",
        "--max-steps": "train.max_steps",
        "--batch-size": "train.batch_size",
        "--lr": "train.lr",
        "--scheduler": "train.scheduler",
        "--warmup-epochs": "train.warmup_epochs",
        "--patience": "train.patience",
        "--checkpoint-every": "train.checkpoint_every",
        "--seed": "train.seed",
        "--workers": "train.num_workers",
        "--device": "train.device",
    },
    "enhance": {"--vad-floor-db": "vad.floor_db", "--vad-fade-ms": "vad.fade_ms"},
}


def option_for(command: str, field: str) -> str | None:
    """The option of `command` that sets `field`, if one does."""
    return next((o for o, f in FLAG_FIELDS.get(command, {}).items() if f == field), None)


def add_command(
    sub: argparse._SubParsersAction, name: str, doc: str | None, *, raw: bool = True
) -> argparse.ArgumentParser:
    """The parser of command `name`, for its module's `register`: the help line is COMMANDS'
    (listed by `--help` without importing the module), the description `doc` (the module's
    docstring, shown as written unless `raw` is False)."""
    kwargs = {"formatter_class": argparse.RawDescriptionHelpFormatter} if raw else {}
    return sub.add_parser(name, help=COMMANDS[name][1], description=doc, **kwargs)


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


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The (sub-)parser that parsed `args` (e.g. the one of `data check`)."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or getattr(args, subs[0].dest, None) not in subs[0].choices:
            return parser
        parser = subs[0].choices[getattr(args, subs[0].dest)]


def naming_the_option(message: str, parser: argparse.ArgumentParser, args) -> str:
    """A message about a path the user gave (`nan: checkpoint not found`), naming the option
    that gave it (`--ckpt nan: checkpoint not found`)."""
    for action in _command_parser(parser, args)._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or not isinstance(value, str | Path) or str(value) == "":
            continue
        if message.startswith(f"{value}:") or message.startswith(f"{value} "):
            return f"{max(action.option_strings, key=len)} {message}"
    return message


def main(argv: list[str] | None = None) -> int:
    warnings_on_one_line()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)

    def describe(exc: UserError) -> str:
        if isinstance(exc, SettingError):
            option = None if exc.source else option_for(args.command, exc.field)
            return str(exc.named(option) if option else exc)
        return naming_the_option(str(exc), parser, args)

    return exit_status(lambda: args.func(args), describe)
