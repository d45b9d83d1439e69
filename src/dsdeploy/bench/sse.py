"""Server-Sent Events parsing for OpenAI streams, shared by both transports.

Times are taken by the caller at the moment the bytes arrived; every event found in one read gets
that read's timestamp (as in vLLM, which also stamps per received chunk).
"""

from __future__ import annotations

import json
from typing import Any

from dsdeploy.bench.metrics import RequestResult

_loads = json.loads


class SSEParser:
    """Feeds raw body bytes, updates a RequestResult: ttft, itl, usage, finish state."""

    __slots__ = ("res", "st", "last", "events", "finished", "buf", "chat", "text", "failed")

    def __init__(self, res: RequestResult, st: float, chat: bool, text: list[str] | None = None):
        self.res = res
        self.st = st
        self.last = st
        self.events = 0
        self.finished = False  # saw [DONE] or a finish_reason
        self.failed = False  # the stream carried an error object
        self.buf = b""
        self.chat = chat
        self.text = text

    def feed(self, data: bytes, now: float) -> None:
        """Parse every complete event in the bytes so far; keep the incomplete tail for the next read."""
        buf = self.buf + data if self.buf else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        while True:
            i = buf.find(b"\n\n")
            if i < 0:
                break
            self._message(buf[:i], now)
            buf = buf[i + 2 :]
        self.buf = buf

    def _message(self, msg: bytes, now: float) -> None:
        """One SSE message: its `data:` lines; ":" comments (pings), event:, id:, retry: are skipped."""
        for line in msg.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.finished = True
            elif payload:
                self._event(_loads(payload), now)

    def _event(self, obj: dict[str, Any], now: float) -> None:
        """One JSON chunk: a token event (choices), the usage block, or an error object."""
        choices = obj.get("choices")
        if choices:
            self._choice(choices[0], now)
        usage = obj.get("usage")
        if usage:
            self._usage(usage)
        if not choices and obj.get("error") is not None:
            self.failed = True
            self.res.error_type = "stream_error"
            self.res.error = str(obj.get("error"))[:300]

    def _choice(self, c0: dict[str, Any], now: float) -> None:
        """A chunk carrying choices: the first one sets ttft, later ones add an inter-token latency."""
        if self.events:
            self.res.itl.append(now - self.last)
        else:
            self.res.ttft = now - self.st
        self.last = now
        self.events += 1
        if c0.get("finish_reason"):
            self.finished = True
        if self.text is not None:
            piece = (c0.get("delta") or {}).get("content") if self.chat else c0.get("text")
            if piece:
                self.text.append(piece)

    def _usage(self, usage: dict[str, Any]) -> None:
        """The server-reported token counts (sent in the last chunk with include_usage)."""
        ct = usage.get("completion_tokens")
        if ct is not None:
            self.res.output_tokens = int(ct)
            self.res.usage_reported = True
        pt = usage.get("prompt_tokens")
        if pt is not None:
            self.res.prompt_tokens = int(pt)

    def close(self) -> RequestResult:
        """Finish the request after the body ended; sets success or the error type."""
        res = self.res
        if self.failed:
            return res
        if not self.events:
            res.error_type = "no_tokens"
            res.error = "the stream ended without any token"
            return res
        if not self.finished:
            res.error_type = "dropped_stream"
            res.error = "the stream ended without a finish_reason or [DONE]"
            return res
        res.latency = self.last - self.st
        res.events = self.events
        res.success = True
        return res
