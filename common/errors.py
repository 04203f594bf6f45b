"""The one exception type that reaches a user as a single line instead of a traceback, and the
runner every command's `main` uses to turn it into that line and exit status 2."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable


class UserError(Exception):
    """A problem the user can fix: the message names the file or setting and what to do."""


def one_line(message: str) -> str:
    """`message` on one line: control characters (a newline in a file name) shown escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in message)


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    return f"warning: {message}\n"


def warnings_on_one_line() -> None:
    """Warnings print as `warning: MESSAGE`: no file, line or category (a command's output)."""
    warnings.formatwarning = _one_line_warning


def exit_status(
    action: Callable[[], int | None], describe: Callable[[UserError], str] = str
) -> int:
    """Run a command's body: its exit status (None: 0); for a UserError, one `error: ...` line
    on stderr per problem it lists and one for itself (`describe`d), and 2; for Ctrl-C,
    "interrupted" and 130. Never a traceback for either."""
    try:
        return int(action() or 0)
    except UserError as exc:
        for problem in getattr(exc, "problems", []):
            print(f"error: {one_line(str(problem))}", file=sys.stderr)
        print(f"error: {one_line(describe(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
