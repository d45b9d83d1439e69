"""Run native engine code (llama.cpp, torch, vLLM) in a child process, so that an abort inside it
fails one test with the engine's own message instead of killing pytest.

    from _isolate import run_isolated
    result = run_isolated(some_module_level_function, arg1, arg2, timeout=300)

The function is imported in a fresh `python` by its module (the test file itself works: its
folder goes on the child's sys.path) and called with the pickled arguments; its return value comes
back pickled. If the child raises, dies from a signal or times out, the calling test fails with
how it ended, the engine's error line (`dsdeploy.serve.loading.engine_error_line`) and the tail of
its stderr. `run_child()` returns the outcome instead of failing, for tests that expect a death.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dsdeploy.serve.loading import describe_exit, engine_error_line

_CHILD = r"""
import importlib, os, pickle, sys, traceback
src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    folder, module, qualname, args, kwargs = pickle.load(f)
if folder and folder not in sys.path:
    sys.path.insert(0, folder)
try:
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    value = obj(*args, **kwargs)
except BaseException:
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)
with open(dst, "wb") as f:
    pickle.dump(value, f)
sys.stdout.flush(); sys.stderr.flush()
os._exit(0)  # skip interpreter teardown: native destructors have nothing left to tell us
"""


@dataclass
class ChildOutcome:
    ok: bool
    value: Any
    returncode: int | None
    stderr: str

    @property
    def how(self) -> str:
        return "timed out" if self.returncode is None else describe_exit(self.returncode)

    @property
    def error_line(self) -> str:
        return engine_error_line(self.stderr)

    def report(self, what: str) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[-30:])
        return f"{what} in a child process: {self.how}: {self.error_line}\n--- stderr tail ---\n{tail}"


def run_child(
    func: Callable[..., Any], *args: Any, timeout: float = 600, env: dict[str, str] | None = None, **kwargs: Any
) -> ChildOutcome:
    """Call `func(*args, **kwargs)` in a fresh Python process and report how it went."""
    module = sys.modules[func.__module__]
    folder = str(Path(module.__file__).resolve().parent) if getattr(module, "__file__", None) else ""
    with tempfile.TemporaryDirectory(prefix="dsdeploy-child-") as d:
        src, dst = os.path.join(d, "call.pkl"), os.path.join(d, "result.pkl")
        with open(src, "wb") as f:
            pickle.dump((folder, func.__module__, func.__qualname__, args, kwargs), f)
        try:
            r = subprocess.run(
                [sys.executable, "-c", _CHILD, src, dst],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=timeout,
                env=env,
            )
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
            return ChildOutcome(False, None, None, err)
        stderr = r.stderr.decode(errors="replace")
        if r.returncode != 0 or not os.path.exists(dst):
            return ChildOutcome(False, None, r.returncode, stderr)
        with open(dst, "rb") as f:
            return ChildOutcome(True, pickle.load(f), 0, stderr)


def run_isolated(
    func: Callable[..., Any], *args: Any, timeout: float = 600, env: dict[str, str] | None = None, **kwargs: Any
) -> Any:
    """`func(*args, **kwargs)` run in a child process; the test fails with the child's message if
    it doesn't return."""
    out = run_child(func, *args, timeout=timeout, env=env, **kwargs)
    if not out.ok:
        pytest.fail(out.report(func.__qualname__), pytrace=False)
    return out.value


def require_module(name: str, reason: str | None = None) -> None:
    """Skip the test unless `name` is installed, without importing it here (importing llama_cpp or
    torch loads their native libraries into the pytest process; the child imports them)."""
    import importlib.util

    if importlib.util.find_spec(name) is None:
        pytest.skip(reason or f"{name} is not installed", allow_module_level=True)
