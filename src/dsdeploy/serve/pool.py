"""The supervisor: a fixed set of engine worker processes ("slots") behind one fair FIFO queue.

- Each slot runs one sequence at a time; `parallel` slots run truly in parallel (separate
  processes; llama.cpp mmaps the weights, so the pages are shared between them).
- A request waits in FIFO order for the next free slot. Nothing ever interrupts a running
  request; at most `max_concurrency` requests are admitted (running + waiting), beyond that: 429.
- A client that goes away cancels its job: a waiting job leaves the queue, a running one stops at
  its next token and frees the slot.
- A slot whose process dies fails its in-flight job at once (the caller gets an error event, never
  a hang) and is restarted with a backoff.
- A watchdog kills a slot that has a running job and makes no progress (sends nothing and uses no
  CPU) for `watchdog_timeout` seconds: its job fails with an error, the slot is restarted.
- Workers run in their own session (process group): a signal to the server's process group
  (Ctrl-C, `kill -- -PGID`) reaches the API process only, which drains; workers are stopped by the
  pool. While draining, nothing is restarted; at the drain's deadline every job still running or
  queued is failed with an error (streams end with an error event and [DONE]).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from dsdeploy.serve.errors import APIError, engine_failed, overloaded, unavailable
from dsdeploy.serve.loading import describe_exit, engine_error_line, is_engine_error

# Events a job's queue receives (besides the worker's raw dicts):
CRASHED = "crashed"
_json_str = json.encoder.encode_basestring_ascii  # str -> JSON string literal (C, fast)


class Job:
    """One request's place in the pool, and its inbox of engine events.

    The inbox holds, in order, generated text as JSON string literals (bytes such as b'"ab\\n"',
    exactly as they go into an SSE chunk, so the hot path never decodes or re-encodes text) and,
    last, one dict: the end event {"e": finish_reason, "n": tokens, "t": text}, an engine error
    {"x": message} or {CRASHED: APIError}. `take()` returns everything that arrived since the last
    call, so tokens that arrive together are handled (and written to the client) together.
    """

    __slots__ = ("id", "payload", "created", "started", "slot", "done", "cancelled", "items", "_waiter")

    def __init__(self, id: str, payload: dict[str, Any]) -> None:
        self.id = id
        self.payload = payload
        self.created = time.perf_counter()
        self.started: float | None = None
        self.slot: Slot | None = None
        self.done = False
        self.cancelled = False
        self.items: list = []
        self._waiter: asyncio.Future | None = None

    def push(self, item) -> None:
        self.items.append(item)
        self.wake()

    def wake(self) -> None:
        """Wake a pending `wait()`/`take()` (a take() woken with nothing queued returns [])."""
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    async def wait(self) -> None:
        if not self.items:
            w = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await w
            finally:
                if self._waiter is w:
                    self._waiter = None

    async def take(self) -> list:
        """Everything queued since the last call; waits while there is nothing."""
        if not self.items:
            await self.wait()
        items = self.items
        self.items = []
        return items

    @property
    def events(self) -> _EventView:
        """The inbox as decoded event dicts, one `await get()` at a time (tests, simple callers)."""
        return _EventView(self)


class _EventView:
    def __init__(self, job: Job) -> None:
        self.job = job

    async def get(self) -> dict:
        job = self.job
        while not job.items:
            await job.wait()
        item = job.items.pop(0)
        return {"t": json.loads(item)} if isinstance(item, bytes) else item


class Slot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.state = "stopped"  # starting | idle | busy | dead | stopped
        self.job: Job | None = None
        self.pid: int | None = None
        self.restarts = 0
        self.started_at = 0.0
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.start_errors: list[str] = []  # error lines seen while starting (see _start_error)
        self.ready = asyncio.Event()
        self.rbuf = b""  # an incomplete event line from the last read
        self.rfd: int | None = None  # read end of the worker's event pipe
        self.progress_at = 0.0  # monotonic time of the last event or CPU use while it had a job
        self.cpu: int | None = -1  # the worker's CPU time (clock ticks) at the last watchdog look

    def info(self) -> dict[str, Any]:
        """The slot as /health shows it (no PID: process ids are not for the public)."""
        return {
            "slot": self.index,
            "state": self.state,
            "request_id": self.job.id if self.job else None,
            "restarts": self.restarts,
        }


class EnginePool:
    def __init__(
        self,
        worker_argv: list[str],
        parallel: int,
        max_concurrency: int,
        env: dict[str, str] | None = None,
        on_restart: Callable[[], None] | None = None,
        log: Callable[[str], None] | None = None,
        watchdog_timeout: float = 30.0,
    ) -> None:
        self.worker_argv = worker_argv
        self.slots = [Slot(i) for i in range(parallel)]
        self.max_concurrency = max_concurrency
        self.env = env
        self.waiting: collections.deque[Job] = collections.deque()
        self.running = 0
        self.draining = False
        self.closed = False
        self.on_restart = on_restart
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._ids = itertools.count(1)
        self.started = False
        self._tasks: set[asyncio.Task] = set()
        self.watchdog_timeout = watchdog_timeout  # 0: off
        self._drain_started = False

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self, timeout: float = 300.0) -> None:
        """Start every slot; raise RuntimeError with the engine's own message if one can't load."""
        for slot in self.slots:
            await self._spawn(slot)
        waits = [asyncio.ensure_future(s.ready.wait()) for s in self.slots]
        deadline = time.monotonic() + timeout
        try:
            while not all(w.done() for w in waits):
                dead = [s for s in self.slots if s.state == "dead"]
                if dead:
                    raise RuntimeError(await self._start_error(dead[0]))
                if time.monotonic() > deadline:
                    raise RuntimeError(f"engine worker not ready after {timeout:.0f}s")
                await asyncio.wait(waits, timeout=0.05)
        finally:
            for w in waits:
                w.cancel()
        self.started = True
        if self.watchdog_timeout > 0:
            self._bg(self._watchdog())

    @staticmethod
    async def _start_error(slot: Slot) -> str:
        """Why a worker died while starting: the engine's own assert or error line (kept even when a
        long debugger backtrace follows it), not the tail of that backtrace."""
        proc = slot.proc
        deadline = time.monotonic() + 2.0  # let the stderr reader take the last lines
        while proc is not None and proc.stderr is not None and not proc.stderr.at_eof() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        line = engine_error_line("".join(slot.start_errors) + "".join(slot.stderr_tail))
        how = describe_exit(proc.returncode if proc is not None else None)
        return f"engine worker failed to start ({how}): {line[:2000] or 'no output'}"

    async def stop(self, timeout: float = 5.0) -> None:
        self.closed = True
        for slot in self.slots:
            proc = slot.proc
            if proc and proc.returncode is None and proc.stdin is not None:  # stdin=PIPE: always set
                try:
                    proc.stdin.write(b'{"op":"exit"}\n')
                    proc.stdin.close()
                except (ConnectionError, RuntimeError):
                    pass
        for slot in self.slots:
            proc = slot.proc
            if proc and proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), timeout)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            slot.state = "stopped"
            if slot.rfd is not None:
                self._close_reader(slot, slot.rfd)
        self._fail_waiting(unavailable("server is shutting down", code="shutting_down"))

    async def _spawn(self, slot: Slot) -> None:
        slot.state = "starting"
        slot.start_errors = []
        slot.ready.clear()
        slot.started_at = time.monotonic()
        slot.rbuf = b""
        # Events come over a plain pipe read straight from the event loop's selector: one
        # os.read() takes every line that arrived since the last one (no StreamReader, no reader
        # task to wake per line).
        rfd, wfd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.worker_argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=wfd,
                stderr=asyncio.subprocess.PIPE,
                env=self.env,
                # its own session: Ctrl-C or a signal to the server's process group must not kill
                # a worker under a running request while the API process drains
                start_new_session=True,
            )
        except BaseException:
            os.close(rfd)
            raise
        finally:
            os.close(wfd)
        os.set_blocking(rfd, False)
        slot.proc = proc
        slot.pid = proc.pid
        slot.rfd = rfd
        asyncio.get_running_loop().add_reader(rfd, self._on_readable, slot, proc, rfd)
        self._bg(self._read_stderr(slot, proc))

    def _bg(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_stderr(self, slot: Slot, proc) -> None:
        while True:
            line = await proc.stderr.readline()
            if not line:
                return
            text = line.decode(errors="replace")
            slot.stderr_tail.append(text)
            if slot.state in ("starting", "dead") and len(slot.start_errors) < 20 and is_engine_error(text):
                slot.start_errors.append(text)
            if slot.state != "starting":
                self.log(f"[engine {slot.index} pid {proc.pid}] {text.rstrip()}")

    def _on_readable(self, slot: Slot, proc, rfd: int) -> None:
        try:
            data = os.read(rfd, 65536)  # the pipe's size; 1 MiB here costs an mmap+munmap per read
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # EOF: the worker is gone
            self._close_reader(slot, rfd)
            self._bg(self._reap(slot, proc))
            return
        slot.progress_at = time.monotonic()
        if slot.rbuf:
            data = slot.rbuf + data
        lines = data.split(b"\n")
        slot.rbuf = lines.pop()
        job = slot.job
        for line in lines:
            if line[:1] == b'"':  # a token's text as a JSON string literal: the hot path
                if job is not None:
                    job.push(line)
                continue
            self._on_event(slot, line)
            job = slot.job  # the job may have ended (and the next one started)

    def _on_event(self, slot: Slot, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            if line.strip():
                self.log(f"[engine {slot.index}] unreadable event: {line[:200]!r}")
            return
        job = slot.job
        if "i" in msg:
            if job is None or msg["i"] != job.id:
                # a late event for a job we already gave up on; its end frees the slot
                if job is None and slot.state == "busy" and ("e" in msg or "x" in msg):
                    self._release(slot)
                return
            if "e" in msg or "x" in msg:
                job.push(msg)
                self._release(slot)
            elif "t" in msg:
                job.push(_json_str(msg["t"]).encode())
        elif msg.get("ev") == "ready":
            slot.state = "idle"
            slot.ready.set()
            self._dispatch()

    @staticmethod
    def _close_reader(slot: Slot, rfd: int) -> None:
        if slot.rfd == rfd:
            slot.rfd = None
        try:
            asyncio.get_running_loop().remove_reader(rfd)
        except RuntimeError:
            pass
        try:
            os.close(rfd)
        except OSError:
            pass

    async def _reap(self, slot: Slot, proc) -> None:
        await proc.wait()
        self._on_exit(slot, proc)

    def _on_exit(self, slot: Slot, proc) -> None:
        was_starting = slot.state == "starting"
        slot.state = "dead"
        job = slot.job
        if job is not None:
            slot.job = None
            self.running -= 1
            self._fail(
                job,
                engine_failed(
                    f"the engine process (slot {slot.index}) exited with code "
                    f"{proc.returncode} while serving this request; it is being restarted"
                ),
            )
        if self.closed:
            return
        if not self.started:
            return  # failed during the initial start: start() reports it
        if self.draining:  # shutting down: no restarts; nothing may wait on a slot that is gone
            self.log(f"engine slot {slot.index} (pid {proc.pid}) exited with code {proc.returncode} while draining")
            if not self.alive_slots():
                self._fail_waiting(unavailable("server is shutting down", code="shutting_down"))
            return
        self.log(f"engine slot {slot.index} (pid {proc.pid}) exited with code {proc.returncode}; restarting")
        slot.restarts += 1
        if self.on_restart:
            self.on_restart()
        uptime = time.monotonic() - slot.started_at
        # a slot that ran > 30 s restarts at once; one that keeps crashing backs off 0.25 s, doubling
        # to at most 10 s (a choice, as systemd's RestartSec/StartLimit*: never a hot crash loop)
        delay = 0.0 if uptime > 30 else min(10.0, 0.25 * 2 ** min(slot.restarts, 6))
        self._bg(self._restart(slot, delay))
        if was_starting and not self.alive_slots():
            # the engine can't even start again: don't let the queue wait on it
            self._fail_waiting(engine_failed("the engine failed to restart; retry later"))

    async def _restart(self, slot: Slot, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if not self.closed:
            await self._spawn(slot)

    # ---- scheduling -----------------------------------------------------------------------
    def alive_slots(self) -> int:
        return sum(1 for s in self.slots if s.state in ("idle", "busy"))

    def submit(self, payload: dict[str, Any], job_id: str | None = None) -> Job:
        if self.draining or self.closed:
            raise unavailable("server is shutting down", code="shutting_down")
        if self.running + len(self.waiting) >= self.max_concurrency:
            raise overloaded(
                f"server is at its concurrency limit ({self.max_concurrency} requests running or queued); retry later"
            )
        job = Job(id=job_id or f"j{next(self._ids)}", payload=payload)
        self.waiting.append(job)
        self._dispatch()
        return job

    def cancel(self, job: Job) -> None:
        """The client is gone: drop the job from the queue, or stop it at its next token."""
        if job.done or job.cancelled:
            return
        job.cancelled = True
        slot = job.slot
        if slot is None:
            try:
                self.waiting.remove(job)
            except ValueError:
                pass
            job.done = True
            return
        proc = slot.proc
        if proc and proc.returncode is None and proc.stdin is not None:  # stdin=PIPE: always set
            try:
                proc.stdin.write(b'{"op":"cancel","id":' + json.dumps(job.id).encode() + b"}\n")
            except (ConnectionError, RuntimeError):
                pass

    def _dispatch(self) -> None:
        for slot in self.slots:
            if not self.waiting:
                return
            if slot.state != "idle":
                continue
            job = self.waiting.popleft()
            slot.state = "busy"
            slot.job = job
            job.slot = slot
            job.started = time.perf_counter()
            slot.progress_at = time.monotonic()
            self.running += 1
            msg = dict(job.payload, op="gen", id=job.id)
            assert slot.proc is not None and slot.proc.stdin is not None  # an idle slot has a live worker
            try:
                slot.proc.stdin.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
            except (ConnectionError, RuntimeError):
                pass  # the process is dying; _on_exit fails the job

    def _release(self, slot: Slot) -> None:
        job = slot.job
        if job is not None:
            job.done = True
            self.running -= 1
        slot.job = None
        if slot.state == "busy":
            slot.state = "idle"
        self._dispatch()

    def _fail(self, job: Job, err: APIError) -> None:
        job.done = True
        job.push({CRASHED: err})

    def _fail_waiting(self, err: APIError) -> None:
        for job in list(self.waiting):
            self._fail(job, err)
        self.waiting.clear()

    def _abandon(self, slot: Slot, err: APIError) -> None:
        """Fail the slot's running job now (the slot's own end event, if any, is then ignored)."""
        job = slot.job
        if job is None:
            return
        slot.job = None
        self.running -= 1
        self._fail(job, err)
        proc = slot.proc
        if proc and proc.returncode is None and proc.stdin:
            try:
                proc.stdin.write(b'{"op":"cancel","id":' + json.dumps(job.id).encode() + b"}\n")
            except (ConnectionError, RuntimeError):
                pass

    # ---- drain ----------------------------------------------------------------------------
    async def drain(self, timeout: float) -> None:
        """Stop admitting; let running and queued jobs finish for up to `timeout` seconds; then
        fail every one still there with a `shutting_down` error, so that each stream ends with an
        error event and [DONE] (and each waiting request gets its 503) instead of being cut."""
        self.draining = True
        deadline = time.monotonic() + timeout
        while (self.running or self.waiting) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not (self.running or self.waiting):
            return
        err = unavailable(
            f"server is shutting down: the drain timeout ({timeout:g}s) ended this request", code="shutting_down"
        )
        self._fail_waiting(err)
        for slot in self.slots:
            self._abandon(slot, err)

    def start_drain(self, timeout: float) -> None:
        """`drain()` as a background task (called from the signal handler's loop callback)."""
        self.draining = True
        if not self._drain_started:
            self._drain_started = True
            self._bg(self.drain(timeout))

    # ---- watchdog -------------------------------------------------------------------------
    async def _watchdog(self) -> None:
        """Every second or so, look at each slot that has a job: a worker that sent nothing and
        used no CPU for `watchdog_timeout` s is hung (stopped, deadlocked). A long prefill sends
        nothing but keeps the CPU busy, so it is not mistaken for a hang."""
        tick = min(1.0, self.watchdog_timeout / 4)
        while not self.closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for slot in self.slots:
                if slot.job is None or slot.state != "busy" or slot.proc is None:
                    continue
                cpu = _cpu_ticks(slot.proc.pid)
                if cpu != slot.cpu:
                    slot.cpu = cpu
                    if cpu is not None:
                        slot.progress_at = now
                if now - slot.progress_at >= self.watchdog_timeout:
                    self._kill_hung(slot, now - slot.progress_at)

    def _kill_hung(self, slot: Slot, stalled: float) -> None:
        self.log(f"engine slot {slot.index} (pid {slot.pid}) made no progress for {stalled:.1f}s: killing it")
        self._abandon(
            slot,
            engine_failed(
                f"the engine process (slot {slot.index}) made no progress for {stalled:.0f}s "
                "(hung); it was killed and is being restarted"
            ),
        )
        slot.state = "dead"  # /health: degraded until the restarted worker is ready
        try:
            if slot.proc:
                slot.proc.kill()  # SIGKILL ends a stopped process too; _on_exit then restarts the slot
        except ProcessLookupError:
            pass


def _cpu_ticks(pid: int) -> int | None:
    """The process's user + system CPU time in clock ticks (all threads), from /proc; None where
    there is no /proc (the watchdog then goes by silence alone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) ": state is fields[0]
    return int(fields[11]) + int(fields[12])  # utime, stime (proc(5): fields 14 and 15)
