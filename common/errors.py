"""The one exception type that reaches a user as a single line instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: the message names the file or setting and what to do."""
