"""The OpenAI-compatible HTTP layer (FastAPI) in front of the engine pool."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import time
import uuid
from collections.abc import MutableMapping
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from dsdeploy.serve import schemas
from dsdeploy.serve.errors import (
    APIError,
    bad_request,
    not_found,
    too_large,
    unauthorized,
    unavailable,
)
from dsdeploy.serve.metrics import UNMATCHED, Metrics
from dsdeploy.serve.pool import CRASHED, EnginePool, Job
from dsdeploy.serve.schemas import INT32_MAX, INT64_MAX, INT64_MIN, MAX_STOPS, ROLES
from dsdeploy.serve.settings import ServeSettings

_dumps = json.dumps
_UNSUPPORTED = ("logprobs", "top_logprobs", "tools", "functions", "suffix", "echo", "best_of")


def _number(v: Any, integer: bool) -> int | float | None:
    """`v` as a JSON number of the wanted kind (5.0 counts as the integer 5, as in JSON), else None."""
    if integer and isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        return None
    return v


def _num(body: dict, name: str, default, lo=None, hi=None, integer=False):
    raw = body.get(name)
    if raw is None:
        return default
    v = _number(raw, integer)
    if v is None:
        kind = "an integer" if integer else "a number"
        raise bad_request(f"'{name}' must be {kind}, got {raw!r}", param=name, code="invalid_type")
    # NaN compares false with everything, so it is refused by name (as are inf and -inf)
    if isinstance(v, float) and not math.isfinite(v):
        raise bad_request(f"'{name}' must be a finite number, got {v}", param=name, code="invalid_value")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        span = f"at most {hi}" if lo is None else f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise bad_request(f"'{name}' must be {span}, got {v}", param=name, code="invalid_value")
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


def _token_ids(value: Any) -> list[int] | None:
    """`value` as a list of token ids (integers; 5.0 counts, as in JSON), else None."""
    if not isinstance(value, list):
        return None
    ids = []
    for t in value:
        if isinstance(t, float) and t.is_integer():
            t = int(t)
        if not isinstance(t, int) or isinstance(t, bool):
            return None
        ids.append(t)
    return ids


def _is_harmless(name: str, v: Any) -> bool:
    """An unsupported field set to its 'off' value (null, false, 0, [], "", best_of 1) is accepted."""
    if v is None or v is False or (isinstance(v, (list, str)) and not v):
        return True
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v == 0 or (name == "best_of" and v == 1)
    return False


class ClientGone(Exception):
    """The client disconnected while its request body was being read."""


def route_label(scope: MutableMapping[str, Any]) -> str:
    """The metrics label for a request: its route's template (`/v1/models/{model_id:path}`), never
    the raw path, so the label set is bounded by the routes; a path no route matches is UNMATCHED."""
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


class Server:
    """State shared by the routes: settings, the prompt builder, the pool and the metrics."""

    def __init__(self, settings: ServeSettings, prompt, pool: EnginePool, metrics: Metrics) -> None:
        self.s = settings
        self.prompt = prompt
        self.pool = pool
        self.m = metrics
        self._key = settings.api_key.encode() if settings.api_key else None
        # the served name, or the GGUF file's name; never its path (no file system layout leaks)
        self.model_names = {settings.served_name, settings.model_path.name}
        self.created = int(time.time())

    # ---- request checks -------------------------------------------------------------------
    def auth(self, request: Request) -> None:
        if self._key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._key):
            raise unauthorized("Missing API key." if not header else "Incorrect API key provided.")

    def _too_large(self, size: int | str) -> APIError:
        err = too_large(f"request body is {size} bytes; the limit is {self.s.max_body_bytes}", code="body_too_large")
        err.headers["Connection"] = "close"  # the rest of the body is never read
        return err

    async def read_body(self, receive) -> bytes:
        """The request body, read chunk by chunk: past `max_body_bytes` it stops at once with 413
        (a chunked body has no Content-Length to check first), and a body not complete within
        `body_timeout` seconds of its first read gets 408. One deadline for the whole body, not one
        per chunk: a client trickling a byte every few seconds would otherwise hold its place for as
        long as it liked."""
        limit, chunks, size = self.s.max_body_bytes, [], 0
        deadline = asyncio.get_running_loop().time() + self.s.body_timeout
        while True:
            try:
                async with asyncio.timeout_at(deadline):  # no task per chunk, unlike wait_for
                    message = await receive()
            except TimeoutError:
                raise APIError(
                    408,
                    f"request body not complete within {self.s.body_timeout:g}s",
                    code="body_timeout",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(f"over {size}")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def body(self, request: Request) -> dict[str, Any]:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.s.max_body_bytes:
            raise self._too_large(length)
        raw = await self.read_body(request.receive)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise bad_request("request body is not valid JSON", code="invalid_json") from None
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object", code="invalid_json")
        return body

    def check_model(self, body: dict) -> None:
        model = body.get("model")
        if model is None:
            return
        if not isinstance(model, str):
            raise bad_request(
                f"'model' must be a string, got {type(model).__name__}", param="model", code="invalid_type"
            )
        if model not in self.model_names:
            raise not_found(
                f"The model '{model}' does not exist; this server serves '{self.s.served_name}'.",
                param="model",
                code="model_not_found",
            )

    @staticmethod
    def check_unsupported(body: dict) -> None:
        for name in _UNSUPPORTED:
            if not _is_harmless(name, body.get(name)):
                raise bad_request(f"'{name}' is not supported by this server", param=name, code="unsupported")
        if body.get("response_format") not in (None, {"type": "text"}):
            raise bad_request(
                "only response_format {'type': 'text'} is supported", param="response_format", code="unsupported"
            )

    def requested_tokens(self, body: dict) -> tuple[int | None, str]:
        """The request's max_completion_tokens (which wins) or max_tokens, checked against
        --max-tokens-limit, and the name of the field it came from."""
        mct = _num(body, "max_completion_tokens", None, 1, None, integer=True)
        mt = _num(body, "max_tokens", None, 1, None, integer=True)
        param = "max_completion_tokens" if mct is not None else "max_tokens"
        requested = mct if mct is not None else mt
        limit = self.s.max_tokens_limit
        if requested is not None and requested > limit:
            raise bad_request(
                f"'{param}' is {requested}; this server allows at most {limit}",
                param=param,
                code="max_tokens_too_large",
            )
        return requested, param

    def fit(self, payload: dict[str, Any], n_prompt: int, prompt_param: str) -> dict[str, Any]:
        """The checks that need the prompt's length (so they come after every field's own check):
        the prompt limit, the context left for the completion, min_tokens within the budget.
        Sets the job's max_tokens: the request's, or the most that fits."""
        requested, param = payload.pop("max_tokens"), payload.pop("_max_param")
        assert self.s.max_prompt_tokens is not None  # ServeSettings.__post_init__ fills it
        if n_prompt > self.s.max_prompt_tokens:
            raise too_large(
                f"the prompt is {n_prompt} tokens; this server accepts at most {self.s.max_prompt_tokens}",
                param=prompt_param,
            )
        room = self.s.n_ctx - n_prompt
        if requested is not None and requested > room:
            raise bad_request(
                f"this model's context is {self.s.n_ctx} tokens; the prompt is {n_prompt} and "
                f"'{param}' asks for {requested} more",
                param=param,
                code="context_length_exceeded",
            )
        max_tokens = requested if requested is not None else min(self.s.max_tokens_limit, room)
        if payload["min_tokens"] > max_tokens:
            raise bad_request(
                f"'min_tokens' ({payload['min_tokens']}) must not exceed the maximum tokens ({max_tokens})",
                param="min_tokens",
            )
        payload["max_tokens"] = max_tokens
        return payload

    @staticmethod
    def stops(body: dict) -> list[str]:
        stop = body.get("stop")
        if stop is None:
            return []
        if isinstance(stop, str):
            return [stop]
        if isinstance(stop, list) and all(isinstance(x, str) for x in stop) and len(stop) <= MAX_STOPS:
            return stop
        raise bad_request(f"'stop' must be a string or a list of at most {MAX_STOPS} strings", param="stop")

    def sampling(self, body: dict) -> dict[str, Any]:
        """Check every sampling field on its own (type, range); return the worker's job payload,
        still to be `fit()` to the prompt's length."""
        _num(body, "n", 1, 1, 1, integer=True)
        self.check_unsupported(body)
        requested, param = self.requested_tokens(body)
        return {
            "max_tokens": requested,
            "_max_param": param,
            "min_tokens": _num(body, "min_tokens", 0, 0, None, integer=True),
            "stop": self.stops(body),
            "temperature": float(_num(body, "temperature", 1.0, 0.0, 2.0)),
            "top_p": float(_num(body, "top_p", 1.0, 0.0, 1.0)),
            "top_k": int(_num(body, "top_k", 0, -1, INT32_MAX, integer=True)),
            "min_p": float(_num(body, "min_p", 0.0, 0.0, 1.0)),
            "frequency_penalty": float(_num(body, "frequency_penalty", 0.0, -2.0, 2.0)),
            "presence_penalty": float(_num(body, "presence_penalty", 0.0, -2.0, 2.0)),
            "repetition_penalty": float(_num(body, "repetition_penalty", 1.0, 0.0, 10.0)),
            "seed": _num(body, "seed", None, INT64_MIN, INT64_MAX, integer=True),
            "ignore_eos": _bool(body, "ignore_eos"),
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
            if role not in ROLES:
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
            tokens = self.prompt.tokenize(prompt)
            if not tokens:
                raise bad_request("the prompt is empty (no tokens)", param="prompt", code="invalid_value")
            return tokens
        ids = _token_ids(prompt)
        if ids:
            nv = self.prompt.vocab_size()
            if any(t < 0 or t >= nv for t in ids):
                raise bad_request(f"token ids must be in 0..{nv - 1}", param="prompt", code="invalid_value")
            return ids
        raise bad_request("'prompt' must be a string or a list of token ids (one prompt per request)", param="prompt")

    def submit(self, payload: dict, tokens: list[int]) -> Job:
        return self.pool.submit(dict(payload, tokens=tokens))

    def model_card(self) -> dict:
        return {
            "id": self.s.served_name,
            "object": "model",
            "created": self.created,
            "owned_by": "dsdeploy",
            "root": self.s.served_name,  # vLLM puts the model's path here; a public API shouldn't
            "max_model_len": self.s.n_ctx,
        }

    def health(self) -> tuple[dict, int]:
        pool = self.pool
        alive = pool.alive_slots()
        if pool.draining:
            status = "draining"
        elif alive == 0:
            status = "unavailable"
        else:  # some slot dead, restarting or declared hung by the watchdog: serving, with less
            status = "ok" if alive == len(pool.slots) else "degraded"
        body = {
            "status": status,
            "model": self.s.served_name,
            "running": pool.running,
            "waiting": len(pool.waiting),
            "slots": [s.info() for s in pool.slots],
        }
        return body, 200 if status in ("ok", "degraded") else 503


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
    before it finishes. A client that stops reading, so that one write waits `write_timeout`
    seconds, counts as gone: the stream ends there and uvicorn closes the connection.
    """

    media_type = "text/event-stream"

    def __init__(self, body, on_disconnect, headers: dict[str, str], write_timeout: float = 30.0) -> None:
        self.status_code = 200
        self.background = None
        self._body = body
        self._on_disconnect = on_disconnect
        self._write_timeout = write_timeout
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
            async with asyncio.timeout(self._write_timeout):  # waits only while the client's window is full
                await raw_send({"type": "http.response.body", "body": data, "more_body": True})

        try:
            await self._body(send_frames)
            finished = True
            async with asyncio.timeout(self._write_timeout):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            logging.getLogger("uvicorn.error").warning(
                "a streaming client read nothing for %gs: dropping its stream", self._write_timeout
            )
        finally:
            watcher.cancel()
            if not finished:  # the send failed or we were cancelled: the client is gone
                finished = True
                self._on_disconnect()


def _error_json(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def _internal_error_response(exc: Exception) -> JSONResponse:
    return _error_json(
        APIError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error", code="internal_error")
    )


class _Chunks:
    """Prebuilt SSE frame pieces for one streamed response (a token's text, already JSON-escaped,
    is spliced between `pre` and `post`)."""

    def __init__(self, rid: str, created: int, name: str, chat: bool, include_usage: bool) -> None:
        usage_null = ',"usage":null' if include_usage else ""
        if chat:
            head = f'{{"id":"{rid}","object":"chat.completion.chunk","created":{created},"model":{_dumps(name)},"choices":[{{"index":0,"delta":'
            pre, post = head + '{"content":', '},"logprobs":null,"finish_reason":null}]' + usage_null + "}"
            self.fin_pre, self.fin_post = head + '{},"logprobs":null,"finish_reason":', "}]" + usage_null + "}"
            self.obj = "chat.completion.chunk"
            role = '{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]'
            self.first = _sse(head + role + usage_null + "}")
        else:
            head = f'{{"id":"{rid}","object":"text_completion","created":{created},"model":{_dumps(name)},"choices":[{{"index":0,'
            pre, post = head + '"text":', ',"logprobs":null,"finish_reason":null}]' + usage_null + "}"
            self.fin_pre, self.fin_post = head + '"text":"","logprobs":null,"finish_reason":', "}]" + usage_null + "}"
            self.obj = "text_completion"
            self.first = b""
        self.pre_b = b"data: " + pre.encode()
        self.post_b = post.encode() + b"\n\n"
        self.rid, self.created, self.name, self.include_usage = rid, created, name, include_usage

    def text(self, literal: bytes) -> bytes:
        return self.pre_b + literal + self.post_b

    def end(self, finish: str, n_prompt: int, n_out: int) -> list[bytes]:
        out = [_sse(self.fin_pre + _dumps(finish) + self.fin_post)]
        if self.include_usage:
            usage = {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out}
            body = {
                "id": self.rid,
                "object": self.obj,
                "created": self.created,
                "model": self.name,
                "choices": [],
                "usage": usage,
            }
            out.append(_sse(_dumps(body)))
        return out


class Generation:
    """The two generation endpoints: checks, submit to the pool, then a JSON body or an SSE stream."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.pool = srv.pool
        self.m = srv.m

    async def handle(self, request: Request, chat: bool):
        t0 = time.perf_counter()
        srv = self.srv
        srv.auth(request)
        if self.pool.draining:
            raise unavailable("server is shutting down", code="shutting_down")
        body = await srv.body(request)
        srv.check_model(body)
        stream, include_usage = srv.stream_opts(body)
        payload = srv.sampling(body)  # every field's own check first, then the (costlier) prompt
        tokens = srv.chat_tokens(body) if chat else srv.completion_tokens(body)
        payload = srv.fit(payload, len(tokens), "messages" if chat else "prompt")
        job = srv.submit(payload, tokens)
        self.m.requests.labels("/v1/chat/completions" if chat else "/v1/completions", "200").inc()
        self.m.prompt_tokens.inc(len(tokens))
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        headers = {"x-request-id": request.headers.get("x-request-id") or rid}
        created = int(time.time())
        name = srv.s.served_name
        if stream:
            chunks = _Chunks(rid, created, name, chat, include_usage)
            body = self._stream(job, chunks, len(tokens), t0)
            return SSEResponse(body, lambda: self._abort(job), headers, srv.s.write_timeout)
        return await self._complete(request, job, rid, created, chat, len(tokens), t0, headers)

    async def _complete(self, request, job, rid, created, chat, n_prompt, t0, headers) -> JSONResponse:
        watcher = asyncio.ensure_future(self._watch_disconnect(request, job))
        try:
            text, finish, n_out, err = await self._collect(job, t0)
        finally:
            watcher.cancel()
        if err is not None:
            if err.code == "engine_error":
                self.m.engine_errors.inc()
            return _error_json(err)
        usage = {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out}
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
        name = self.srv.s.served_name
        return JSONResponse(
            {"id": rid, "object": obj, "created": created, "model": name, "choices": [choice], "usage": usage},
            headers=headers,
        )

    async def _watch_disconnect(self, request: Request, job: Job) -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                self._abort(job)
                return

    def _observe(self, t0: float, t_first: float | None, t_last: float, n_out: int, job: Job, end: dict) -> None:
        m = self.m
        m.generation_tokens.inc(n_out)
        if end.get("pf") is not None:
            m.prefill.observe(end["pf"])
        if job.started is not None:
            m.queue_time.observe(job.started - t0)
        if t_first is not None:
            m.ttft.observe(t_first - t0)
            if n_out > 1:
                m.tpot.observe((t_last - t_first) / (n_out - 1))
        m.e2e.observe(t_last - t0)

    def _abort(self, job: Job) -> None:
        """The client is gone before its job finished: stop it, count it, end its stream."""
        if not job.done and not job.cancelled:
            self.pool.cancel(job)
            self.m.aborted.inc()
        job.wake()

    async def _collect(self, job: Job, t0: float):
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
                    self._observe(t0, t_first, time.perf_counter(), n_out, job, ev)
                    text = json.loads(b'"' + b"".join(parts) + b'"') + ev.get("t", "")
                    return text, ev["e"], n_out, None
                return None, None, 0, _job_error(ev)

    def _stream(self, job: Job, c: _Chunks, n_prompt: int, t0: float):
        """The SSE body: one chunk per token, all chunks that are ready at once in one write."""

        async def body(send) -> None:
            t_first = None
            # The chat role chunk goes out with the first token, not before the prefill: clients
            # and benchmarks (vLLM's, ours) take the first chunk as the first token, and vLLM
            # likewise sends its role chunk once the first token exists.
            role_chunk = c.first
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
                            out.append(c.text(ev))
                        continue
                    end = ev
                    break
                if end is None:
                    await send(b"".join(out))
                    continue
                out += self._stream_end(job, c, end, n_prompt, t0, t_first)
                out.append(b"data: [DONE]\n\n")
                await send(b"".join(out))
                return

        return body

    def _stream_end(self, job: Job, c: _Chunks, end: dict, n_prompt: int, t0: float, t_first) -> list[bytes]:
        if "e" not in end:  # an engine error, a crash, the watchdog or the drain: one error event
            err = _job_error(end)
            if err.code == "engine_error":
                self.m.engine_errors.inc()
            return [err.sse()]
        n_out = end["n"]
        if t_first is None and n_out:
            t_first = time.perf_counter()
        self._observe(t0, t_first, time.perf_counter(), n_out, job, end)
        out = [c.text(_dumps(end["t"]).encode())] if end.get("t") else []
        return out + c.end(end["e"], n_prompt, n_out)

    def endpoint(self, path: str, chat: bool):
        """The ASGI handler `_App.__call__` calls for `POST path`, without FastAPI."""
        m = self.m

        async def endpoint(scope, receive, send) -> None:
            try:
                response = await self.handle(Request(scope, receive), chat)
            except ClientGone:
                return
            except APIError as exc:
                m.requests.labels(path, str(exc.status)).inc()
                response = _error_json(exc)
            except Exception as exc:  # as FastAPI's handler: a 500 with the reason, and the traceback logged
                logging.getLogger("uvicorn.error").exception("internal error in %s", path)
                m.requests.labels(path, "500").inc()
                response = _internal_error_response(exc)
            await response(scope, receive, send)

        return endpoint


def _job_error(ev: dict) -> APIError:
    if CRASHED in ev:
        return ev[CRASHED]
    return APIError(500, f"engine error: {ev.get('x')}", type="server_error", code="engine_error")


def _install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        metrics.requests.labels(route_label(request.scope), str(exc.status)).inc()
        return _error_json(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        kind = {404: "not_found_error"}.get(exc.status_code, "invalid_request_error")
        metrics.requests.labels(route_label(request.scope), str(exc.status_code)).inc()
        err = APIError(
            exc.status_code,
            f"{request.method} {request.url.path}: {exc.detail}",
            type=kind,
            code=str(exc.status_code),
            headers=dict(exc.headers or {}),  # a 405 carries its Allow header
        )
        return _error_json(err)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        return _internal_error_response(exc)


def _integer_alternatives(schema: dict):
    """The integer schemas among `schema` and its anyOf alternatives, at any array depth."""
    for alt in schema.get("anyOf", [schema]):
        while alt.get("type") == "array":
            alt = alt["items"]
        if alt.get("type") == "integer":
            yield alt


def _server_bounds(comps: dict, srv: Server) -> None:
    """This server's own limits in the request schemas: --max-tokens-limit, the vocabulary."""
    nv = srv.prompt.vocab_size()
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        props = comps[name]["properties"]
        for field in ("max_tokens", "max_completion_tokens"):
            for alt in _integer_alternatives(props[field]):
                alt["maximum"] = srv.s.max_tokens_limit
        for alt in _integer_alternatives(props["min_tokens"]):
            alt["maximum"] = srv.s.max_tokens_limit
    for alt in _integer_alternatives(comps["CompletionRequest"]["properties"]["prompt"]):
        alt.update(minimum=0, maximum=nv - 1)


def _openapi(app: FastAPI, srv: Server, version: str):
    """`/openapi.json`: FastAPI's document of the routes, plus the request bodies of the two
    generation endpoints (their handlers read the body themselves, so FastAPI can't see it)."""

    def build() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=version, description=app.description, routes=app.routes)
        models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
            (m, "validation") for m in schemas.REQUEST_MODELS.values()
        ]
        refs, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
        spec.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        for path, model in schemas.REQUEST_MODELS.items():
            spec["paths"][path]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(model, "validation")]}},
            }
        for ops in spec["paths"].values():  # no route here answers 422: bad input is 400
            for op in ops.values():
                op.get("responses", {}).pop("422", None)
        comps = spec["components"]["schemas"]
        _server_bounds(comps, srv)
        for unused in ("HTTPValidationError", "ValidationError"):
            comps.pop(unused, None)
        comps_sec = spec["components"].setdefault("securitySchemes", {})
        comps_sec["bearer"] = {"type": "http", "scheme": "bearer"}
        for path, ops in spec["paths"].items():
            if path.startswith("/v1/"):
                for op in ops.values():
                    op["security"] = [{"bearer": []}]
        app.openapi_schema = spec
        return spec

    return build


def _install_routes(app: FastAPI, srv: Server, gen: Generation) -> None:
    metrics = srv.m
    gen_responses = schemas.error_responses(400, 401, 404, 408, 413, 429, 503)
    model_errors = schemas.error_responses(401, 404)

    @app.get("/health", response_model=schemas.Health, responses={503: {"model": schemas.Health}})
    async def health():
        body, status = srv.health()
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", response_class=PlainTextResponse, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def prom():
        """Prometheus metrics; open without the API key, as vLLM's /metrics. Every label value
        comes from a fixed set (route templates, status codes), so the series are bounded."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", response_model=schemas.ModelList, responses=schemas.error_responses(401))
    async def models(request: Request):
        srv.auth(request)
        metrics.requests.labels("/v1/models", "200").inc()
        return {"object": "list", "data": [srv.model_card()]}

    @app.get("/v1/models/{model_id:path}", response_model=schemas.ModelCard, responses=model_errors)
    async def model(model_id: str, request: Request):
        srv.auth(request)
        if model_id not in srv.model_names:
            raise not_found(f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
        metrics.requests.labels("/v1/models/{model_id:path}", "200").inc()
        return srv.model_card()

    sse = {"text/event-stream": {"schema": schemas.SSE_EVENT}}

    @app.post(
        "/v1/chat/completions",
        response_model=schemas.ChatCompletion,
        responses={200: {"content": sse, "description": schemas.SSE_DESCRIPTION}, **gen_responses},
    )
    async def chat_completions(request: Request):
        """OpenAI chat completions (`stream: true` for SSE)."""
        return await gen.handle(request, chat=True)

    @app.post(
        "/v1/completions",
        response_model=schemas.Completion,
        responses={200: {"content": sse, "description": schemas.SSE_DESCRIPTION}, **gen_responses},
    )
    async def completions(request: Request):
        """OpenAI (legacy) completions (`stream: true` for SSE)."""
        return await gen.handle(request, chat=False)


def create_app(settings: ServeSettings, prompt, pool: EnginePool, metrics: Metrics | None = None) -> FastAPI:
    metrics = metrics or Metrics()
    srv = Server(settings, prompt, pool, metrics)
    gen = Generation(srv)
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

    from dsdeploy import __version__

    app = _App(
        title="dsdeploy serve",
        description="An OpenAI-compatible API for a GGUF model (docs/serve.md).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        redirect_slashes=False,  # `/v1/models/` is a 404 in the error shape, not a 307
    )
    app.openapi = _openapi(app, srv, __version__)  # type: ignore[method-assign]
    app.state.server = srv
    _install_error_handlers(app, metrics)
    _install_routes(app, srv, gen)
    app.fast_routes = {
        ("POST", path): gen.endpoint(path, chat)
        for path, chat in (("/v1/chat/completions", True), ("/v1/completions", False))
    }
    return app
