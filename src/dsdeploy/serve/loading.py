"""How llama.cpp loads a model here: the extra-buffer-types choice, the probe behind `auto`, and
turning an engine's dying words into one readable line.

**Extra buffer types.** llama.cpp's CPU backend may repack weights into "extra" buffer types at
load (`llama_model_params.use_extra_bufts`, llama.cpp's `--no-repack` turns it off): the AMX
buffer type on CPUs with AMX, the CPU_REPACK one (interleaved Q4_0/IQ4_NL/Q8_0 layouts) elsewhere.
With llama-cpp-python 0.3.36 built on a CPU with AMX, the Q8_0 deepseek2 graph then aborts in
`llama_context::graph_reserve` (`ggml-backend.cpp:1294: GGML_ASSERT(*cur_backend_id != -1)
failed`: some op has no backend that supports the repacked weights); with `use_extra_bufts` off the
same model loads and generates (issue #10). Machines differ, so `dsdeploy serve --extra-bufts`:

- `on`: llama.cpp's default (repack where the build can);
- `off`: plain CPU buffers (always loads; may be slower where repacking helps);
- `auto` (default): `probe_extra_bufts()` loads the model with extra buffer types in a child
  process and generates one token; if the child dies (an abort, any signal, any error), `off`.

`resolve_extra_bufts()` is the one place that decides; `dsdeploy serve`, the tests and the bench
scripts call it. It probes each model file once per process (keyed by path, size and mtime).

`Llama(...)` has no parameter for `use_extra_bufts` (0.3.36 builds `llama_model_params` inside
its constructor from `llama_model_default_params()` and ignores unknown keyword arguments), so
`load_llama()` swaps that function for one that sets the field, for the duration of the call.

**Test double.** With `$DSDEPLOY_TEST_EXTRA_BUFTS_ABORT=1`, every load with extra buffer types on
goes through ggml's own `ggml_abort()` with the AMX assert's text instead of loading: the engine's
real abort path (message, backtrace, SIGABRT) on a machine without AMX, so the `auto` fallback and
the startup-error message are tested everywhere. It is read only by `load_llama()`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

EXTRA_BUFTS_ENV = "DSDEPLOY_EXTRA_BUFTS"
EXTRA_BUFTS_MODES = ("auto", "on", "off")
DEFAULT_EXTRA_BUFTS = "auto"
TEST_ABORT_ENV = "DSDEPLOY_TEST_EXTRA_BUFTS_ABORT"
# The assert the AMX build hits (issue #10), reproduced by the test double.
AMX_ASSERT = ("ggml-backend.cpp", 1294, "*cur_backend_id != -1")
PROBE_TIMEOUT_S = 600.0  # a full-size model's load; a probe that takes longer counts as failed


# ------------------------------------------------------------------------------ GGUF header
def gguf_context_length(path: str | Path) -> int | None:
    """`<arch>.context_length` from a GGUF header (the training context); None when the file
    can't be read as GGUF or has no such key (the engine's load then reports the problem)."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path), "r")
        arch = reader.fields["general.architecture"].contents()
        f = reader.fields.get(f"{arch}.context_length")
        return int(f.contents()) if f is not None else None
    except Exception:  # the gguf package raises ValueError/struct/Key errors on bad files
        return None


# ------------------------------------------------------------------------------ loading
def _ggml_base() -> ctypes.CDLL:
    import llama_cpp

    return ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))


def simulate_amx_abort() -> None:
    """The test double: abort through ggml exactly as the AMX build does (never returns)."""
    file, line, cond = AMX_ASSERT
    try:
        lib = _ggml_base()
        lib.ggml_abort(file.encode(), line, b"GGML_ASSERT(%s) failed", cond.encode())
    finally:  # no libggml-base here: the same line and signal without it
        os.write(2, f"{file}:{line}: GGML_ASSERT({cond}) failed\n".encode())
        os.abort()


@contextlib.contextmanager
def _model_params(extra_bufts: bool) -> Iterator[None]:
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = extra_bufts
        return p

    lib.llama_model_default_params = params
    try:
        yield
    finally:
        lib.llama_model_default_params = original


def load_llama(model_path: str | Path, *, extra_bufts: bool, **kwargs: Any):
    """`llama_cpp.Llama(model_path, **kwargs)` with `use_extra_bufts` set as asked."""
    from llama_cpp import Llama

    if extra_bufts and os.environ.get(TEST_ABORT_ENV) == "1":
        simulate_amx_abort()
    with _model_params(extra_bufts):
        return Llama(model_path=str(model_path), **kwargs)


_keep: list = []  # ctypes callbacks must outlive every call into C


def report_engine_errors(fd: int) -> None:
    """Send llama.cpp's warning and error log lines and ggml's abort message to `fd` (a dup of the real
    stderr). llama-cpp-python points fd 2 at /dev/null while a model loads (verbose=False), which
    would swallow exactly the lines that say why a load failed. An abort then skips ggml's
    debugger backtrace: the one line that matters arrives on its own."""
    import llama_cpp

    def write(text: bytes) -> None:
        try:
            os.write(fd, text)
        except OSError:
            pass

    last = [0]

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, user_data) -> None:
        # ggml.h's ggml_log_level: 3 WARN, 4 ERROR, 5 CONT (continues the previous message).
        # (llama-cpp-python 0.3.36's own callback still maps the older enum, 3 = ERROR, so with
        # verbose=False it prints warnings and drops errors.)
        if level in (3, 4) or (level == 5 and last[0] in (3, 4)):
            write(text)
        if level != 5:
            last[0] = level

    abort_cb = ctypes.CFUNCTYPE(None, ctypes.c_char_p)

    @abort_cb
    def on_abort(message: bytes) -> None:
        write(b"engine abort: " + message + b"\n")

    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))
    try:
        lib = _ggml_base()
        lib.ggml_set_abort_callback.argtypes = [abort_cb]
        lib.ggml_set_abort_callback.restype = ctypes.c_void_p
        lib.ggml_set_abort_callback(on_abort)
    except (OSError, AttributeError):
        pass  # an older ggml: its abort prints to stderr itself
    _keep.extend([on_log, on_abort])


# ------------------------------------------------------------------------------ reading a death
_ABORT = re.compile(r"GGML_ASSERT\(.*\) failed|GGML_ABORT|^engine abort: |^\S+\.(?:c|cc|cpp|h|m):\d+: \S")
_LLAMA_ERROR = re.compile(r"error loading model|failed to (?:load|allocate|create|reserve|initialize)|^error: ", re.I)
_PY_ERROR = re.compile(r"^(?:[A-Za-z_][\w.]*)?(?:Error|Exception|Interrupt|Exit)\b: |^Fatal Python error: ")
_NOISE = re.compile(
    r"^(?:#\d+\s|\[Thread |\[Inferior |\[New |Using host libthread_db|\d+\s|0x[0-9a-f]+ in |Traceback |File \"|"
    r"\.\.\./|.*: No such file or directory\.?$)"
)


def engine_error_line(text: str) -> str:
    """The line of a dead engine's stderr that says why: ggml's assert/abort message first, else
    llama.cpp's first error line, else the Python exception, else the last line that isn't
    debugger backtrace noise."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # (pattern, which hit): the first assert and the first llama.cpp error are the cause (what
    # follows is fallout); of Python's exception lines, the last is the one raised
    for pattern, index in ((_ABORT, 0), (_LLAMA_ERROR, 0), (_PY_ERROR, -1)):
        hits = [line for line in lines if pattern.search(line)]
        if hits:
            return hits[index].removeprefix("engine abort: ")
    rest = [line for line in lines if not _NOISE.match(line)]
    return (rest or lines or [""])[-1]


def is_engine_error(line: str) -> bool:
    """A stderr line worth keeping even when a long backtrace follows it."""
    line = line.strip()
    return bool(_ABORT.search(line) or _LLAMA_ERROR.search(line) or _PY_ERROR.search(line))


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


# ------------------------------------------------------------------------------ the decision
@dataclass(frozen=True)
class ExtraBufts:
    """Whether to load with extra buffer types, and why (for the log)."""

    use: bool
    mode: str
    reason: str

    @property
    def flag(self) -> str:
        return "on" if self.use else "off"

    def describe(self) -> str:
        return f"extra buffer types {self.flag} (--extra-bufts {self.mode}: {self.reason})"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    returncode: int | None
    detail: str
    seconds: float


def probe_extra_bufts(model_path: str | Path, threads: int = 1, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Load `model_path` with extra buffer types in a child process and generate one token."""
    argv = [sys.executable, "-m", "dsdeploy.serve.loading", "probe", str(model_path), str(max(1, threads))]
    # no debugger backtrace in the probe: only its first line matters, and gdb takes seconds
    env = dict(os.environ, GGML_NO_BACKTRACE="1")
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return ProbeResult(False, None, f"no answer within {timeout:.0f}s", time.monotonic() - t0)
    secs = time.monotonic() - t0
    if r.returncode == 0 and "probe ok" in r.stdout:
        return ProbeResult(True, 0, "loaded and generated one token", secs)
    return ProbeResult(False, r.returncode, engine_error_line(r.stderr) or "no output", secs)


def validate_mode(mode: str) -> str:
    from dsdeploy.errors import UserError

    m = (mode or "").strip().lower()
    if m not in EXTRA_BUFTS_MODES:
        raise UserError(f"--extra-bufts must be one of {', '.join(EXTRA_BUFTS_MODES)}, got {mode!r}")
    return m


def default_mode() -> str:
    """$DSDEPLOY_EXTRA_BUFTS, else auto."""
    raw = os.environ.get(EXTRA_BUFTS_ENV, "").strip()
    if not raw:
        return DEFAULT_EXTRA_BUFTS
    from dsdeploy.errors import UserError

    try:
        return validate_mode(raw)
    except UserError:
        raise UserError(f"${EXTRA_BUFTS_ENV} must be one of {', '.join(EXTRA_BUFTS_MODES)}, got {raw!r}") from None


@lru_cache(maxsize=32)
def _probe_cached(path: str, size: int, mtime_ns: int, threads: int) -> ProbeResult:
    return probe_extra_bufts(path, threads)


def resolve_extra_bufts(
    mode: str, model_path: str | Path, threads: int = 1, log: Callable[[str], None] | None = None
) -> ExtraBufts:
    """Decide the loading path for `model_path`: `on`/`off` as asked; `auto` probes (once per
    model file per process) and falls back to off when the probe dies."""
    mode = validate_mode(mode)
    if mode == "on":
        choice = ExtraBufts(True, mode, "forced")
    elif mode == "off":
        choice = ExtraBufts(False, mode, "forced")
    else:
        p = Path(model_path).resolve()
        st = p.stat()
        r = _probe_cached(str(p), st.st_size, st.st_mtime_ns, max(1, threads))
        if r.ok:
            choice = ExtraBufts(True, mode, f"a probe {r.detail} with them ({r.seconds:.1f}s)")
        else:
            choice = ExtraBufts(
                False, mode, f"a probe with them failed ({describe_exit(r.returncode)}: {r.detail}); falling back"
            )
    if log is not None:
        log(f"loading {Path(model_path).name} with {choice.describe()}")
    return choice


# ------------------------------------------------------------------------------ the probe child
def _probe_main(model_path: str, threads: int) -> int:
    llm = load_llama(model_path, extra_bufts=True, n_ctx=64, n_batch=64, n_threads=threads, verbose=False)
    toks = llm.tokenize(b"Hello", add_bos=True)
    tok = next(llm.generate(toks, temp=0.0, top_k=1, reset=True))
    print(f"probe ok: token {tok}", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "probe":
        sys.exit(_probe_main(sys.argv[2], int(sys.argv[3])))
    print("usage: python -m dsdeploy.serve.loading probe MODEL THREADS", file=sys.stderr)
    sys.exit(2)
