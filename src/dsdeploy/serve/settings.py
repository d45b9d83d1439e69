"""What `dsdeploy serve` was asked to do, checked once before anything starts."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from dsdeploy.errors import UserError

API_KEY_ENV = "DSDEPLOY_API_KEY"
STREAM_INTERVAL_ENV = "DSDEPLOY_STREAM_INTERVAL_MS"
DEFAULT_STREAM_INTERVAL_MS = 10.0


def default_stream_interval_ms() -> float:
    """$DSDEPLOY_STREAM_INTERVAL_MS, else DEFAULT_STREAM_INTERVAL_MS (see docs/serve.md)."""
    raw = os.environ.get(STREAM_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_STREAM_INTERVAL_MS
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"${STREAM_INTERVAL_ENV} must be a number of milliseconds, got {raw!r}") from None
    if not (0.0 <= value <= 1000.0):
        raise UserError(f"${STREAM_INTERVAL_ENV} must be between 0 and 1000, got {value}")
    return value


def default_extra_bufts() -> str:
    """$DSDEPLOY_EXTRA_BUFTS, else auto (see dsdeploy.serve.loading and docs/serve.md)."""
    from dsdeploy.serve.loading import default_mode

    return default_mode()


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def default_parallel() -> int:
    """One engine slot per two cores, at least 2 so that one long stream never blocks the next."""
    return max(2, min(4, (os.cpu_count() or 2) // 2))


def default_threads(parallel: int) -> int:
    """Threads per slot: the cores shared out between the slots, and never every core to one slot.
    llama.cpp's threads spin-wait on each other, so one of them losing its core (to the API process
    or another slot) slows a token several times over (measured: 2 threads on this 2-core machine
    under load, 411 tok/s; 1 thread, 2,361 tok/s). With every core given to slots, the API process
    still runs first because the workers are niced (--engine-nice)."""
    cores = os.cpu_count() or 2
    return max(1, min(cores // max(1, parallel), cores - 1))


@dataclass
class ServeSettings:
    model_path: Path
    served_name: str
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    n_ctx: int = 2048
    threads: int | None = None  # per engine slot; None: cores / slots
    # llama.cpp's extra buffer types (weight repacking): auto | on | off (dsdeploy.serve.loading)
    extra_bufts: str = field(default_factory=default_extra_bufts)
    parallel: int = 2  # engine slots (worker processes), each one running sequence
    max_tokens_limit: int = 4096  # largest max_tokens a request may ask for
    max_prompt_tokens: int | None = None  # None: n_ctx - 1
    max_concurrency: int = 64  # requests admitted at once (running + waiting); beyond: 429
    max_body_bytes: int = 4 * 1024 * 1024
    drain_timeout: float = 30.0
    log_level: str = "info"
    extra_worker_env: dict[str, str] = field(default_factory=dict)
    # after a request's first token (always sent at once), the engine hands tokens over at most
    # this often, batched: fewer wake-ups and writes per token, at the cost of burstier chunks
    stream_interval_ms: float = field(default_factory=default_stream_interval_ms)
    # the engine workers' niceness (0-19): above 0, the API process (HTTP, tokenizing, streaming)
    # runs first when the workers keep every core busy; llama.cpp's own server has --prio for this
    engine_nice: int = 5
    # ---- hostile-client limits (docs/serve.md, "Limits and timeouts") ----
    # open HTTP connections at once; one more is answered 503 and closed before it is read
    max_connections: int = 512
    # seconds a client has to send a request's whole head (request line + headers), from the
    # connection opening or the request's first byte; past it: 408 and the connection closed
    header_timeout: float = 10.0
    # seconds the server waits for the next piece of a request body; past it: 408
    body_timeout: float = 30.0
    # seconds a worker with a running request may send nothing while using no CPU before it counts
    # as hung: its request fails, it is killed and restarted (0: no watchdog)
    watchdog_timeout: float = 30.0
    # seconds one write of a stream may wait for a client that reads nothing; past it the stream
    # is dropped (its job cancelled) and the connection closed
    write_timeout: float = 30.0

    def __post_init__(self) -> None:
        self.model_path = Path(self.model_path)
        if self.threads is None:
            self.threads = default_threads(self.parallel)
        if self.max_prompt_tokens is None:
            self.max_prompt_tokens = self.n_ctx - 1

    def validate(self) -> None:
        """Every setting checked before anything starts: one UserError naming the flag to fix."""
        self._validate_model()
        self._validate_counts()
        self._validate_machine()
        self._validate_limits()
        if not self.api_key and not is_loopback(self.host):
            raise UserError(
                f"refusing to serve on non-loopback host {self.host} without an API key: "
                f"pass --api-key or set {API_KEY_ENV}"
            )

    def _validate_model(self) -> None:
        if not self.model_path.is_file():
            raise UserError(f"model file not found: {self.model_path}")
        if self.model_path.suffix.lower() != ".gguf":
            raise UserError(f"--model must be a .gguf file, got {self.model_path}")
        if not (0 <= self.port < 65536):
            raise UserError(f"--port must be 0..65535 (0: any free port), got {self.port}")

    def _validate_counts(self) -> None:
        for name, value in (
            ("--n-ctx", self.n_ctx),
            ("--threads", self.threads),
            ("--parallel", self.parallel),
            ("--max-tokens-limit", self.max_tokens_limit),
            ("--max-prompt-tokens", self.max_prompt_tokens),
            ("--max-concurrency", self.max_concurrency),
            ("--max-body-bytes", self.max_body_bytes),
        ):
            if value is None or value < 1:
                raise UserError(f"{name} must be a positive integer, got {value}")
        assert self.max_prompt_tokens is not None  # filled in __post_init__, checked above
        if self.max_prompt_tokens >= self.n_ctx:
            raise UserError(f"--max-prompt-tokens ({self.max_prompt_tokens}) must be below --n-ctx ({self.n_ctx})")
        if self.max_concurrency < self.parallel:
            raise UserError(f"--max-concurrency ({self.max_concurrency}) must be at least --parallel ({self.parallel})")
        if not (0 <= self.engine_nice <= 19):
            raise UserError(f"--engine-nice must be between 0 and 19, got {self.engine_nice}")

    def _validate_machine(self) -> None:
        """--threads within this machine's cores; --n-ctx within the model's training context."""
        cores = os.cpu_count() or 1
        if (self.threads or 0) > cores:
            raise UserError(
                f"--threads {self.threads} is more than this machine's {cores} CPU(s): pass at most {cores} on this machine"
            )
        from dsdeploy.serve.loading import gguf_context_length, validate_mode

        self.extra_bufts = validate_mode(self.extra_bufts)
        n_ctx_train = gguf_context_length(self.model_path)  # None: not readable here; the engine's load says why
        if n_ctx_train and self.n_ctx > n_ctx_train:
            raise UserError(
                f"--n-ctx {self.n_ctx} is more than {self.model_path.name}'s training context "
                f"({n_ctx_train} tokens, its GGUF context_length): pass at most {n_ctx_train}"
            )

    def _validate_limits(self) -> None:
        if self.max_connections < 1:
            raise UserError(f"--max-connections must be a positive integer, got {self.max_connections}")
        for flag, seconds, lo, hi in (
            ("--header-timeout", self.header_timeout, 0.1, 3600.0),
            ("--body-timeout", self.body_timeout, 0.1, 3600.0),
            ("--watchdog-timeout", self.watchdog_timeout, 0.0, 86400.0),
            ("--write-timeout", self.write_timeout, 0.1, 3600.0),
            ("--drain-timeout", self.drain_timeout, 0.0, 86400.0),
        ):
            if not (lo <= seconds <= hi):  # NaN fails too
                raise UserError(f"{flag} must be between {lo:g} and {hi:g} seconds, got {seconds}")
        if self.max_connections < self.max_concurrency:
            raise UserError(
                f"--max-connections ({self.max_connections}) must be at least --max-concurrency ({self.max_concurrency})"
            )
