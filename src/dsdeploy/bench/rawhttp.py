"""A minimal HTTP/1.1 streaming client on `asyncio.Protocol`: the load generator's fast path.

Why: per streamed token, httpx walks anyio -> httpcore -> h11 -> httpx and wakes a task; that costs
~70 us of CPU per token, which caps one core near 14k tokens/s. Here the bytes are parsed in the
protocol's `data_received` callback itself (chunked decoding + SSE), and the waiting task is woken
once per request. It speaks only what OpenAI-compatible servers answer to a streaming POST:
HTTP/1.1, keep-alive, chunked / content-length / close-delimited bodies, optional TLS.

One `RawClient` holds one keep-alive connection (one per worker, like a browser's per-host
connection), so there is no pool bookkeeping on the hot path.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from time import perf_counter
from urllib.parse import urlsplit

from dsdeploy.bench.metrics import RequestResult
from dsdeploy.bench.sse import SSEParser


class _Conn(asyncio.Protocol):
    __slots__ = (
        "transport", "closed", "fut", "sse", "res", "head", "status", "headers_done", "chunked",
        "remaining", "need", "cbuf", "body_done", "keep_alive", "err_body", "got_bytes", "activity",
    )  # fmt: skip
    transport: asyncio.Transport  # set by connection_made, before create_connection returns

    def __init__(self):
        self.closed = False
        self.fut: asyncio.Future | None = None
        self.activity = 0.0

    # -- per request -------------------------------------------------------------------------
    def begin(self, fut: asyncio.Future, sse: SSEParser, res: RequestResult) -> None:
        self.fut = fut
        self.sse = sse
        self.res = res
        self.head = b""
        self.status = 0
        self.headers_done = False
        self.chunked = False
        self.remaining = -1  # content-length left; -1: until close
        self.need = 0  # chunk bytes left; -2: expect CRLF after chunk data
        self.cbuf = b""
        self.body_done = False
        self.keep_alive = True
        self.err_body = b""
        self.got_bytes = False
        self.activity = perf_counter()

    def _finish(self, err_type: str = "", err: str = "") -> None:
        fut = self.fut
        if fut is None:
            return
        self.fut = None
        res = self.res
        if err_type:
            res.error_type, res.error = err_type, err
        elif self.status != 200:
            res.error_type = f"http_{self.status}"
            res.error = self.err_body[:300].decode("utf-8", "replace")
        else:
            self.sse.close()
        if not fut.done():
            fut.set_result(res)

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        if self.fut is None:
            return
        if self.headers_done and not self.chunked and self.remaining == -1:
            self.body_done = True  # close-delimited body: a clean end
            self._finish()
        elif not self.got_bytes:
            self._finish("connection_closed", "the server closed the connection before answering")
        else:
            self._finish("dropped_stream", f"connection closed mid-response{f': {exc}' if exc else ''}")

    def data_received(self, data: bytes) -> None:
        now = perf_counter()
        self.activity = now
        self.got_bytes = True
        if self.fut is None:
            return  # bytes after a finished response: ignore
        if not self.headers_done:
            data = self.head + data
            i = data.find(b"\r\n\r\n")
            if i < 0:
                self.head = data
                if len(data) > 65536:
                    self._finish("invalid_response", "response head too large")
                    self.transport.close()
                return
            self._parse_head(data[:i])
            data = data[i + 4 :]
            self.headers_done = True
            if self.status != 200 and not (self.chunked or self.remaining > 0):
                if self.remaining == 0:
                    self._done()
                    return
        if self.chunked:
            data = self._dechunk(data)
        elif self.remaining >= 0:
            if len(data) >= self.remaining:
                data = data[: self.remaining]
                self.remaining = 0
                self.body_done = True
            else:
                self.remaining -= len(data)
        if data:
            if self.status == 200:
                try:
                    self.sse.feed(data, now)
                except ValueError as exc:  # malformed JSON in an event
                    self._finish("invalid_response", f"bad event: {exc}"[:300])
                    self.transport.close()
                    return
                if self.sse.failed:
                    self._finish()
                    self.transport.close()
                    return
            elif len(self.err_body) < 300:
                self.err_body += data
        if self.body_done:
            self._done()

    def _done(self) -> None:
        keep = self.keep_alive
        self._finish()
        if not keep:
            self.transport.close()

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        try:
            self.status = int(parts[1])
        except (IndexError, ValueError):
            self.status = 0
        version = parts[0]
        self.keep_alive = version == b"HTTP/1.1"
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"transfer-encoding":
                self.chunked = b"chunked" in v.lower()
            elif k == b"content-length":
                try:
                    self.remaining = int(v.strip())
                except ValueError:
                    pass
            elif k == b"connection":
                lv = v.strip().lower()
                if lv == b"close":
                    self.keep_alive = False
                elif lv == b"keep-alive":
                    self.keep_alive = True
        if self.chunked:
            self.remaining = -1
        elif self.remaining < 0:
            self.keep_alive = False  # body runs until the server closes

    def _dechunk(self, data: bytes) -> bytes:
        buf = self.cbuf + data if self.cbuf else data
        pos, n = 0, len(buf)
        out = []
        need = self.need
        while pos < n:
            if need > 0:
                take = n - pos if n - pos < need else need
                out.append(buf[pos : pos + take])
                pos += take
                need -= take
                if need == 0:
                    need = -2
            elif need == -2:
                if n - pos < 2:
                    break
                pos += 2
                need = 0
            else:
                j = buf.find(b"\r\n", pos)
                if j < 0:
                    break
                try:
                    size = int(buf[pos:j].split(b";", 1)[0], 16)
                except ValueError:
                    self.need = 0
                    self.cbuf = b""
                    self._finish("invalid_response", "bad chunk size")
                    self.transport.close()
                    return b""
                pos = j + 2
                if size == 0:
                    self.body_done = True  # trailers, if any, are ignored
                    pos = n
                    break
                need = size
        self.need = need
        self.cbuf = buf[pos:] if pos < n else b""
        return out[0] if len(out) == 1 else b"".join(out)


class RawClient:
    """One keep-alive HTTP/1.1 connection to ``base_url``; one request at a time."""

    def __init__(self, base_url: str, timeout_s: float, ssl_context: _ssl.SSLContext | None = None):
        u = urlsplit(base_url)
        self.https = u.scheme == "https"
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if self.https else 80)
        self.host_header = u.netloc.encode()
        self.timeout = timeout_s
        self.ssl = (ssl_context or _ssl.create_default_context()) if self.https else None
        self.conn: _Conn | None = None

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(_Conn, self.host, self.port, ssl=self.ssl),
            timeout=min(self.timeout, 30.0),
        )
        return proto

    def close(self) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.transport.close()
        self.conn = None

    async def post_stream(
        self, path: str, body: bytes, headers: dict[str, str], chat: bool,
        prompt_len: int = 0, text_out: list[str] | None = None,
    ) -> RequestResult:  # fmt: skip
        """POST ``body`` and time the SSE stream; never raises (except cancellation is turned
        into an error_type "cancelled" result)."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() not in ("host", "content-length"))
        req = (
            b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\naccept: text/event-stream\r\n%s\r\n"
            % (path.encode(), self.host_header, len(body), extra.encode("latin-1"))
        ) + body
        for attempt in (0, 1):
            reused = self.conn is not None and not self.conn.closed
            res = RequestResult(prompt_tokens=prompt_len)
            st = perf_counter()  # before connecting, as vLLM's timer starts before session.post
            try:
                if not reused:
                    self.conn = await self._connect()
            except asyncio.CancelledError:
                res.error_type = "cancelled"
                return res
            except TimeoutError:
                res.error_type, res.error = "timeout", "connect timeout"
                return res
            except OSError as exc:
                res.error_type, res.error = "connect_error", f"{type(exc).__name__}: {exc}"[:300]
                return res
            conn = self.conn
            assert conn is not None  # reused or connected just above
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            res.start = st
            conn.begin(fut, SSEParser(res, st, chat, text_out), res)
            conn.transport.write(req)
            timer = loop.call_later(self.timeout, self._check_timeout, conn, fut)
            try:
                res = await fut
            except asyncio.CancelledError:
                conn.fut = None
                conn.transport.close()
                self.conn = None
                res.error_type = "cancelled"
                return res
            finally:
                timer.cancel()
            if conn.closed:
                self.conn = None
            if res.error_type == "connection_closed" and reused and attempt == 0:
                continue  # the server had closed the idle keep-alive connection: resend once
            return res
        return res

    def _check_timeout(self, conn: _Conn, fut: asyncio.Future) -> None:
        """Fires every `timeout` seconds while a request runs; fails it when no byte came in
        the last `timeout` seconds."""
        if fut.done() or conn.fut is not fut:
            return
        idle = perf_counter() - conn.activity
        if idle >= self.timeout * 0.999:
            conn._finish("timeout", f"no data for {self.timeout:g} s")
            conn.transport.close()
            return
        loop = asyncio.get_running_loop()
        loop.call_later(self.timeout - idle, self._check_timeout, conn, fut)
