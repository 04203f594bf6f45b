"""Hostile values for every option of every `python -m common` command and of the demo (issue 21).

Hypothesis draws nan, inf, negatives, zero, huge numbers, text and empty strings (and, for
`--set`, any RunConfig field with such a value). Each command runs in-process up to the point
where its real work would start (data preparation, training, export, scoring, serving), which
is replaced by a stand-in that stops the run; so an example costs milliseconds, not a training.
The property: the value is either accepted (the run gets to its work) or refused with exit 2 and
exactly one `error:` line that names the option (or the field), and never a traceback. A value
that cannot be a number (nan, inf, text) is never accepted by a numeric option.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
from dataclasses import fields, is_dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.checkpoint import SHIPPED_CHECKPOINT
from common.checks import number_arg, port_arg, seed_arg
from common.cli import build_parser, main
from common.config import RunConfig
from common.demo import demo_main, demo_parser

# Per command: a few seconds each, the same examples every run (CI). HOSTILE_EXAMPLES=N searches
# N random examples instead (a longer hunt, by hand).
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "40"))
DERANDOMIZE = "HOSTILE_EXAMPLES" not in os.environ
HOSTILE_NUMBERS = ["nan", "NaN", "inf", "-inf", "-1", "0", "-0.0", "1e308", "1e12", "9" * 40]
HOSTILE_TEXT = ["", " ", "abc", "1,5", "0x10", "--", "None", "true", "[]", "{}", "é"]
hostile = st.one_of(
    st.sampled_from(HOSTILE_NUMBERS + HOSTILE_TEXT),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.text(max_size=8),
)
# argparse types whose value must be a number (built-ins and common.checks' types)
NUMERIC_TYPES = {int, float}


class Reached(Exception):
    """The run got past its argument checks to its real work."""


def _stop(*args, **kwargs):
    raise Reached


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A tiny folder of pairs and one WAV file: valid values for the required arguments."""
    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    for i in range(2):
        clean = (0.1 * rng.standard_normal(16000)).astype(np.float32)
        for sub, wav in (("clean", clean), ("noisy", clean + 0.05 * rng.standard_normal(16000))):
            (root / "pairs" / sub).mkdir(parents=True, exist_ok=True)
            sf.write(root / "pairs" / sub / f"p{i}.wav", wav.astype(np.float32), 16000)
    return {"root": root, "pairs": root / "pairs", "wav": root / "pairs" / "noisy" / "p0.wav"}


@pytest.fixture(autouse=True)
def stop_before_work(monkeypatch):
    """Every command's real work is replaced by `Reached`."""
    import common.commands.data as data_cmd
    import common.commands.evaluate as evaluate_cmd
    import common.commands.train as train_cmd
    import common.demo as demo
    import common.enhance_files as enhance_files
    import common.export as export
    import common.onnx_stream as onnx_stream
    import common.synthetic as synthetic

    for module, name in [
        (train_cmd, "prepare_data"),
        (train_cmd, "train"),
        (enhance_files, "enhance_path"),
        (export, "export_onnx"),
        (onnx_stream, "export_streaming_onnx"),
        (evaluate_cmd, "evaluate_pairs"),
        (data_cmd, "prepare_kaggle_data"),
        (data_cmd, "make_testset"),
        (data_cmd, "real_corpus_splits"),
        (data_cmd, "check_alignment"),
        (data_cmd, "make_paired_corpus"),
        (synthetic, "make_synthetic_corpus"),
        (demo, "check_port_free"),
        (demo, "DemoEngine"),
    ]:
        monkeypatch.setattr(module, name, _stop)
    import common.commands.enhance as enhance_cmd

    monkeypatch.setattr(enhance_cmd, "enhance_path", _stop)


def _run(entry, argv: list[str]) -> tuple[str, int | None, str]:
    """("reached" | "exit", exit code, stderr) of one in-process run."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = entry(argv)
        except Reached:
            return "reached", None, err.getvalue()
        except SystemExit as exc:
            code = exc.code
    return "exit", code, err.getvalue()


def _subcommands(parser: argparse.ArgumentParser, path=()) -> dict[tuple, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_subcommands(sub, (*path, name)))
    return found or {path: parser}


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options that take a value (not flags, not help)."""
    return [
        a
        for a in parser._actions
        if a.option_strings and a.nargs != 0 and not isinstance(a, argparse._HelpAction)
    ]


def _is_numeric(action: argparse.Action) -> bool:
    return action.type in NUMERIC_TYPES or getattr(action.type, "__qualname__", "").startswith(
        "_argtype"
    )


def _base(command: tuple, inputs: dict[str, Path], tmp: Path) -> list[str]:
    """Valid values for the command's required arguments."""
    return {
        ("data", "extract"): [str(inputs["root"]), "--work", str(tmp / "work")],
        ("data", "make-synthetic"): [str(tmp / "synthetic")],
        ("data", "make-testset"): ["--data", str(inputs["root"]), "--out", str(tmp / "testset")],
        ("data", "check"): ["--pairs", str(inputs["pairs"])],
        ("data", "make-pairs"): ["--data", str(inputs["root"]), "--out", str(tmp / "made")],
        ("evaluate",): ["--pairs", str(inputs["pairs"]), "--out", str(tmp / "eval")],
        ("train",): ["--recipe", "lite", "--out", str(tmp / "run")],
        ("enhance",): [
            "--ckpt",
            str(SHIPPED_CHECKPOINT),
            "--no-progress",
            str(inputs["wav"]),
            str(tmp / "out.wav"),
        ],
        ("export",): ["--ckpt", str(SHIPPED_CHECKPOINT), "--out", str(tmp / "m.onnx")],
    }[command]


def _check(outcome: str, code, err: str, option: str, value: str, numeric: bool) -> None:
    assert "Traceback" not in err, err
    if outcome == "reached":
        assert not (numeric and not _finite_number(value)), f"{option} {value!r} was accepted"
        return
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, f"{option} {value!r}: exit {code}, stderr {err!r}"
    assert len(lines) == 1 and err.strip() == lines[0], f"{option} {value!r}: {err!r}"
    assert option in lines[0], f"{option} {value!r}: the error does not name it: {lines[0]}"


def _finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


COMMANDS = sorted(_subcommands(build_parser()))


def test_every_command_is_covered():
    assert {c[0] for c in COMMANDS} == {"data", "evaluate", "train", "enhance", "export"}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_hostile_values_for_every_option(command, inputs, tmp_path_factory):
    parser = _subcommands(build_parser())[command]
    options = _options(parser)
    tmp = tmp_path_factory.mktemp("run")
    base = _base(command, inputs, tmp)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(action=st.sampled_from(options), values=st.lists(hostile, min_size=2, max_size=2))
    def check(action, values):
        option = max(action.option_strings, key=len)
        n = action.nargs if isinstance(action.nargs, int) else 1
        args = [f"{option}={values[0]}"] if n == 1 else [option, *values[:n]]
        outcome, code, err = _run(main, [*command, *base, *args])
        _check(outcome, code, err, option, values[0], _is_numeric(action))

    check()


def _config_fields() -> list[str]:
    def walk(obj, prefix):
        for f in fields(obj):
            value = getattr(obj, f.name)
            if is_dataclass(value):
                yield from walk(value, f"{prefix}{f.name}.")
            elif f.name not in ("recipe", "description", "settings"):
                yield f"{prefix}{f.name}"

    return list(walk(RunConfig(), ""))


@settings(
    max_examples=3 * EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(field=st.sampled_from(_config_fields()), value=hostile)
def test_hostile_values_for_every_configuration_field(field, value, inputs, tmp_path_factory):
    """`train --set FIELD=VALUE`: what a notebook's overrides and a recipe go through too."""
    tmp = tmp_path_factory.mktemp("set")
    base = _base(("train",), inputs, tmp)
    outcome, code, err = _run(main, ["train", *base, "--set", f"{field}={value}"])
    assert "Traceback" not in err, err
    if outcome == "exit":
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(lines) == 1 and err.strip() == lines[0], err
        assert field in lines[0], f"{field}={value!r}: the error does not name it: {lines[0]}"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(values=st.lists(hostile, min_size=1, max_size=1), data=st.data())
def test_hostile_values_for_every_option_of_the_demo(values, data):
    options = _options(demo_parser())
    action = data.draw(st.sampled_from(options))
    option = max(action.option_strings, key=len)
    outcome, code, err = _run(demo_main, [f"{option}={values[0]}"])
    numeric = _is_numeric(action) or option == "--max-seconds"
    _check(outcome, code, err, option, values[0], numeric)


def test_argument_types_name_the_rule():
    for convert, good, bad in ((port_arg, "80", "99999"), (seed_arg, "0", "-1")):
        assert convert(good) == int(good)
        with pytest.raises(argparse.ArgumentTypeError, match="must be a whole number"):
            convert(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="finite"):
        number_arg(0, 1)("nan")
