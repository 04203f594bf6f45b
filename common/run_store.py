"""A training run's folder: the one place its files are written, each whole or not at all.

    store = RunStore(out_dir)                       # writer=False in data-parallel ranks > 0
    store.save_checkpoints(["best.pt", "last.pt"], state)   # in this order: last.pt last
    store.write_json("history.json", trainer.summary())
    state = store.load_resume(out_dir / "last.pt")  # the checkpoint set made whole first

Every write goes through `common.atomic` (a temporary file beside the target, fsync, rename, the
usual permissions), so a run killed at any moment leaves each of its files whole or absent. The
files: `last.pt` (every epoch and at a stop), `best.pt`, `epoch_NNN.pt`, `history.json` (the
trainer's summary), `summary.json` (a notebook's run summary), and the evaluation's files and
figures, which `common.metrics`, `common.examples` and `common.plots` write through
`common.atomic` too. A folder holding any of RUN_FILE_PATTERNS holds a run, which `train` only
continues or replaces when told.

One save writes `best.pt` (and `epoch_NNN.pt`) first and `last.pt` last; a kill in between
leaves `best.pt` one save ahead of `last.pt`, which `load_resume` detects and repairs.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from common.atomic import atomic_write
from common.checkpoint import json_safe, load_checkpoint, save_checkpoint
from common.errors import UserError

RUN_FILE_PATTERNS = ("last.pt", "best.pt", "epoch_*.pt", "history.json", "summary.json")


def run_files(folder: str | Path) -> list[Path]:
    """The files of an earlier training run in `folder` (empty when there is none)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted({p for pattern in RUN_FILE_PATTERNS for p in folder.glob(pattern) if p.is_file()})


def write_json(path: str | Path, value: Any) -> Path:
    """`value` as indented JSON (NaN/inf as null), written atomically."""
    path = Path(path)
    with atomic_write(path) as f:
        f.write(json.dumps(json_safe(value), indent=2, allow_nan=False))
    return path


def _same_run_later(state: dict, other: dict) -> bool:
    # `other` continues `state`: same model, more steps, and `state`'s history as its beginning.
    history = list(state.get("history") or [])
    return (
        other.get("model_name") == state.get("model_name")
        and other.get("model_config") == state.get("model_config")
        and int(other.get("step", -1)) > int(state.get("step", -1))
        and list(other.get("history") or [])[: len(history)] == history
    )


def _holds_best_weights(state: dict) -> bool:
    # After a completed epoch that set a new best, the state's weights are the best ones.
    best = state.get("best_epoch")
    return best is not None and best == state.get("epoch") and not state.get("samples_in_epoch")


def load_resume_state(path: str | Path, *, repair: bool = True) -> dict:
    """The state to continue from `path` (normally OUT/last.pt), with its run's set made whole.

    A kill between a save's `best.pt` and its `last.pt` leaves best.pt one save ahead: that
    best.pt is the complete state the save was writing, so the run continues from it and (with
    `repair`) last.pt is rewritten from it. A folder written the other way round (last.pt first)
    can leave last.pt naming a best epoch whose weights only it holds: best.pt is rewritten from
    last.pt. Only one process of a data-parallel group should pass `repair=True`; every process
    reads the same state.
    """
    path = Path(path)
    state = load_checkpoint(path)
    best_path = path.parent / "best.pt"
    # Only last.pt is checked: resuming from an older epoch_NNN.pt on purpose is not a fault.
    if path.name != "last.pt" or not best_path.is_file():
        return state
    try:
        best = load_checkpoint(best_path)
    except UserError as exc:
        warnings.warn(f"{exc}; not used to check {path}", stacklevel=2)
        return state
    if _same_run_later(state, best):
        warnings.warn(
            f"{path}: {best_path.name} is one save ahead (step {best['step']} > {state['step']}): "
            f"the last save was interrupted; continuing from {best_path.name}",
            stacklevel=2,
        )
        if repair:
            save_checkpoint(path, best)
        return best
    if _holds_best_weights(state) and best.get("best_epoch") != state["best_epoch"]:
        warnings.warn(
            f"{best_path}: holds epoch {best.get('best_epoch')}, not the best epoch "
            f"{state['best_epoch']} that {path.name} names; rewritten from {path.name}",
            stacklevel=2,
        )
        if repair:
            save_checkpoint(best_path, state)
    return state


class RunStore:
    """The files of one run's folder. `writer=False` (data-parallel ranks other than 0) makes
    every write a no-op, so the trainer calls the store the same way in every process."""

    def __init__(self, folder: str | Path, *, writer: bool = True) -> None:
        self.folder = Path(folder)
        self.writer = writer

    def path(self, name: str) -> Path:
        return self.folder / name

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def create(self) -> None:
        if self.writer:
            self.folder.mkdir(parents=True, exist_ok=True)

    def save_checkpoints(self, names: list[str], state: dict) -> None:
        """`state` under each name, in order (the caller puts last.pt last)."""
        if self.writer:
            for name in names:
                save_checkpoint(self.path(name), state)

    def write_json(self, name: str, value: Any) -> Path:
        path = self.path(name)
        if self.writer:
            write_json(path, value)
        return path

    def load_resume(self, path: str | Path) -> dict:
        """The state to resume from `path`, the checkpoint set repaired by the writer only."""
        return load_resume_state(path, repair=self.writer)

    def files(self) -> list[Path]:
        return run_files(self.folder)
