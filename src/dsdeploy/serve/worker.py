"""The engine worker: one process, one llama.cpp context, one running sequence at a time.

The API process (`dsdeploy.serve.pool`) starts `python -m dsdeploy.serve.worker ...` once per slot
and talks to it in JSON lines: requests on stdin, events on a private copy of stdout (fd 1 itself
is pointed at stderr so that anything llama.cpp prints can never corrupt the protocol).

    in:  {"op": "gen", "id": ..., "tokens": [...], "max_tokens": N, "temperature": T, "top_p": P,
          "top_k": K, "min_p": M, "seed": S|null, "stop": [...], "ignore_eos": bool,
          "min_tokens": N}
         {"op": "cancel", "id": ...}      (client went away: stop at the next token)
    out: {"ev": "ready", "pid": ..., "n_ctx": ...}
         "text"                           (one line per generated token: the text as a JSON string
                                           literal, ASCII-escaped, so it may be "" and never holds a
                                           newline; it belongs to the job running on this worker)
         {"i": id, "t": text}             (the same, the long way; accepted too)
         {"i": id, "e": finish_reason, "n": completion_tokens, "t": remaining_text,
          "pf": seconds from taking the request to its first token (absent without one)}
         {"i": id, "x": error_message}

Being a separate process is the point: the supervisor can kill and restart it, a crash inside
llama.cpp takes down one slot and not the server, and slots run truly in parallel (no GIL).
"""

from __future__ import annotations

import argparse
import codecs
import collections
import ctypes
import json
import os
import select
import sys
import time

_json_str = json.encoder.encode_basestring_ascii  # str -> JSON string literal (C, fast)


def _write(fd: int, data: bytes) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _send(fd: int, obj: dict) -> None:
    _write(fd, (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode())


class Engine:
    """A llama.cpp context plus the generation loop the API needs (stop strings, min_tokens,
    ignore_eos, seeds, cancellation), written against llama-cpp-python's low-level pieces."""

    def __init__(
        self, model_path: str, n_ctx: int, threads: int, n_batch: int = 512, extra_bufts: bool | None = None
    ) -> None:
        """`extra_bufts`: load with llama.cpp's extra buffer types (weight repacking) or not; None
        decides as `dsdeploy serve --extra-bufts auto` does (dsdeploy.serve.loading)."""
        from dsdeploy.serve.loading import default_mode, load_llama, resolve_extra_bufts

        if extra_bufts is None:
            extra_bufts = resolve_extra_bufts(default_mode(), model_path, threads).use
        self.extra_bufts = extra_bufts
        self.llm = load_llama(
            model_path,
            extra_bufts=extra_bufts,
            n_ctx=n_ctx,
            n_batch=min(n_batch, n_ctx),
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        self.n_ctx = self.llm.n_ctx()
        self.n_vocab = self.llm.n_vocab()
        import llama_cpp

        vocab = self.llm._model.vocab
        self.eog = frozenset(t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t))
        # Byte pieces for every token, looked up per generated token (no ctypes call per token).
        buf = ctypes.create_string_buffer(256)
        pieces = []
        for t in range(self.n_vocab):
            n = llama_cpp.llama_token_to_piece(vocab, t, buf, 256, 0, False)
            pieces.append(buf.raw[: max(0, n)])
        self.pieces = pieces
        self.can_reuse_prefix = not (
            getattr(self.llm, "_is_recurrent", False) or getattr(self.llm, "_is_hybrid", False)
        )

    def _sampler(self, req: dict, mask_eog: bool):
        from llama_cpp import _internals as internals

        s = internals.LlamaSampler()
        if mask_eog and self.eog:
            s.add_logit_bias(self.n_vocab, {t: float("-inf") for t in self.eog})
        freq = float(req.get("frequency_penalty") or 0.0)
        pres = float(req.get("presence_penalty") or 0.0)
        rep = float(req.get("repetition_penalty") or 1.0)
        if freq or pres or rep != 1.0:
            s.add_penalties(
                n_vocab=self.n_vocab,
                # OpenAI's penalties count every token so far, so the window is the whole context
                # (llama.h llama_sampler_init_penalties: "last n tokens to penalize")
                penalty_last_n=self.n_ctx,
                penalty_repeat=rep,
                penalty_freq=freq,
                penalty_present=pres,
            )
        temp = float(req.get("temperature", 1.0))
        if temp <= 0.0:
            s.add_greedy()
            return s
        top_k = int(req.get("top_k") or 0)
        if top_k > 0:
            s.add_top_k(top_k)
        top_p = float(req.get("top_p", 1.0))
        if top_p < 1.0:
            s.add_top_p(top_p, 1)
        min_p = float(req.get("min_p") or 0.0)
        if min_p > 0.0:
            s.add_min_p(min_p, 1)
        s.add_temp(temp)
        seed = req.get("seed")
        s.add_dist(int(seed) & 0xFFFFFFFF if seed is not None else 0xFFFFFFFF)  # 0xFFFFFFFF: random
        return s

    def _prefill(self, tokens: list[int]) -> None:
        llm = self.llm
        p = 0
        if self.can_reuse_prefix and llm.n_tokens > 0:
            import numpy as np

            limit = min(llm.n_tokens, len(tokens))
            same = llm.input_ids[:limit] == np.asarray(tokens[:limit], dtype=llm.input_ids.dtype)
            p = limit if same.all() else int(np.argmin(same))
            if p == len(tokens):
                p -= 1  # re-evaluate the last prompt token to get fresh logits
        if p == 0:
            llm.reset()
        llm.n_tokens = p  # eval() drops the KV cache beyond n_tokens before decoding
        llm.eval(tokens[p:])

    def generate(self, req: dict, cancelled, emit, emit_text=None) -> None:
        """Run one request. `emit(dict)` gets the end event (and, without `emit_text`, every
        token as {"i": id, "t": text}); `emit_text(text)` gets each token's text."""
        t_start = time.perf_counter()
        rid = req["id"]
        if emit_text is None:

            def emit_text(text: str) -> None:
                emit({"i": rid, "t": text})

        tokens = list(req["tokens"])
        room = self.n_ctx - len(tokens)
        max_tokens = max(0, min(int(req["max_tokens"]), room))
        stops = _StopScanner(req.get("stop") or [])
        ignore_eos = bool(req.get("ignore_eos"))
        min_tokens = int(req.get("min_tokens") or 0)
        if max_tokens == 0:
            emit({"i": rid, "e": "length", "n": 0, "t": ""})
            return
        self._prefill(tokens)
        sampler = self._sampler(req, mask_eog=min_tokens > 0 and not ignore_eos)
        ctx = self.llm._ctx
        pieces = self.pieces
        eog = self.eog
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        n = 0
        pf = None  # prefill time: taking the request -> first token sampled
        finish = "length"
        while True:
            if rid in cancelled:
                finish = "cancelled"
                break
            tok = sampler.sample(ctx, -1)
            if tok in eog and not ignore_eos:
                finish = "stop"
                break
            n += 1
            if n == 1:
                pf = round(time.perf_counter() - t_start, 6)
            text = decoder.decode(pieces[tok])
            if stops:
                text, before_stop = stops.feed(text)
                if before_stop is not None:
                    emit({"i": rid, "e": "stop", "n": n, "t": before_stop, "pf": pf})
                    return
            emit_text(text)
            if n >= max_tokens:
                break
            if n == min_tokens and min_tokens > 0 and not ignore_eos:
                sampler = self._sampler(req, mask_eog=False)  # min_tokens reached: EOS allowed
            self.llm.eval([tok])
        tail = stops.pending + decoder.decode(b"", final=True)
        end = {"i": rid, "e": finish, "n": n, "t": tail}
        if pf is not None:
            end["pf"] = pf
        emit(end)


class _StopScanner:
    """Stop strings over the generated text. `feed(text)` returns the text that can go out now
    (holding back a tail that could be the start of a stop string) and, once a stop string
    appears, the text before it (else None)."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.pending = ""

    def __bool__(self) -> bool:
        return bool(self.stops)

    def feed(self, text: str) -> tuple[str, str | None]:
        pending = self.pending + text
        hits = [i for i in (pending.find(s) for s in self.stops) if i != -1]
        if hits:
            return "", pending[: min(hits)]
        cut = len(pending) - self.hold
        if cut > 0:
            self.pending = pending[cut:]
            return pending[:cut], None
        self.pending = pending
        return "", None


class _Inbox:
    """The API's messages on stdin, read by the generation thread itself (no reader thread, so a
    new request costs one wake-up, not two): it blocks on stdin only while idle, and between
    tokens `rid in inbox` (the cancellation check) polls stdin without waiting."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN | select.POLLHUP)
        self.buf = b""
        self.jobs: collections.deque = collections.deque()
        self.cancelled: set = set()
        self.closed = False  # "exit" received: ignore the rest

    def pump(self, timeout_ms: int | None) -> None:
        if self.closed or not self.poller.poll(timeout_ms):
            return
        try:
            data = os.read(self.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            os._exit(0)  # the API process is gone: nobody to serve
        lines = (self.buf + data).split(b"\n")
        self.buf = lines.pop()
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            op = msg.get("op")
            if op == "gen":
                self.jobs.append(msg)
            elif op == "cancel":
                self.cancelled.add(msg["id"])
            elif op == "exit":
                self.jobs.append(None)
                self.closed = True
                return

    def __contains__(self, rid) -> bool:  # "is this request cancelled?", checked once per token
        self.pump(0)
        return rid in self.cancelled

    def next_job(self) -> dict | None:
        while not self.jobs:
            self.pump(None)
        return self.jobs.popleft()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dsdeploy.serve.worker")
    ap.add_argument("--model", required=True)
    ap.add_argument("--n-ctx", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument(
        "--stream-interval-ms",
        type=float,
        default=10.0,
        help="after a request's first token, write tokens at most this often (batched)",
    )
    ap.add_argument("--nice", type=int, default=0, help="lower this process's priority by this much")
    ap.add_argument(
        "--extra-bufts",
        choices=("on", "off"),
        default="on",
        help="load with llama.cpp's extra buffer types (weight repacking); the server decides (loading.py)",
    )
    args = ap.parse_args(argv)
    if args.nice > 0 and hasattr(os, "nice"):  # no os.nice on Windows: run at normal priority
        try:
            os.nice(args.nice)
        except OSError as exc:
            print(f"dsdeploy worker: could not lower its priority ({exc}); running at normal priority", file=sys.stderr)

    out = os.dup(1)
    os.dup2(2, 1)  # stray prints from C code go to stderr, never into the protocol
    sys.stdout = sys.stderr
    from dsdeploy.serve.loading import report_engine_errors

    # llama.cpp's error lines and ggml's abort message reach the API process even while
    # llama-cpp-python silences fd 2 during the load (its startup error shows them)
    report_engine_errors(os.dup(2))

    interval = max(0.0, args.stream_interval_ms) / 1000.0
    pending: list[str] = []
    last_flush = [0.0]
    clock = time.perf_counter

    def emit(obj: dict) -> None:  # only the main thread writes events
        data = (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        if pending:
            data = "".join(pending).encode() + data
            pending.clear()
        _write(out, data)
        last_flush[0] = 0.0  # the next request's first token goes out at once

    def emit_text(text: str) -> None:
        # The first token of a request is written at once; later ones are written when
        # `interval` has passed since the last write (0: every token at once), so the API process
        # wakes once per batch rather than once per token.
        pending.append(_json_str(text) + "\n")
        now = clock()
        if now - last_flush[0] >= interval:
            last_flush[0] = now
            _write(out, "".join(pending).encode())
            pending.clear()

    engine = Engine(args.model, args.n_ctx, args.threads, extra_bufts=args.extra_bufts == "on")
    inbox = _Inbox(0)
    emit({"ev": "ready", "pid": os.getpid(), "n_ctx": engine.n_ctx})
    while True:
        req = inbox.next_job()
        if req is None:
            return 0
        rid = req["id"]
        try:
            if rid in inbox:
                emit({"i": rid, "e": "cancelled", "n": 0, "t": ""})
            else:
                engine.generate(req, inbox, emit, emit_text)
        except Exception as exc:  # report, keep the slot alive
            emit({"i": rid, "x": f"{type(exc).__name__}: {exc}"})
        inbox.cancelled.discard(rid)


if __name__ == "__main__":
    sys.exit(main())
