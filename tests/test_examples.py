"""Every `python -m common ...` example in README.md and in each command's `--help` runs as printed.

Examples are collected, not copied here: lines of the README's code blocks and indented lines of
the help texts that start with the command. Each runs as a subprocess with only these changes:
- `.venv/bin/python` / `python` is this interpreter; `../shared/data` is the real data folder
  (the test skips without it);
- placeholders become real things: `IN` a folder with one short noisy recording, `CKPT` the
  shipped checkpoint, `DIR` after --pairs a folder of real pairs (after --noisy-only: `IN`), `N` 1; `OUT`, `X` and other
  output names stay as printed (relative to a fresh working folder);
- `[...]` in a synopsis is optional and left out; `train ...` means "the train example above,
  changed by what follows";
- training is shortened: one optimizer step (two when resuming) on 1-s crops, no loader
  processes, 16 mixtures per epoch when mixing; OUT/data (derived data: the synthetic
  corpus and its extraction) is copied from an earlier example with the same --out.
Each example runs in a fresh folder; one that reads a path an earlier example wrote
(--resume runs/lite/last.pt, --onnx build/lite.onnx) gets a copy of it, so the README's
sequences work as typed one after another, while alternatives do not see each other's outputs.
Out of scope: examples needing Kaggle (paths under /kaggle), `make` targets and other modules
(`builders`, `scripts` benchmarks, the fake Kaggle server).
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO, run_common

from common.checkpoint import SHIPPED_CHECKPOINT
from common.cli import build_parser

COMMAND = re.compile(r"^\s*(?:\S*/)?python3? -m common\b(.*)$")
SHORT_NOISY = ("pairs", "pesq_babble0db", "noisy", "speech.flac")  # one 3-s recording
PAIRS_FOR_DIR = ("pairs", "pesq_babble0db")


@dataclass
class Example:
    source: str  # "README.md" or "train --help"
    text: str  # as printed (continuations joined, comment dropped)
    args: list[str] = field(default_factory=list)  # after `python -m common`


def _join_continuations(lines: list[str]) -> list[str]:
    joined, buf = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        joined.append(buf + line)
        buf = ""
    return joined


def _examples_in(lines: list[str], source: str) -> list[Example]:
    found = []
    for line in _join_continuations(lines):
        m = COMMAND.match(line)
        if not m:
            continue
        text = line.split(" #", 1)[0].strip()
        # A synopsis marks optional parts with [...]: run it without them.
        # Only a bracket that opens a word: `--set data.snr_db=[-5,20]` is a value.
        rest = re.sub(r"(?<!\S)\[[^\]]*\]", " ", m.group(1).split(" #", 1)[0])
        found.append(Example(source, text, shlex.split(rest)))
    return found


def readme_examples() -> list[Example]:
    lines, inside = [], False
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if inside:
            lines.append(line)
    return _examples_in(lines, "README.md")


def help_examples() -> list[Example]:
    found = []

    def walk(parser, path: list[str]) -> None:
        # Indented lines only: a sentence that mentions a command in backticks is no example.
        text = "\n".join(filter(None, (parser.description, parser.epilog)))
        indented = [ln for ln in text.splitlines() if ln.startswith((" ", "\t"))]
        found.extend(_examples_in(indented, f"{' '.join(path)} --help"))
        for action in parser._actions:
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                for name, sub in choices.items():
                    walk(sub, [*path, name])

    walk(build_parser(), [])
    return found


def _expand_ellipsis(examples: list[Example]) -> list[Example]:
    # `train ... --resume X`: the last full example of the same command, then the new options.
    last_full: dict[str, list[str]] = {}
    for ex in examples:
        if "..." in ex.args:
            base = last_full.get(ex.args[0], [ex.args[0]])
            i = ex.args.index("...")
            ex.args = base + ex.args[1:i] + ex.args[i + 1 :]
        elif ex.args and not any(a.startswith("/kaggle") for a in ex.args):
            last_full[ex.args[0]] = list(ex.args)
    return examples


def all_examples() -> list[Example]:
    return [
        ex
        for ex in _expand_ellipsis(readme_examples()) + _expand_ellipsis(help_examples())
        if not any(a.startswith("/kaggle") for a in ex.args)  # Kaggle's input mount
    ]


EXAMPLES = all_examples()


def _option_value(args: list[str], option: str) -> str | None:
    values = [args[i + 1] for i, a in enumerate(args[:-1]) if a == option]
    return values[-1] if values else None


def _substitute(args: list[str], data: Path) -> list[str]:
    out = []
    for i, arg in enumerate(args):
        before = args[i - 1] if i else ""
        arg = arg.replace("../shared/data", str(data))
        if arg == "CKPT":
            arg = SHIPPED_CHECKPOINT.as_posix()
        elif arg == "DIR" and before == "--pairs":
            arg = str(data.joinpath(*PAIRS_FOR_DIR))
        elif arg == "DIR" and before == "--noisy-only":
            arg = "IN"  # recordings without a clean reference
        elif arg == "N":
            arg = "1"
        out.append(arg)
    if out and out[0] == "train":
        # One step (two when continuing a run that made one), in this process.
        steps = "2" if "--resume" in out else "1"
        out += ["--max-steps", steps, "--segment-seconds", "1", "--workers", "0", "--no-progress"]
        # Mixtures per epoch, when the data is mixed (a recipe may say so): the validation set
        # follows it down to one batch. Other data sources ignore it.
        out += ["--mix-items", "16"]
    return out


def _relative_inputs(args: list[str]) -> list[str]:
    """Relative paths the example reads (not the ones it writes)."""
    reads = []
    for i, arg in enumerate(args):
        before = args[i - 1] if i else ""
        if before in ("--resume", "--onnx", "--ckpt") and not Path(arg).is_absolute():
            reads.append(arg)
    return reads


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory) -> list[Path]:
    """Where earlier examples ran, newest last (a later example may use what they wrote)."""
    return []


def _fresh_workdir(root: Path, data: Path) -> Path:
    cwd = Path(root)
    (cwd / "checkpoints").symlink_to(REPO / "checkpoints")
    (cwd / "IN").mkdir()
    shutil.copy(data.joinpath(*SHORT_NOISY), cwd / "IN" / SHORT_NOISY[-1])
    return cwd


def test_examples_are_found():
    sources = {ex.source for ex in EXAMPLES}
    assert "README.md" in sources and "train --help" in sources
    texts = [ex.text for ex in EXAMPLES]
    assert any("--data synthetic" in t for t in texts)  # the example that used to fail


@pytest.mark.slow  # each example is a process; training ones take 10-30 s
@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.source}: {e.text[:70]}" for e in EXAMPLES])
def test_example_runs_as_printed(example, shared_data, tmp_path, workdirs):
    args = _substitute(example.args, shared_data)
    cwd = _fresh_workdir(tmp_path, shared_data)
    for rel in _relative_inputs(args):
        if (cwd / rel).exists():
            continue
        earlier = next((d for d in reversed(workdirs) if (d / rel).exists()), None)
        assert earlier is not None, f"{rel}: no earlier example wrote it"
        top = Path(rel).parts[0]
        shutil.copytree(earlier / top, cwd / top, symlinks=True)
    out = _option_value(args, "--out")
    if args[0] == "train" and out and not (cwd / out / "data").exists():
        earlier = next((d for d in reversed(workdirs) if (d / out / "data").is_dir()), None)
        if earlier is not None:  # derived data only, never an earlier run's files
            shutil.copytree(earlier / out / "data", cwd / out / "data", symlinks=True)
    proc = run_common(*args, cwd=cwd, env={"SHARED_DATA": str(shared_data)})
    workdirs.append(cwd)
    assert "Traceback" not in proc.stderr, f"{example.text}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, (
        f"{example.source}: {example.text}\nran: {args}\n{proc.stderr[-3000:]}"
    )
