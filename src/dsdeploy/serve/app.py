"""The OpenAI-compatible HTTP layer (FastAPI) in front of the engine pool."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from dsdeploy.serve.errors import (
    APIError,
    bad_request,
    not_found,
    too_large,
    unauthorized,
    unavailable,
)
from dsdeploy.serve.metrics import Metrics
from dsdeploy.serve.pool import CRASHED, EnginePool, Job
from dsdeploy.serve.settings import ServeSettings

_dumps = json.dumps
_MAX_STOPS = 16  # OpenAI allows 4 stop sequences, vLLM any number; 16 bounds the per-token search


def _num(body: dict, name: str, default, lo=None, hi=None, integer=False):
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        kind = "an integer" if integer else "a number"
        raise bad_request(f"'{name}' must be {kind}, got {v!r}", param=name, code="invalid_type")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise bad_request(f"'{name}' must be between {lo} and {hi}, got {v}", param=name, code="invalid_value")
    return v


def _bool(body: dict, name: str, default: bool = False) -> bool:
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise bad_request(f"'{name}' must be a boolean, got {v!r}", param=name, code="invalid_type")
    return v


def _content_text(content: Any, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise bad_request(
                    "only text content parts are supported", param=f"messages[{i}].content", code="invalid_value"
                )
        return "".join(parts)
    raise bad_request("message content must be a string or a list of text parts", param=f"messages[{i}].content")


class Server:
    """State shared by the routes: settings, the prompt builder, the pool and the metrics."""

    def __init__(self, settings: ServeSettings, prompt, pool: EnginePool, metrics: Metrics) -> None:
        self.s = settings
        self.prompt = prompt
        self.pool = pool
        self.m = metrics
        self._key = settings.api_key.encode() if settings.api_key else None
        self.model_names = {settings.served_name, settings.model_path.name, str(settings.model_path)}
        self.created = int(time.time())

    # ---- request checks -------------------------------------------------------------------
    def auth(self, request: Request) -> None:
        if self._key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._key):
            raise unauthorized("Missing API key." if not header else "Incorrect API key provided.")

    async def body(self, request: Request) -> dict[str, Any]:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.s.max_body_bytes:
            raise too_large(
                f"request body is {length} bytes; the limit is {self.s.max_body_bytes}", code="body_too_large"
            )
        raw = await request.body()
        if len(raw) > self.s.max_body_bytes:
            raise too_large(
                f"request body is {len(raw)} bytes; the limit is {self.s.max_body_bytes}", code="body_too_large"
            )
        try:
            body = json.loads(raw)
        except ValueError:
            raise bad_request("request body is not valid JSON", code="invalid_json") from None
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object", code="invalid_json")
        return body

    def check_model(self, body: dict) -> None:
        model = body.get("model")
        if model is not None and model not in self.model_names:
            raise not_found(
                f"The model '{model}' does not exist; this server serves '{self.s.served_name}'.",
                param="model",
                code="model_not_found",
            )

    def sampling(self, body: dict, n_prompt: int, prompt_param: str) -> dict[str, Any]:
        """Validate the sampling fields and the limits; return the worker's job payload."""
        n = _num(body, "n", 1, 1, 1, integer=True)
        del n
        for unsupported in ("logprobs", "top_logprobs", "tools", "functions", "suffix", "echo", "best_of"):
            v = body.get(unsupported)
            harmless = v is None or v is False or v == [] or v == "" or (v == 0 and v is not True)
            if not harmless and not (unsupported == "best_of" and v == 1):
                raise bad_request(
                    f"'{unsupported}' is not supported by this server", param=unsupported, code="unsupported"
                )
        rf = body.get("response_format")
        if rf not in (None, {"type": "text"}):
            raise bad_request(
                "only response_format {'type': 'text'} is supported", param="response_format", code="unsupported"
            )
        limit = self.s.max_tokens_limit
        mct = _num(body, "max_completion_tokens", None, 1, None, integer=True)
        mt = _num(body, "max_tokens", None, 1, None, integer=True)
        param = "max_completion_tokens" if mct is not None else "max_tokens"
        requested = mct if mct is not None else mt
        assert self.s.max_prompt_tokens is not None  # ServeSettings.__post_init__ fills it
        if n_prompt > self.s.max_prompt_tokens:
            raise too_large(
                f"the prompt is {n_prompt} tokens; this server accepts at most {self.s.max_prompt_tokens}",
                param=prompt_param,
            )
        room = self.s.n_ctx - n_prompt
        if requested is not None:
            if requested > limit:
                raise bad_request(
                    f"'{param}' is {requested}; this server allows at most {limit}",
                    param=param,
                    code="max_tokens_too_large",
                )
            if requested > room:
                raise bad_request(
                    f"this model's context is {self.s.n_ctx} tokens; the prompt is {n_prompt} and "
                    f"'{param}' asks for {requested} more",
                    param=param,
                    code="context_length_exceeded",
                )
            max_tokens = requested
        else:
            max_tokens = min(limit, room)
        stop = body.get("stop")
        if stop is None:
            stops: list[str] = []
        elif isinstance(stop, str):
            stops = [stop]
        elif isinstance(stop, list) and all(isinstance(x, str) for x in stop) and len(stop) <= _MAX_STOPS:
            stops = stop
        else:
            raise bad_request(f"'stop' must be a string or a list of at most {_MAX_STOPS} strings", param="stop")
        min_tokens = _num(body, "min_tokens", 0, 0, None, integer=True)
        if min_tokens > max_tokens:
            raise bad_request(
                f"'min_tokens' ({min_tokens}) must not exceed the maximum tokens ({max_tokens})", param="min_tokens"
            )
        seed = _num(body, "seed", None, integer=True)
        return {
            "max_tokens": max_tokens,
            "temperature": float(_num(body, "temperature", 1.0, 0.0, 2.0)),
            "top_p": float(_num(body, "top_p", 1.0, 0.0, 1.0)),
            "top_k": int(_num(body, "top_k", 0, -1, None, integer=True)),
            "min_p": float(_num(body, "min_p", 0.0, 0.0, 1.0)),
            "frequency_penalty": float(_num(body, "frequency_penalty", 0.0, -2.0, 2.0)),
            "presence_penalty": float(_num(body, "presence_penalty", 0.0, -2.0, 2.0)),
            "repetition_penalty": float(_num(body, "repetition_penalty", 1.0, 0.0, 10.0)),
            "seed": seed,
            "stop": stops,
            "ignore_eos": _bool(body, "ignore_eos"),
            "min_tokens": min_tokens,
        }

    def stream_opts(self, body: dict) -> tuple[bool, bool]:
        stream = _bool(body, "stream")
        opts = body.get("stream_options")
        include_usage = False
        if opts is not None:
            if not isinstance(opts, dict):
                raise bad_request("'stream_options' must be an object", param="stream_options")
            include_usage = _bool(opts, "include_usage")
        return stream, include_usage

    def chat_tokens(self, body: dict) -> list[int]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad_request("'messages' must be a non-empty list", param="messages", code="invalid_value")
        clean = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise bad_request(f"messages[{i}] must be an object with a 'role'", param=f"messages[{i}]")
            role = m["role"]
            if role not in ("system", "developer", "user", "assistant", "tool"):
                raise bad_request(f"messages[{i}].role '{role}' is not a known role", param=f"messages[{i}].role")
            clean.append(
                {"role": "system" if role == "developer" else role, "content": _content_text(m.get("content"), i)}
            )
        return self.prompt.chat_tokens(clean)

    def completion_tokens(self, body: dict) -> list[int]:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]
        if isinstance(prompt, str):
            return self.prompt.tokenize(prompt)
        if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            nv = self.prompt.vocab_size()
            if any(t < 0 or t >= nv for t in prompt):
                raise bad_request(f"token ids must be in 0..{nv - 1}", param="prompt", code="invalid_value")
            return list(prompt)
        raise bad_request("'prompt' must be a string or a list of token ids (one prompt per request)", param="prompt")

    def submit(self, payload: dict, tokens: list[int]) -> Job:
        return self.pool.submit(dict(payload, tokens=tokens))


def _sse(obj_json: str) -> bytes:
    return b"data: " + obj_json.encode() + b"\n\n"


_RAW_SEND = "dsdeploy.raw_send"


class _App(FastAPI):
    """FastAPI with a direct path for the two generation endpoints.

    `POST /v1/completions` and `POST /v1/chat/completions` (exact paths) go straight from the
    server to their handler (`fast_routes`), past FastAPI's routing, its middleware stack and its
    dependency resolution: our handler reads and checks the body itself, so they add nothing but
    time (measured with bench/serve_overhead.py: see docs/serve.md). Everything else, including
    those paths with another method, goes through FastAPI as usual. For those, the server's own
    `send` is left in the scope so a stream's body chunks can skip the five middleware wrappers
    around `send`."""

    fast_routes: dict = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            fast = self.fast_routes.get((scope["method"], scope["path"]))
            if fast is not None:
                await fast(scope, receive, send)
                return
            scope[_RAW_SEND] = send
        await super().__call__(scope, receive, send)


class SSEResponse(Response):
    """A streamed `text/event-stream` response written straight to the ASGI `send`.

    Starlette's StreamingResponse costs an anyio task group per response plus an async-generator
    step per chunk; this sends each batch of ready frames with one `send` and watches for the
    client leaving with one task per response (not per chunk). `body(send_frames)` is a coroutine
    function that produces the stream; `on_disconnect()` is called once if the client goes away
    before it finishes.
    """

    media_type = "text/event-stream"

    def __init__(self, body, on_disconnect, headers: dict[str, str]) -> None:
        self.status_code = 200
        self.background = None
        self._body = body
        self._on_disconnect = on_disconnect
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        self.raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        finished = False

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not finished:
                        self._on_disconnect()
                    return

        watcher = asyncio.ensure_future(watch())

        raw_send = scope.get(_RAW_SEND, send)

        async def send_frames(data: bytes) -> None:
            await raw_send({"type": "http.response.body", "body": data, "more_body": True})

        try:
            await self._body(send_frames)
            finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            if not finished:  # the send failed or we were cancelled: the client is gone
                finished = True
                self._on_disconnect()


def create_app(settings: ServeSettings, prompt, pool: EnginePool, metrics: Metrics | None = None) -> FastAPI:
    metrics = metrics or Metrics()
    srv = Server(settings, prompt, pool, metrics)
    pool.on_restart = metrics.restarts.inc
    metrics.running.set_function(lambda: pool.running)
    metrics.waiting.set_function(lambda: len(pool.waiting))
    metrics.slots_alive.set_function(pool.alive_slots)
    metrics.slots.set(len(pool.slots))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if not pool.started:
            await pool.start()
        yield
        await pool.stop()

    app = _App(title="dsdeploy serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = srv

    def error_response(err: APIError, endpoint: str | None = None) -> JSONResponse:
        if endpoint:
            metrics.requests.labels(endpoint, str(err.status)).inc()
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return error_response(exc, request.url.path if request.url.path.startswith("/v1/") else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        kind = {404: "not_found_error", 405: "invalid_request_error"}.get(exc.status_code, "invalid_request_error")
        msg = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse(
            {"error": {"message": msg, "type": kind, "param": None, "code": str(exc.status_code)}},
            status_code=exc.status_code,
        )

    def internal_error_response(exc: Exception) -> JSONResponse:
        return JSONResponse(
            {
                "error": {
                    "message": f"internal error: {type(exc).__name__}: {exc}",
                    "type": "server_error",
                    "param": None,
                    "code": "internal_error",
                }
            },
            status_code=500,
        )

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        return internal_error_response(exc)

    @app.get("/health")
    async def health():
        alive = pool.alive_slots()
        ok = alive > 0 and not pool.draining
        body = {
            "status": "ok" if ok else ("draining" if pool.draining else "unavailable"),
            "model": settings.served_name,
            "running": pool.running,
            "waiting": len(pool.waiting),
            "slots": [s.info() for s in pool.slots],
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def prom():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def model_card() -> dict:
        return {
            "id": settings.served_name,
            "object": "model",
            "created": srv.created,
            "owned_by": "dsdeploy",
            "root": str(settings.model_path),
            "max_model_len": settings.n_ctx,
        }

    @app.get("/v1/models")
    async def models(request: Request):
        srv.auth(request)
        metrics.requests.labels("/v1/models", "200").inc()
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request):
        srv.auth(request)
        if model_id not in srv.model_names:
            raise not_found(f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
        return model_card()

    async def handle(request: Request, chat: bool):
        t0 = time.perf_counter()
        endpoint = "/v1/chat/completions" if chat else "/v1/completions"
        srv.auth(request)
        if pool.draining:
            raise unavailable("server is shutting down", code="shutting_down")
        body = await srv.body(request)
        srv.check_model(body)
        stream, include_usage = srv.stream_opts(body)
        tokens = srv.chat_tokens(body) if chat else srv.completion_tokens(body)
        payload = srv.sampling(body, len(tokens), "messages" if chat else "prompt")
        job = srv.submit(payload, tokens)
        metrics.requests.labels(endpoint, "200").inc()
        metrics.prompt_tokens.inc(len(tokens))
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        headers = {"x-request-id": request.headers.get("x-request-id") or rid}
        created = int(time.time())
        name = settings.served_name
        if stream:
            body = _stream(job, rid, created, name, chat, include_usage, len(tokens), t0)
            return SSEResponse(body, lambda: _abort(job), headers)
        watcher = asyncio.ensure_future(_watch_disconnect(request, job))
        try:
            text, finish, n_out, err = await _collect(job, len(tokens), t0)
        finally:
            watcher.cancel()
        if err is not None:
            if err.status != 499:
                metrics.engine_errors.inc()
            return JSONResponse(err.body(), status_code=err.status, headers=err.headers)
        usage = {"prompt_tokens": len(tokens), "completion_tokens": n_out, "total_tokens": len(tokens) + n_out}
        if chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            obj = "text_completion"
        return JSONResponse(
            {"id": rid, "object": obj, "created": created, "model": name, "choices": [choice], "usage": usage},
            headers=headers,
        )

    async def _watch_disconnect(request: Request, job: Job) -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                _abort(job)
                return

    def _observe(t0: float, t_first: float | None, t_last: float, n_out: int, job: Job, end: dict) -> None:
        metrics.generation_tokens.inc(n_out)
        if end.get("pf") is not None:
            metrics.prefill.observe(end["pf"])
        if job.started is not None:
            metrics.queue_time.observe(job.started - t0)
        if t_first is not None:
            metrics.ttft.observe(t_first - t0)
            if n_out > 1:
                metrics.tpot.observe((t_last - t_first) / (n_out - 1))
        metrics.e2e.observe(t_last - t0)

    def _abort(job: Job) -> None:
        """The client is gone before its job finished: stop it, count it, end its stream."""
        if not job.done and not job.cancelled:
            pool.cancel(job)
            metrics.aborted.inc()
        job.wake()

    async def _collect(job: Job, n_prompt: int, t0: float):
        parts: list[bytes] = []
        t_first = None
        while True:
            items = await job.take()
            if not items and job.cancelled:
                return None, None, 0, APIError(499, "client closed the request", code="client_closed")
            for ev in items:
                if type(ev) is bytes:
                    if t_first is None:
                        t_first = time.perf_counter()
                    parts.append(ev[1:-1])
                    continue
                if "e" in ev:
                    if t_first is None and ev.get("n"):
                        t_first = time.perf_counter()
                    n_out = ev["n"]
                    _observe(t0, t_first, time.perf_counter(), n_out, job, ev)
                    text = json.loads(b'"' + b"".join(parts) + b'"') + ev.get("t", "")
                    return text, ev["e"], n_out, None
                return None, None, 0, _job_error(ev)

    def _job_error(ev: dict) -> APIError:
        if CRASHED in ev:
            return ev[CRASHED]
        return APIError(500, f"engine error: {ev.get('x')}", type="server_error", code="engine_error")

    def _stream(job: Job, rid: str, created: int, name: str, chat: bool, include_usage: bool, n_prompt: int, t0: float):
        """The SSE body: one chunk per token (a token's text is spliced, already JSON-escaped,
        between a prebuilt head and tail), all chunks that are ready at once in one write."""
        usage_null = ',"usage":null' if include_usage else ""
        if chat:
            head = f'{{"id":"{rid}","object":"chat.completion.chunk","created":{created},"model":{_dumps(name)},"choices":[{{"index":0,"delta":'
            pre, post = head + '{"content":', '},"logprobs":null,"finish_reason":null}]' + usage_null + "}"
            fin_pre, fin_post = head + '{},"logprobs":null,"finish_reason":', "}]" + usage_null + "}"
            obj = "chat.completion.chunk"
        else:
            head = f'{{"id":"{rid}","object":"text_completion","created":{created},"model":{_dumps(name)},"choices":[{{"index":0,'
            pre, post = head + '"text":', ',"logprobs":null,"finish_reason":null}]' + usage_null + "}"
            fin_pre, fin_post = head + '"text":"","logprobs":null,"finish_reason":', "}]" + usage_null + "}"
            obj = "text_completion"
        pre_b = b"data: " + pre.encode()
        post_b = post.encode() + b"\n\n"
        first = (
            _sse(head + '{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]' + usage_null + "}")
            if chat
            else b""
        )

        async def body(send) -> None:
            t_first = None
            # The chat role chunk goes out with the first token, not before the prefill: clients
            # and benchmarks (vLLM's, ours) take the first chunk as the first token, and vLLM
            # likewise sends its role chunk once the first token exists.
            role_chunk = first
            while True:
                items = await job.take()
                if not items:  # woken with nothing: the client left
                    if job.cancelled:
                        return
                    continue
                out = [role_chunk] if role_chunk else []
                role_chunk = b""
                end = None
                for ev in items:
                    if type(ev) is bytes:
                        if t_first is None:
                            t_first = time.perf_counter()
                        if len(ev) > 2:  # not ""
                            out.append(pre_b + ev + post_b)
                        continue
                    end = ev
                    break
                if end is None:
                    await send(b"".join(out))
                    continue
                if "e" in end:
                    n_out = end["n"]
                    if t_first is None and n_out:
                        t_first = time.perf_counter()
                    _observe(t0, t_first, time.perf_counter(), n_out, job, end)
                    if end.get("t"):
                        out.append(pre_b + _dumps(end["t"]).encode() + post_b)
                    out.append(_sse(fin_pre + _dumps(end["e"]) + fin_post))
                    if include_usage:
                        usage = {
                            "prompt_tokens": n_prompt,
                            "completion_tokens": n_out,
                            "total_tokens": n_prompt + n_out,
                        }
                        out.append(
                            _sse(
                                _dumps(
                                    {
                                        "id": rid,
                                        "object": obj,
                                        "created": created,
                                        "model": name,
                                        "choices": [],
                                        "usage": usage,
                                    }
                                )
                            )
                        )
                else:
                    metrics.engine_errors.inc()
                    out.append(_job_error(end).sse())
                out.append(b"data: [DONE]\n\n")
                await send(b"".join(out))
                return

        return body

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await handle(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await handle(request, chat=False)

    def direct(path: str, chat: bool):
        """The same handler as the routes above, called from `_App.__call__` without FastAPI."""

        async def endpoint(scope, receive, send) -> None:
            try:
                response = await handle(Request(scope, receive), chat)
            except APIError as exc:
                response = error_response(exc, path)
            except Exception as exc:  # as FastAPI's handler above: a 500 with the reason, and the traceback logged
                logging.getLogger("uvicorn.error").exception("internal error in %s", path)
                response = internal_error_response(exc)
            await response(scope, receive, send)

        return endpoint

    app.fast_routes = {
        ("POST", "/v1/chat/completions"): direct("/v1/chat/completions", True),
        ("POST", "/v1/completions"): direct("/v1/completions", False),
    }
    return app
