"""Connection limits applied before any request work: a cap on open connections and a deadline for
each request's head.

uvicorn has neither in the form needed: its `limit_concurrency` answers 503 only once a request's
headers are complete (a client that sends half a request line is held forever), and its
`timeout_keep_alive` runs only between requests. So `guarded_protocol()` subclasses uvicorn's
httptools protocol:

- on `connection_made`, past `max_connections` open connections: a 503 in the OpenAI error shape
  and the connection closed, before a byte of it is read;
- a request's head (request line + headers) must be complete within `header_timeout` seconds of
  the connection opening or of the request's first byte: else 408 and the connection closed;
- and within MAX_HEAD_BYTES: else 431 and the connection closed (httptools itself sets no bound,
  so a fast client could send an endless header within the deadline).

The body has its own idle deadline (`body_timeout`), enforced where it is read (serve/app.py).
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _raw_error(status: int, reason: str, message: str, code: str, type_: str) -> bytes:
    body = json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n"
    )
    if status == 503:
        head += "retry-after: 1\r\n"
    return head.encode() + b"\r\n" + body


MAX_HEAD_BYTES = 64 * 1024  # nginx's large_client_header_buffers is 4 x 8 KiB; uvicorn's h11 16 KiB


class GuardedHttpTools(HttpToolsProtocol):
    max_connections = 512
    header_timeout = 10.0

    _header_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(
                _raw_error(
                    503,
                    "Service Unavailable",
                    f"server is at its connection limit ({self.max_connections}); retry later",
                    "too_many_connections",
                    "server_error",
                )
            )
            transport.close()
            return
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def data_received(self, data: bytes) -> None:
        was_in_head = self._header_timer is not None
        super().data_received(data)
        if self._header_timer is None:  # no head in progress (a chunk that ends one may carry body)
            return
        self._head_bytes = (self._head_bytes if was_in_head else 0) + len(data)
        if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._disarm_header_timer()
            self.transport.write(
                _raw_error(
                    431,
                    "Request Header Fields Too Large",
                    f"the request head is over {MAX_HEAD_BYTES} bytes",
                    "header_too_large",
                    "invalid_request_error",
                )
            )
            self.transport.close()

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        self.transport.write(
            _raw_error(
                408,
                "Request Timeout",
                f"the request head did not arrive within {self.header_timeout:g}s",
                "header_timeout",
                "invalid_request_error",
            )
        )
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """A request httptools can't parse: uvicorn's plain-text 400, in the OpenAI error shape."""
        self.transport.write(_raw_error(400, "Bad Request", msg, "invalid_http", "invalid_request_error"))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()  # a keep-alive connection's next request: its own deadline

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


def guarded_protocol(max_connections: int, header_timeout: float) -> type[GuardedHttpTools]:
    """The protocol class for `uvicorn.Config(http=...)`, with these limits."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpTools,),
        {"max_connections": max_connections, "header_timeout": header_timeout},
    )
