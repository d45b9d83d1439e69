"""`dsdeploy serve`: an OpenAI-compatible API for a GGUF model (default: the bundled tiny model)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import typer

from dsdeploy.errors import UserError


def _tiny(kind: str) -> Path:
    try:
        from dsdeploy import tinymodel
    except ImportError:
        raise UserError("the bundled tiny model is not available in this install; pass --model") from None
    path = Path(tinymodel.default_gguf_path() if kind == "gguf" else tinymodel.default_hf_path())
    if not path.exists():
        raise UserError(f"the bundled tiny model is missing ({path}); pass --model")
    return path


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model: Path | None = typer.Option(
            None,
            "--model",
            help="GGUF file to serve (llama engine) or HF folder (vllm/sglang). Default: the bundled tiny DeepSeek.",
        ),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Non-loopback needs an API key."),
        port: int = typer.Option(8000, "--port", help="TCP port (0: any free port; the URL is printed)."),
        api_key: str | None = typer.Option(
            None, "--api-key", help="Require 'Authorization: Bearer KEY' on /v1/*. Default: $DSDEPLOY_API_KEY."
        ),
        engine: str = typer.Option("llama", "--engine", help="llama (built in), vllm or sglang."),
        served_model_name: str | None = typer.Option(None, "--served-model-name", help="Model id clients use."),
        n_ctx: int = typer.Option(2048, "--n-ctx", help="Context length per slot (tokens)."),
        threads: int | None = typer.Option(
            None, "--threads", help="CPU threads per slot. Default: cores / slots, leaving one core to the API process."
        ),
        extra_bufts: str | None = typer.Option(
            None,
            "--extra-bufts",
            help="llama.cpp's extra buffer types (weight repacking, e.g. AMX): on, off, or auto = try them in a "
            "child process and use them only if the model loads and generates there. Default: $DSDEPLOY_EXTRA_BUFTS or auto.",
        ),
        parallel: int | None = typer.Option(
            None,
            "--parallel",
            help="Engine slots (worker processes) running at once. Default: max(2, cores/2), at most 4.",
        ),
        max_tokens_limit: int = typer.Option(
            4096, "--max-tokens-limit", help="Largest max_tokens a request may ask for."
        ),
        max_prompt_tokens: int | None = typer.Option(
            None, "--max-prompt-tokens", help="Longest prompt accepted (tokens); longer gets 413. Default: n_ctx - 1."
        ),
        max_concurrency: int = typer.Option(
            64, "--max-concurrency", help="Requests admitted at once, running + queued; beyond that: 429."
        ),
        drain_timeout: float = typer.Option(
            30.0, "--drain-timeout", help="Seconds SIGTERM waits for running requests."
        ),
        # ---- limits against hostile or broken clients and hung engines (docs/serve.md) ----
        max_connections: int = typer.Option(
            512, "--max-connections", help="Open HTTP connections at once; one more gets 503 and is closed unread."
        ),
        max_body_bytes: int = typer.Option(
            4 * 1024 * 1024, "--max-body-bytes", help="Largest request body (bytes), checked while reading; then 413."
        ),
        header_timeout: float = typer.Option(
            10.0, "--header-timeout", help="Seconds a client has to send a request's headers; then 408."
        ),
        body_timeout: float = typer.Option(
            30.0, "--body-timeout", help="Seconds a request body may take to arrive in full; then 408."
        ),
        write_timeout: float = typer.Option(
            30.0, "--write-timeout", help="Seconds one write of a stream may wait for a client that reads nothing."
        ),
        watchdog_timeout: float = typer.Option(
            30.0,
            "--watchdog-timeout",
            help="Seconds an engine worker with a running request may send nothing and use no CPU "
            "before it is declared hung, killed and restarted (its request fails). 0: off.",
        ),
        stream_interval_ms: float | None = typer.Option(
            None,
            "--stream-interval-ms",
            help="After the first token, send tokens that arrive within this many ms in one write "
            "(each still its own chunk). 0 = one write per token. Default: $DSDEPLOY_STREAM_INTERVAL_MS or 10.",
        ),
        engine_nice: int = typer.Option(
            5,
            "--engine-nice",
            help="Niceness of the engine worker processes (0-19; 0 = the API's priority). Above 0, "
            "the API process runs first when the engines keep every core busy (lower TTFT under load).",
        ),
        log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    ) -> None:
        """Serve a model behind an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models, /health, /metrics)."""
        key = api_key or os.environ.get("DSDEPLOY_API_KEY") or None
        engine = engine.lower()
        if engine in ("vllm", "sglang"):
            from dsdeploy.serve.external import run_external

            model_dir = model if model is not None else _tiny("hf")
            name = served_model_name or Path(model_dir).name
            from dsdeploy.serve.settings import is_loopback

            if not key and not is_loopback(host):
                raise UserError(
                    f"refusing to serve on non-loopback host {host} without an API key: pass --api-key or set DSDEPLOY_API_KEY"
                )
            raise typer.Exit(run_external(engine, Path(model_dir), host, port, name, n_ctx, key))
        if engine != "llama":
            raise UserError(f"unknown engine '{engine}': choose llama, vllm or sglang")
        from dsdeploy.serve.server import require_llama_cpp, run
        from dsdeploy.serve.settings import ServeSettings, default_parallel

        path = model if model is not None else _tiny("gguf")
        if model is None:
            require_llama_cpp()
        settings = ServeSettings(
            model_path=path,
            served_name=served_model_name or ("tiny-deepseek" if model is None else Path(path).stem),
            host=host,
            port=port,
            api_key=key,
            n_ctx=n_ctx,
            threads=threads,
            parallel=parallel if parallel is not None else default_parallel(),
            max_tokens_limit=max_tokens_limit,
            max_prompt_tokens=max_prompt_tokens,
            max_concurrency=max_concurrency,
            drain_timeout=drain_timeout,
            log_level=log_level,
            engine_nice=engine_nice,
        )
        if extra_bufts is not None:
            from dsdeploy.serve.loading import validate_mode

            settings = dataclasses.replace(settings, extra_bufts=validate_mode(extra_bufts))
        if stream_interval_ms is not None:
            if not (0.0 <= stream_interval_ms <= 1000.0):
                raise UserError(f"--stream-interval-ms must be between 0 and 1000, got {stream_interval_ms}")
            settings = dataclasses.replace(settings, stream_interval_ms=stream_interval_ms)
        settings = dataclasses.replace(
            settings,
            max_connections=max_connections,
            max_body_bytes=max_body_bytes,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            watchdog_timeout=watchdog_timeout,
            write_timeout=write_timeout,
        )
        run(settings, announce=lambda line: typer.echo(line))
