"""One exception type for every user-facing error.

Edges (the CLI, the server) catch `UserError` and print its message once, with a non-zero exit and
no traceback. Anything else that escapes is a bug.
"""

from __future__ import annotations

import difflib


class UserError(Exception):
    """Bad input: the message says what to fix."""


def unknown_id(kind: str, value: str, known: list[str]) -> UserError:
    """An error for an unknown catalog id that lists the closest known ids."""
    close = difflib.get_close_matches(value, known, n=4, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UserError(f"unknown {kind} '{value}'.{hint} Known {kind} ids: {', '.join(sorted(known))}")
