"""Run `dsdeploy serve`: bind, start the engine slots, serve HTTP, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys

from dsdeploy.errors import UserError
from dsdeploy.serve.settings import ServeSettings

LLAMA_INSTALL_HINT = (
    "llama-cpp-python is not installed. It is compiled from source once (4-6 minutes on 2 cores; "
    "about 13 s from pip's cache afterwards): run  pip install 'dsdeploy[llama]'  in this "
    "environment, or  python3 tasks.py serve  from the repository root."
)


def require_llama_cpp() -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:  # missing, or a broken build
        raise UserError(f"{LLAMA_INSTALL_HINT} (import failed: {exc})") from None


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, made here so that `--port 0` can report the port it got.

    It must say IPPROTO_TCP: asyncio (and uvloop) turn Nagle's algorithm off (TCP_NODELAY) only on
    connections whose socket says so, and a socket made with proto 0 passes that on to every
    connection it accepts. With Nagle on, a keep-alive client (the `openai` client keeps its
    connections) waited for the kernel's 40 ms delayed ACK before each streamed response after
    the first: measured 43-48 ms TTFT instead of 12-20 ms on the tiny model. TCP_NODELAY is also
    set on the listener, which Linux copies to accepted sockets."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    # not inheritable (Python's default): under uvloop, child processes keep inheritable fds, and
    # engine workers holding the listener would keep the port accepting during a drain (and
    # after the API process is gone)
    return sock


# `python -m dsdeploy.serve.worker`, with SIGINT and SIGTERM ignored first. The pool also starts each
# worker in its own session, which keeps a signal to the server's process group (Ctrl-C) away from
# it; this covers a signal to every process of the service (systemd's default KillMode=
# control-group stop sends SIGTERM to the whole cgroup). The API process stops its workers itself
# (an exit message, stdin closed, then SIGKILL), after its drain.
WORKER_BOOT = (
    "import runpy, signal; "
    "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "runpy.run_module('dsdeploy.serve.worker', run_name='__main__', alter_sys=True)"
)


def worker_argv(s: ServeSettings, extra_bufts: bool | None = None) -> list[str]:
    """The engine worker's command line; `extra_bufts` None: decided now (dsdeploy.serve.loading)."""
    if extra_bufts is None:
        from dsdeploy.serve.loading import resolve_extra_bufts

        extra_bufts = resolve_extra_bufts(s.extra_bufts, s.model_path, s.threads or 1).use
    return [
        sys.executable,
        "-c",
        WORKER_BOOT,
        "--model",
        str(s.model_path),
        "--n-ctx",
        str(s.n_ctx),
        "--threads",
        str(s.threads),
        "--stream-interval-ms",
        str(s.stream_interval_ms),
        "--nice",
        str(s.engine_nice),
        "--extra-bufts",
        "on" if extra_bufts else "off",
    ]


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def run(s: ServeSettings, announce=print) -> None:
    """Serve until SIGINT/SIGTERM. Raises UserError for anything the user can fix."""
    s.validate()
    require_llama_cpp()
    import uvicorn

    from dsdeploy.serve.app import create_app
    from dsdeploy.serve.pool import EnginePool
    from dsdeploy.serve.prompt import PromptBuilder

    try:
        prompt = PromptBuilder(str(s.model_path))
    except Exception as exc:
        raise UserError(f"cannot read {s.model_path} as a GGUF model: {exc}") from None
    from dsdeploy.serve.loading import resolve_extra_bufts

    # the loading path (extra buffer types or not), probed in a child process under `auto`
    bufts = resolve_extra_bufts(
        s.extra_bufts,
        s.model_path,
        s.threads or 1,
        log=lambda m: print(f"dsdeploy serve: {m}", file=sys.stderr, flush=True),
    )
    sock = bind(s.host, s.port)
    port = sock.getsockname()[1]
    env = dict(os.environ, **s.extra_worker_env)
    pool = EnginePool(
        worker_argv(s, bufts.use), s.parallel, s.max_concurrency, env=env, watchdog_timeout=s.watchdog_timeout
    )
    app = create_app(s, prompt, pool)
    loop_box: list[asyncio.AbstractEventLoop] = []

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):  # SIGTERM/SIGINT: stop admitting, let running requests finish
            try:
                if not pool.draining:
                    if loop_box:  # ends every stream still there at the deadline with an error event
                        loop_box[0].call_soon_threadsafe(pool.start_drain, s.drain_timeout)
                    pool.draining = True
                    print(
                        f"dsdeploy serve: draining ({pool.running} running, {len(pool.waiting)} waiting; "
                        f"up to {s.drain_timeout:.0f}s)",
                        file=sys.stderr,
                        flush=True,
                    )
            except (OSError, ValueError):
                pass  # stderr is gone (its reader exited): the shutdown must go on regardless
            finally:
                super().handle_exit(sig, frame)

    from dsdeploy.serve.guard import guarded_protocol

    config = uvicorn.Config(
        app,
        log_level=s.log_level,
        access_log=False,
        # the pool's drain ends every request at drain_timeout; uvicorn's own cut is the backstop.
        # uvicorn annotates int but only hands it to asyncio.wait_for, which takes seconds as a float
        timeout_graceful_shutdown=s.drain_timeout + 5,  # type: ignore[arg-type]
        http=guarded_protocol(s.max_connections, s.header_timeout),
        # uvicorn's default (5 s) drops an idle keep-alive connection between a client's
        # requests more often than needed; 30 s, like nginx's default keepalive_timeout of 75 s,
        # is a judgement call, not a measured optimum
        timeout_keep_alive=30,
    )
    server = Server(config)

    async def main() -> None:
        loop_box.append(asyncio.get_running_loop())
        try:
            await pool.start()
        except RuntimeError as exc:
            await pool.stop(timeout=1)
            raise UserError(f"the engine could not load {s.model_path}: {exc}") from None
        announce(
            f"dsdeploy serve: {s.served_name} ({len(pool.slots)} slot(s) x {s.threads} thread(s), "
            f"n_ctx {s.n_ctx}) at {url_for(s.host, port)}/v1" + ("  [API key required]" if s.api_key else "")
        )
        await server.serve(sockets=[sock])

    logging.getLogger("uvicorn.error").setLevel(s.log_level.upper())
    # uvicorn re-raises the signal it caught once it has drained; with a handler of our own in
    # place that re-raise is a no-op and the process exits 0 after a clean drain.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    # uvicorn's own loop choice (uvloop when installed): `server.serve()` runs in whatever loop it
    # is given, so the loop is made here as `uvicorn.run` would make it.
    try:
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(main())
    finally:
        sock.close()
