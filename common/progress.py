"""Progress for loops: a tqdm bar in a terminal, plain progress lines everywhere else.

A notebook (Jupyter, papermill, Kaggle) is not a terminal: tqdm's text bar goes to stderr, where
every carriage-return update piles up in the saved output and the rendered HTML shows it as a red
block. There, and in logs, progress is a few printed lines instead ("epoch 2/30: 120/240 (50%),
0:45 elapsed, loss=0.0321"), at most one per `every_s` seconds plus one when the loop ends.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

EVERY_S = 60.0


def _interactive() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressLines:
    """The part of tqdm's interface the library uses (iterate, update, set_postfix, close),
    printing plain lines to stdout."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        every_s: float = EVERY_S,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit = total, desc, unit
        self.n = initial
        self.every_s = every_s
        self.start = self.last = time.monotonic()
        self.postfix = ""
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, **values: object) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def line(self, final: bool = False) -> str:
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        elapsed = _clock(time.monotonic() - self.start)
        when = f"done in {elapsed}" if final else f"{elapsed} elapsed"
        head = f"{self.desc}: " if self.desc else ""
        tail = f", {self.postfix}" if self.postfix else ""
        return f"{head}{done} {self.unit}{pct}, {when}{tail}"

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            print(self.line(), flush=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            print(self.line(final=True), flush=True)


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    disable: bool = False,
    initial: int = 0,
    every_s: float = EVERY_S,
    **tqdm_kwargs: Any,
) -> Any:
    """A tqdm bar in a terminal, `ProgressLines` elsewhere; with `disable`, a silent pass-through."""
    if not disable and not _interactive():
        return ProgressLines(iterable, total, desc, unit, initial, every_s)
    from tqdm import tqdm

    return tqdm(
        iterable, total=total, desc=desc, unit=unit, disable=disable, initial=initial, **tqdm_kwargs
    )
