"""The notebook's time budget, counted from its first cell.

Kaggle stops a session 12 hours after it starts, whatever the notebook is doing then: installs,
archive extraction, training, evaluation and the figures all count. The generated notebook's
first code cell records when it started (`LSE_NOTEBOOK_STARTED`); training gets what is left
after a reserve for the evaluation, and the evaluation stops early rather than run past the end.

`TrainBudget` is the trainer's own clock for one `fit` call: its `max_minutes` deadline, the
time kept back for the validation and saving that follow the last step, and the step rate that
fits a cosine schedule to the deadline. The clock is wall time, or this process's CPU time
(`train.budget_clock = "cpu"`): on a shared machine a CPU-time budget gives every run the same
compute whatever else is running, which is what comparing recipes "at equal budget" needs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError

NOTEBOOK_STARTED_ENV = "LSE_NOTEBOOK_STARTED"
# Steps of a session timed before its rate is trusted (the first steps include the data
# loader's start-up and would underestimate it).
RATE_MIN_STEPS = 20


def _process_start_time() -> float | None:
    """When this (kernel) process started, from /proc; None where there is no /proc."""
    try:
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    return boot + int(stat[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time in ticks


def notebook_started_at() -> float:
    """`time.time()` of the notebook's first cell, else of the kernel's start, else now."""
    value = os.environ.get(NOTEBOOK_STARTED_ENV)
    if value:
        try:
            return float(value)
        except ValueError:
            pass
    return _process_start_time() or time.time()


@dataclass(frozen=True)
class SessionBudget:
    """`limit_minutes` of wall-clock time from `started_at` (a `time.time()` value)."""

    started_at: float
    limit_minutes: float

    @classmethod
    def for_notebook(cls, limit_minutes: float) -> SessionBudget:
        return cls(notebook_started_at(), limit_minutes)

    def elapsed_s(self) -> float:
        return time.time() - self.started_at

    def remaining_s(self) -> float:
        return 60.0 * self.limit_minutes - self.elapsed_s()

    def training_minutes(self, reserve_minutes: float) -> float:
        """What training may use: the time left less `reserve_minutes` for what follows it."""
        minutes = (self.remaining_s() / 60.0) - reserve_minutes
        if minutes < 1.0:
            raise UserError(
                f"max_minutes={self.limit_minutes:g}: {self.elapsed_s() / 60:.1f} min have gone "
                f"before training and {reserve_minutes:g} min are kept for the evaluation, which "
                "leaves no time to train: raise max_minutes (Kaggle stops a session at 720) or "
                "lower eval_reserve_minutes"
            )
        return minutes


# What `train.budget_clock` may name: wall-clock time, or the CPU time of this process (all its
# threads; DataLoader worker processes are not counted, so CPU budgets train with 0 workers).
BUDGET_CLOCKS = {"wall": "monotonic", "cpu": "process_time"}  # functions of `time`


@dataclass
class TrainBudget:
    """One training session's clock, started by `start` at each `fit`."""

    started: float = 0.0
    start_step: int = 0
    deadline: float | None = None  # None: no time limit
    reserve_s: float = 0.0  # needed after the last step: validation and saving (kept across fits)
    clock: str = "wall"  # a key of BUDGET_CLOCKS

    def now(self) -> float:
        return getattr(time, BUDGET_CLOCKS[self.clock])()

    def start(self, max_minutes: float | None, step: int) -> None:
        self.started, self.start_step = self.now(), step
        self.deadline = self.started + 60 * max_minutes if max_minutes else None

    def elapsed_s(self) -> float:
        return self.now() - self.started

    def out_of_time(self) -> bool:
        """This process's view: no time left for another step plus the reserve."""
        return self.deadline is not None and self.now() + self.reserve_s >= self.deadline

    def steps_by_deadline(self, step: int) -> float | None:
        """The step count this session's rate reaches by the deadline (less the reserve); None
        without a deadline or before `RATE_MIN_STEPS` steps have been timed."""
        done = step - self.start_step
        if self.deadline is None or done < RATE_MIN_STEPS:
            return None
        # Re-estimated at every call, so it follows a machine that speeds up or slows down.
        now = self.now()
        rate = done / max(now - self.started, 1e-6)
        return step + rate * max(0.0, self.deadline - self.reserve_s - now) + 1
