"""The library stays readable: small modules with one job each, and a training loop that is
only the loop (issue 22's limits; raise them only with a reason in docs/CONVENTIONS.md)."""

from __future__ import annotations

import ast
from pathlib import Path

COMMON = Path(__file__).resolve().parents[1] / "common"
MAX_MODULE_LINES = 450
MAX_TRAIN_MODULE_LINES = 350
MAX_TRAINER_LINES = 250


def test_no_library_module_is_longer_than_the_limit():
    long = {
        str(path.relative_to(COMMON)): n
        for path in COMMON.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these by job: {long}"


def test_the_trainer_is_the_loop():
    source = (COMMON / "train.py").read_text(encoding="utf-8")
    assert len(source.splitlines()) <= MAX_TRAIN_MODULE_LINES
    trainer = next(
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == "Trainer"
    )
    assert trainer.end_lineno - trainer.lineno + 1 <= MAX_TRAINER_LINES
