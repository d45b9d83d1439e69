"""Writing a command's output file: an unwritable path is one clear message (exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

from dsdeploy.errors import UserError


def write_text(path: Path, text: str, mode: int | None = None) -> None:
    try:
        path.write_text(text, encoding="utf-8")
        if mode is not None:
            path.chmod(mode)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
