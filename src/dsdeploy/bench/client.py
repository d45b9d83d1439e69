"""One streaming request to an OpenAI-compatible endpoint, timed as `vllm bench serve` times it.

The hot path of the load generator: raw httpx streaming (`aiter_raw`), SSE split on bytes, and
one `json.loads` per event. Every failure becomes a `RequestResult` with an error type; nothing
raised here escapes to the sweep except cancellation handling, which also returns a result.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

import httpx

from dsdeploy.bench.metrics import RequestResult
from dsdeploy.bench.sse import SSEParser


def build_payload(
    chat: bool,
    model: str,
    prompt: str,
    output_len: int,
    fixed_output: bool = True,
    stream: bool = True,
) -> dict:
    """The request body. Sends max_tokens (and max_completion_tokens for chat) and, with
    ``fixed_output``, min_tokens = max_tokens and ignore_eos so the output length is fixed where
    the server supports it."""
    body: dict = {"model": model}
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
        body["max_completion_tokens"] = output_len
    else:
        body["prompt"] = prompt
    body["max_tokens"] = output_len
    if fixed_output:
        body["min_tokens"] = output_len
        body["ignore_eos"] = True
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def classify_exception(exc: BaseException) -> str:
    """An error type for an exception raised while sending or streaming."""
    if isinstance(exc, (httpx.TimeoutException, asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return "dropped_stream"
    if isinstance(exc, ValueError):  # JSON decode errors
        return "invalid_response"
    if isinstance(exc, httpx.HTTPError):
        return type(exc).__name__.lower()
    return type(exc).__name__.lower()


async def stream_request(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    chat: bool,
    prompt_len: int = 0,
    collect_text: bool = False,
    text_out: list[str] | None = None,
) -> RequestResult:
    """Send one streaming request and time it.

    ``body`` is the JSON-encoded payload. ``prompt_len`` is the local estimate, replaced by the
    server's ``usage.prompt_tokens`` when reported. With ``collect_text`` the generated text is
    appended to ``text_out`` (for counting tokens locally when the server sends no usage).
    """
    res = RequestResult(prompt_tokens=prompt_len)
    st = perf_counter()
    res.start = st
    sse = SSEParser(res, st, chat, text_out if collect_text else None)
    try:
        async with client.stream("POST", url, content=body, headers=headers) as resp:
            if resp.status_code != 200:
                res.error_type = f"http_{resp.status_code}"
                try:
                    res.error = (await resp.aread())[:300].decode("utf-8", "replace")
                except httpx.HTTPError:
                    pass
                return res
            feed = sse.feed
            async for raw in resp.aiter_raw():
                feed(raw, perf_counter())
                if sse.failed:
                    return res
    except asyncio.CancelledError:
        res.error_type = "cancelled"
        return res
    except Exception as exc:  # noqa: BLE001 - every failure is counted, none crashes the run
        res.error_type = classify_exception(exc)
        res.error = f"{type(exc).__name__}: {exc}"[:300]
        return res
    return sse.close()
