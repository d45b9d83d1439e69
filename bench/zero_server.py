#!/usr/bin/env python3
"""A zero-work OpenAI-compatible streaming server, for testing and calibrating `dsdeploy bench`.

Raw asyncio (no framework) so that the server side costs as little CPU as possible. It speaks
HTTP/1.1 with keep-alive and streams Server-Sent Events with chunked transfer encoding.

Endpoints: POST /v1/completions, POST /v1/chat/completions (streaming or not), GET /v1/models,
GET /health, GET /stats (requests seen). Any `x-request-id` header is accepted. A generation request gets exactly
`max_tokens` tokens (chat: `max_completion_tokens`, else `max_tokens`; `--tokens` overrides),
the first after `--ttft-ms`, then one every `--token-delay-ms`. Prompt tokens are counted as
whitespace-separated words; `usage` is sent when `stream_options.include_usage` is set.

Fault injection, for the tests: `--fail-every K` answers every K-th generation request with HTTP
500; `--drop-every K` closes the connection of every K-th generation request half-way through
its stream.

    python bench/zero_server.py --port 8001 --token-delay-ms 10

With `--port 0` it binds a free port; it always prints `PORT <n>` on stdout once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

_CMPL = (
    b'{"id":"cmpl-zero","object":"text_completion","created":0,"model":"%s",'
    b'"choices":[{"index":0,"text":" tok","logprobs":null,"finish_reason":null}]}'
)
_CMPL_LAST = (
    b'{"id":"cmpl-zero","object":"text_completion","created":0,"model":"%s",'
    b'"choices":[{"index":0,"text":" tok","logprobs":null,"finish_reason":"length"}]}'
)
_CHAT_ROLE = (
    b'{"id":"chatcmpl-zero","object":"chat.completion.chunk","created":0,"model":"%s",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}'
)
_CHAT = (
    b'{"id":"chatcmpl-zero","object":"chat.completion.chunk","created":0,"model":"%s",'
    b'"choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]}'
)
_CHAT_LAST = (
    b'{"id":"chatcmpl-zero","object":"chat.completion.chunk","created":0,"model":"%s",'
    b'"choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":"length"}]}'
)


def _chunk(payload: bytes) -> bytes:
    """One SSE event framed as one HTTP chunk."""
    body = b"data: " + payload + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(body), body)


class Config:
    def __init__(self, args: argparse.Namespace):
        self.model = args.model
        self.ttft = args.ttft_ms / 1000.0
        self.delay = args.token_delay_ms / 1000.0
        self.tokens = args.tokens
        self.default_tokens = args.default_tokens
        self.fail_every = args.fail_every
        self.drop_every = args.drop_every
        self.no_usage = args.no_usage
        self.batch_ticks = args.batch_ticks
        self.ticker: Ticker | None = None
        m = self.model.encode()
        self.ev = {
            "cmpl": _chunk(_CMPL % m),
            "cmpl_last": _chunk(_CMPL_LAST % m),
            "chat_role": _chunk(_CHAT_ROLE % m),
            "chat": _chunk(_CHAT % m),
            "chat_last": _chunk(_CHAT_LAST % m),
        }
        self.done = _chunk(b"[DONE]") + b"0\r\n\r\n"
        self.generation_count = 0


def _count_prompt_tokens(body: dict) -> int:
    if "messages" in body:
        n = 0
        for msg in body.get("messages") or []:
            c = msg.get("content") if isinstance(msg, dict) else None
            if isinstance(c, str):
                n += len(c.split())
            elif isinstance(c, list):
                for part in c:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        n += len(part["text"].split())
        return n
    p = body.get("prompt", "")
    if isinstance(p, list):
        return sum(len(x.split()) if isinstance(x, str) else 1 for x in p)
    return len(str(p).split())


def _response(status: str, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s" % (
        status.encode(),
        ctype,
        len(body),
        body,
    )


class Ticker:
    """--batch-ticks: one timer for all streams. Every `delay` seconds each active stream gets its
    next token, so the server's cost per token is one transport.write (no per-stream timers)."""

    def __init__(self, delay: float):
        self.delay = delay
        self.streams: list = []
        self.task: asyncio.Task | None = None

    def add(self, stream) -> None:
        self.streams.append(stream)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        nxt = loop.time()
        while self.streams:
            nxt += self.delay
            await asyncio.sleep(max(0.0, nxt - loop.time()))
            self.streams = [s for s in self.streams if s.step()]


class ZeroProtocol(asyncio.Protocol):
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a streaming response is in progress
        self.closed = False
        self._can_write = asyncio.Event()
        self._can_write.set()

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        self._can_write.set()

    def pause_writing(self):
        self._can_write.clear()

    def resume_writing(self):
        self._can_write.set()

    def data_received(self, data: bytes):
        self.buf += data
        if not self.busy:
            self._process()

    def _process(self):
        while not self.busy and not self.closed:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, path, _ = lines[0].split(" ", 2)
            except ValueError:
                self.transport.write(_response("400 Bad Request", b"{}"))
                self.transport.close()
                return
            length = 0
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            if len(self.buf) < head_end + 4 + length:
                return
            body = self.buf[head_end + 4 : head_end + 4 + length]
            self.buf = self.buf[head_end + 4 + length :]
            self._handle(method, path.split("?", 1)[0], body)

    def _handle(self, method: str, path: str, body: bytes):
        cfg, t = self.cfg, self.transport
        if method == "GET" and path == "/health":
            t.write(_response("200 OK", b"{}"))
        elif method == "GET" and path == "/stats":
            t.write(_response("200 OK", json.dumps({"generation_requests": cfg.generation_count}).encode()))
        elif method == "GET" and path == "/v1/models":
            models = {
                "object": "list",
                "data": [{"id": cfg.model, "object": "model", "root": cfg.model, "owned_by": "zero"}],
            }
            t.write(_response("200 OK", json.dumps(models).encode()))
        elif method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                t.write(_response("400 Bad Request", b'{"error":"invalid json"}'))
                return
            chat = path.endswith("chat/completions")
            cfg.generation_count += 1
            k = cfg.generation_count
            if cfg.fail_every and k % cfg.fail_every == 0:
                t.write(_response("500 Internal Server Error", b'{"error":"injected failure"}'))
                return
            n = cfg.tokens
            if n is None:
                n = (req.get("max_completion_tokens") if chat else None) or req.get("max_tokens")
                n = int(n) if n else cfg.default_tokens
            drop = bool(cfg.drop_every and k % cfg.drop_every == 0)
            prompt_tokens = _count_prompt_tokens(req)
            if req.get("stream"):
                usage = bool((req.get("stream_options") or {}).get("include_usage")) and not cfg.no_usage
                self.busy = True
                asyncio.get_running_loop().create_task(self._stream(chat, n, prompt_tokens, usage, drop))
            else:
                text = " tok" * n
                if chat:
                    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                else:
                    choice = {"index": 0, "text": text, "finish_reason": "length"}
                out = {
                    "id": "zero",
                    "object": "chat.completion" if chat else "text_completion",
                    "created": int(time.time()),
                    "model": cfg.model,
                    "choices": [choice],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": n,
                        "total_tokens": prompt_tokens + n,
                    },
                }
                if cfg.ttft or cfg.delay:
                    self.busy = True

                    async def later():
                        await asyncio.sleep(cfg.ttft + cfg.delay * max(0, n - 1))
                        if not self.closed:
                            t.write(_response("200 OK", json.dumps(out).encode()))
                        self.busy = False
                        self._process()

                    asyncio.get_running_loop().create_task(later())
                else:
                    t.write(_response("200 OK", json.dumps(out).encode()))
        else:
            t.write(_response("404 Not Found", b'{"error":"not found"}'))

    def step(self) -> bool:
        """Ticker mode: write the next token; False when this stream is finished."""
        st = self._st
        if self.closed:
            return False
        i, n = st["i"], st["n"]
        if i == st["cut"]:
            self.transport.close()
            return False
        ev = self.cfg.ev
        if i == 0 and st["chat"]:
            self.transport.write(ev["chat_role"] + (st["last"] if n == 1 else st["tok"]))
        else:
            self.transport.write(st["last"] if i == n - 1 else st["tok"])
        st["i"] = i + 1
        if i + 1 < n:
            return True
        self._tail(st["chat"], n, st["prompt_tokens"], st["usage"])
        return False

    def _tail(self, chat: bool, n: int, prompt_tokens: int, usage: bool) -> None:
        cfg, t = self.cfg, self.transport
        tail = b""
        if usage:
            obj = "chat.completion.chunk" if chat else "text_completion"
            u = (
                b'{"id":"zero","object":"%s","created":0,"model":"%s","choices":[],'
                b'"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}'
                % (obj.encode(), cfg.model.encode(), prompt_tokens, n, prompt_tokens + n)
            )
            tail = _chunk(u)
        t.write(tail + cfg.done)
        self.busy = False
        self._process()

    async def _stream(self, chat: bool, n: int, prompt_tokens: int, usage: bool, drop: bool):
        cfg, t = self.cfg, self.transport
        ev = cfg.ev
        tok = ev["chat"] if chat else ev["cmpl"]
        last = ev["chat_last"] if chat else ev["cmpl_last"]
        t.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        if cfg.ttft:
            await asyncio.sleep(cfg.ttft)
        delay = cfg.delay
        cut = n // 2 if drop else -1
        if cfg.batch_ticks and delay:
            self._st = {
                "i": 0,
                "n": n,
                "cut": cut,
                "chat": chat,
                "tok": tok,
                "last": last,
                "prompt_tokens": prompt_tokens,
                "usage": usage,
            }
            if self.step():
                if cfg.ticker is None:
                    cfg.ticker = Ticker(delay)
                cfg.ticker.add(self)
            return
        for i in range(n):
            if self.closed:
                return
            if i == cut:
                t.close()  # dropped stream: connection closed mid-body
                return
            if i == 0 and chat:
                t.write(ev["chat_role"] + (last if n == 1 else tok))
            else:
                t.write(last if i == n - 1 else tok)
            if not self._can_write.is_set():
                await self._can_write.wait()
            if delay and i < n - 1:
                await asyncio.sleep(delay)
        if self.closed:
            return
        self._tail(chat, n, prompt_tokens, usage)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--model", default="zero")
    p.add_argument("--ttft-ms", type=float, default=0.0, help="delay before the first token")
    p.add_argument("--token-delay-ms", type=float, default=0.0, help="delay between tokens")
    p.add_argument("--tokens", type=int, default=None, help="fixed output tokens (ignore max_tokens)")
    p.add_argument("--default-tokens", type=int, default=16, help="when the request has no max_tokens")
    p.add_argument("--fail-every", type=int, default=0, help="HTTP 500 for every K-th request")
    p.add_argument("--drop-every", type=int, default=0, help="drop every K-th stream half-way")
    p.add_argument("--no-usage", action="store_true", help="never send the usage chunk")
    p.add_argument("--uvloop", action="store_true", help="use uvloop if installed")
    p.add_argument(
        "--batch-ticks",
        action="store_true",
        help="pace all streams from one timer (cheapest server; tokens on a shared clock)",
    )
    return p


async def serve(args: argparse.Namespace) -> None:
    cfg = Config(args)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ZeroProtocol(cfg), args.host, args.port, backlog=4096, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.uvloop:
        try:
            import uvloop  # type: ignore

            uvloop.install()
        except ImportError:
            print("uvloop not installed; using asyncio", file=sys.stderr)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    finally:
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
