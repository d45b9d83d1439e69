"""The load generator: probe, calibrate, warm up, then run each load level.

A level is either a fixed concurrency (N workers, each sending its next request when the last one
finished) or a request rate (Poisson or constant arrivals, optionally capped in concurrency). It
ends after a request count or a duration (no new request after the deadline; the ones in flight
finish). Ctrl-C stops the sweep: in-flight requests are cancelled (and left out of the metrics)
and the levels measured so far, the current one partial, are returned.

Connections: each worker holds its own keep-alive connection, either a `RawClient` (the default:
an asyncio-protocol HTTP/1.1 client that parses in the read callback, see `rawhttp`) or a
single-connection httpx `AsyncClient` (`--transport httpx`; httpx's shared pool costs
O(connections) per request, hence one client per worker). The /v1/models probe always uses httpx.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import signal
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import httpx

from dsdeploy.bench.client import build_payload, stream_request
from dsdeploy.bench.metrics import RequestResult, calibrate_words, level_metrics, poisson_arrivals
from dsdeploy.bench.prompts import PromptSource, TokenizerFile
from dsdeploy.bench.rawhttp import RawClient
from dsdeploy.errors import UserError


@dataclass
class BenchConfig:
    base_url: str
    endpoint: str = "completions"  # or "chat"
    model: str | None = None
    api_key: str | None = None
    concurrencies: list[int] = field(default_factory=lambda: [1])
    request_rates: list[float] | None = None  # rate mode when set
    max_concurrency: int | None = None  # cap in rate mode
    arrival: str = "poisson"  # or "constant"
    num_requests: int | None = None
    duration_s: float | None = None
    input_len: int = 128
    output_len: int = 128
    tokenizer: str | None = None
    warmup: int = 1
    timeout_s: float = 300.0
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    seed: int = 0
    fixed_output: bool = True
    transport: str = "raw"  # "raw" (asyncio protocol, fast) or "httpx"


@dataclass
class LevelRun:
    concurrency: int | None
    request_rate: float | None
    results: list[RequestResult]
    duration_s: float
    interrupted: bool = False
    cancelled: int = 0


_SSL: ssl.SSLContext | None = None


def _shared_ssl_context() -> ssl.SSLContext:
    global _SSL
    if _SSL is None:
        _SSL = ssl.create_default_context()
    return _SSL


def normalize_base_url(url: str) -> str:
    """'http://h:p', 'http://h:p/', 'http://h:p/v1' all become 'http://h:p'."""
    u = url.strip().rstrip("/")
    if not u.startswith(("http://", "https://")):
        raise UserError(f"the URL must start with http:// or https://, got {url!r}")
    if u.endswith("/v1"):
        u = u[:-3]
    return u


def default_num_requests(concurrency: int | None, rate: float | None) -> int:
    """Requests per level when neither --num-requests nor --duration is given."""
    if concurrency:
        return max(16, 4 * concurrency)
    return max(16, int(4 * (rate or 4)))


class Runner:
    """Runs a sweep. ``on_progress(done, errors, total)`` is called from a ticker a few times a
    second when given; the hot path only bumps counters."""

    def __init__(self, cfg: BenchConfig, log: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.base = normalize_base_url(cfg.base_url)
        self.chat = cfg.endpoint == "chat"
        self.path = "/v1/chat/completions" if self.chat else "/v1/completions"
        self.url = self.base + self.path
        if cfg.transport not in ("raw", "httpx"):
            raise UserError(f"unknown transport {cfg.transport!r}: raw or httpx")
        self.headers = {"content-type": "application/json"}
        if cfg.api_key:
            self.headers["authorization"] = f"Bearer {cfg.api_key}"
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.tokenizer = TokenizerFile(cfg.tokenizer) if cfg.tokenizer else None
        self.prompts = PromptSource(cfg.input_len, cfg.seed, self.tokenizer)
        self.model: str | None = cfg.model
        self.fixed_output = cfg.fixed_output
        self.calibration: dict = {}
        self.stopped = False
        self.done = 0
        self.errors = 0
        self.total: int | None = None
        self._tasks: set[asyncio.Task] = set()
        # one SSL context for every client: httpx would build one per client otherwise (slow)
        self._ssl = _shared_ssl_context()
        self._level_bases: list[int] = []
        self._idle: list[httpx.AsyncClient | RawClient] = []
        self._all: list[httpx.AsyncClient | RawClient] = []
        self._timeout = httpx.Timeout(cfg.timeout_s, connect=min(cfg.timeout_s, 30.0))

    # -- connections -------------------------------------------------------------------------
    def _client(self):
        if self._idle:
            return self._idle.pop()
        if self.cfg.transport == "raw":
            c = RawClient(self.base, self.cfg.timeout_s, self._ssl)
            self._all.append(c)
            return c
        return self._httpx_client()

    def _httpx_client(self) -> httpx.AsyncClient:
        c = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=self._timeout,
            trust_env=False,
            verify=self._ssl,
        )
        self._all.append(c)
        return c

    def _release(self, c) -> None:
        self._idle.append(c)

    async def _send(self, c, body: bytes, prompt_len: int = 0, text: list[str] | None = None) -> RequestResult:
        if isinstance(c, RawClient):
            return await c.post_stream(self.path, body, self.headers, self.chat, prompt_len, text)
        return await stream_request(c, self.url, body, self.headers, self.chat, prompt_len,
                                    collect_text=text is not None, text_out=text)  # fmt: skip

    async def aclose(self) -> None:
        for c in self._all:
            try:
                if isinstance(c, RawClient):
                    c.close()
                else:
                    await c.aclose()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._all.clear()
        self._idle.clear()

    # -- probe and calibration -----------------------------------------------------------------
    async def probe(self) -> None:
        """Check the server answers before any load: a refused connection or a bad endpoint is a
        UserError at once. Learns the model name from /v1/models when not given."""
        c = self._httpx_client()
        try:
            try:
                r = await c.get(self.base + "/v1/models", headers=self.headers, timeout=min(self.cfg.timeout_s, 10.0))
            except httpx.ConnectError as exc:
                raise UserError(
                    f"cannot connect to {self.base}: {exc or 'connection refused'}. Is the server running?"
                ) from None
            except httpx.TimeoutException:
                raise UserError(f"{self.base} did not answer within {min(self.cfg.timeout_s, 10.0):g} s") from None
            except httpx.HTTPError as exc:
                raise UserError(f"cannot reach {self.base}: {exc}") from None
            if r.status_code in (401, 403):
                raise UserError(f"{self.base} refused the API key (HTTP {r.status_code}); pass --api-key")
            if self.model is None:
                try:
                    data = r.json().get("data") or []
                    self.model = data[0]["id"]
                except Exception:  # noqa: BLE001
                    raise UserError(
                        f"could not read a model from {self.base}/v1/models (HTTP {r.status_code}); pass --model"
                    ) from None
        finally:
            await c.aclose()

    async def _one(self, prompt: str, out_len: int, tries: int = 3) -> RequestResult:
        """A probe request; transient failures (5xx, dropped stream, timeout) are retried."""
        body = json.dumps(build_payload(self.chat, self.model or "", prompt, out_len, self.fixed_output)).encode()
        c = self._client()
        try:
            for _ in range(tries):
                r = await self._send(c, body)
                if r.success or not (r.error_type.startswith("http_5") or r.error_type in
                                     ("dropped_stream", "timeout", "no_tokens")):  # fmt: skip
                    return r
            return r
        finally:
            self._release(c)

    async def calibrate(self) -> None:
        """A first real request (the endpoint works, the fixed-output fields are accepted), and
        without a tokenizer, the words-per-token calibration from usage.prompt_tokens."""
        cfg = self.cfg
        rng = random.Random(cfg.seed + 17)
        words_a = max(4, cfg.input_len)
        words_b = max(8, 2 * cfg.input_len)
        from dsdeploy.bench.prompts import random_words

        ra = await self._one(random_words(words_a, rng), 1)
        if not ra.success and self.fixed_output and ra.error_type in ("http_400", "http_422"):
            self.fixed_output = False
            ra = await self._one(random_words(words_a, rng), 1)
            if ra.success:
                self.log(
                    "warning: the server rejected min_tokens/ignore_eos; output length is not fixed (max_tokens only)"
                )
        if not ra.success:
            raise UserError(
                f"the probe request to {self.url} failed ({ra.error_type}): {ra.error.strip() or 'no detail'}"
            )
        self.calibration = {"method": "tokenizer" if self.tokenizer else "usage"}
        if self.tokenizer is not None:
            return
        if not ra.usage_reported:
            self.log(
                "warning: the server reports no usage; prompts are sized at one word per token "
                "(pass --tokenizer for exact lengths)"
            )
            self.calibration = {"method": "none", "words": self.prompts.words}
            return
        rb = await self._one(random_words(words_b, rng), 1)
        if not rb.success or not rb.usage_reported:
            raise UserError(f"the calibration request failed ({rb.error_type}): {rb.error.strip()}")
        words = calibrate_words(words_a, ra.prompt_tokens, words_b, rb.prompt_tokens, cfg.input_len)
        self.prompts.words = words
        self.calibration = {
            "method": "usage",
            "probes": [[words_a, ra.prompt_tokens], [words_b, rb.prompt_tokens]],
            "words": words,
        }

    # -- requests ------------------------------------------------------------------------------
    def _body(self, i: int) -> bytes:
        return json.dumps(
            build_payload(self.chat, self.model or "", self.prompts.prompt(i), self.cfg.output_len, self.fixed_output)
        ).encode()

    async def _request(self, client, i: int, sink: list[RequestResult]) -> None:
        body = self._body(i)
        text: list[str] | None = [] if self.tokenizer is not None else None
        r = await self._send(client, body, self.cfg.input_len, text)
        if r.success and not r.usage_reported:
            # vLLM counts output tokens with the tokenizer when the stream has no usage.
            r.output_tokens = (
                self.tokenizer.count("".join(text)) if self.tokenizer is not None and text is not None else r.events
            )
        if r.error_type != "cancelled":
            if r.success:
                self.done += 1
            else:
                self.errors += 1
        sink.append(r)

    async def _concurrency_level(self, conc: int, n: int | None, deadline: float | None, sink, base_i: int):
        counter = itertools.count()

        async def worker():
            c = self._client()
            try:
                while not self.stopped:
                    i = next(counter)
                    if n is not None and i >= n:
                        return
                    if deadline is not None and perf_counter() >= deadline:
                        return
                    await self._request(c, base_i + i, sink)
            finally:
                self._release(c)

        tasks = [asyncio.ensure_future(worker()) for _ in range(conc)]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks.difference_update(tasks)

    async def _rate_level(
        self, rate: float, cap: int | None, n: int | None, deadline: float | None, sink, base_i: int, start: float
    ):
        sem = asyncio.Semaphore(cap) if cap else None
        rng = random.Random(self.cfg.seed + 1)
        constant = self.cfg.arrival == "constant"
        tasks: set[asyncio.Task] = set()

        async def one(i: int):
            if sem is not None:
                async with sem:
                    if self.stopped:
                        return
                    c = self._client()
                    try:
                        await self._request(c, i, sink)
                    finally:
                        self._release(c)
            else:
                c = self._client()
                try:
                    await self._request(c, i, sink)
                finally:
                    self._release(c)

        if n is not None:
            times = iter(poisson_arrivals(n, rate, rng, constant=constant, normalize=True))
        else:

            def gen():
                t = 0.0
                while True:
                    t += 1.0 / rate if constant else rng.expovariate(rate)
                    yield t

            times = gen()
        for i, t in enumerate(times):
            if self.stopped:
                break
            if deadline is not None and start + t >= deadline:
                break
            wait = start + t - perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.stopped:
                break
            task = asyncio.ensure_future(one(base_i + i))
            tasks.add(task)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_level(self, concurrency: int | None, rate: float | None) -> LevelRun:
        cfg = self.cfg
        n = cfg.num_requests
        if n is None and cfg.duration_s is None:
            n = default_num_requests(concurrency, rate)
        self.total = n
        self.done = self.errors = 0
        sink: list[RequestResult] = []
        base_i = (len(self._level_bases) + 1) * 1_000_000
        self._level_bases.append(base_i)
        start = perf_counter()
        deadline = start + cfg.duration_s if cfg.duration_s is not None else None
        if rate is None:
            # pre-create the clients so their setup is outside the timed window
            for c in [self._client() for _ in range(max(0, (concurrency or 1) - len(self._idle)))]:
                self._release(c)
            start = perf_counter()
            deadline = start + cfg.duration_s if cfg.duration_s is not None else None
            await self._concurrency_level(concurrency or 1, n, deadline, sink, base_i)
        else:
            await self._rate_level(rate, concurrency, n, deadline, sink, base_i, start)
        duration = perf_counter() - start
        kept = [r for r in sink if r.error_type != "cancelled"]
        return LevelRun(concurrency, rate, kept, duration, interrupted=self.stopped, cancelled=len(sink) - len(kept))

    async def warm_up(self, concurrency: int) -> None:
        if self.cfg.warmup <= 0:
            return
        sink: list[RequestResult] = []
        await self._concurrency_level(max(1, min(concurrency, self.cfg.warmup)), self.cfg.warmup, None, sink, 0)
        bad = [r for r in sink if not r.success and r.error_type != "cancelled"]
        if bad and len(bad) == len(sink):
            self.log(f"warning: all {len(bad)} warm-up requests failed ({bad[0].error_type})")
        self.done = self.errors = 0

    def stop(self) -> None:
        """Stop the sweep now (Ctrl-C): cancel what is in flight, keep what finished."""
        if self.stopped:
            return
        self.stopped = True
        for t in list(self._tasks):
            t.cancel()

    async def sweep(self, on_level: Callable[[LevelRun], None] | None = None) -> list[LevelRun]:
        """Probe, calibrate, warm up and run every level; returns the levels measured."""
        loop = asyncio.get_running_loop()
        installed = False
        try:
            loop.add_signal_handler(signal.SIGINT, self._on_sigint)
            installed = True
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        levels: list[LevelRun] = []
        try:
            await self.probe()
            await self.calibrate()
            cfg = self.cfg
            if cfg.request_rates:
                plan: list[tuple[int | None, float | None]] = [(cfg.max_concurrency, r) for r in cfg.request_rates]
            else:
                plan = [(c, None) for c in cfg.concurrencies]
            if not self.stopped:
                await self.warm_up(plan[0][0] or 1)
            for conc, rate in plan:
                if self.stopped:
                    break
                lv = await self.run_level(conc, rate)
                levels.append(lv)
                if on_level:
                    on_level(lv)
        finally:
            if installed:
                try:
                    loop.remove_signal_handler(signal.SIGINT)
                except Exception:  # noqa: BLE001
                    pass
            await self.aclose()
        return levels

    def _on_sigint(self) -> None:
        self.log("interrupted: stopping, results so far follow (Ctrl-C again to abort)")
        self.stop()
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
        except Exception:  # noqa: BLE001
            pass
        signal.signal(signal.SIGINT, signal.default_int_handler)


def level_to_json(lv: LevelRun, slo_ttft_ms: float | None, slo_tpot_ms: float | None) -> dict:
    """A level as in `--json`: the machine-interface keys first, then extras."""
    m = level_metrics(lv.results, lv.duration_s, slo_ttft_ms, slo_tpot_ms)
    out: dict[str, Any] = {"concurrency": lv.concurrency}
    out.update(m)
    out["request_rate"] = lv.request_rate
    out["interrupted"] = lv.interrupted
    if lv.cancelled:
        out["cancelled"] = lv.cancelled
    return out
