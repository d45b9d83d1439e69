"""The supervisor: a fixed set of engine worker processes ("slots") behind one fair FIFO queue.

- Each slot runs one sequence at a time; `parallel` slots run truly in parallel (separate
  processes; llama.cpp mmaps the weights, so the pages are shared between them).
- A request waits in FIFO order for the next free slot. Nothing ever interrupts a running
  request; at most `max_concurrency` requests are admitted (running + waiting), beyond that: 429.
- A client that goes away cancels its job: a waiting job leaves the queue, a running one stops at
  its next token and frees the slot.
- A slot whose process dies fails its in-flight job at once (the caller gets an error event, never
  a hang) and is restarted with a backoff.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from dsdeploy.serve.errors import APIError, engine_failed, overloaded, unavailable

# Events a job's queue receives (besides the worker's raw dicts):
CRASHED = "crashed"


@dataclass(eq=False)
class Job:
    id: str
    payload: dict[str, Any]
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    created: float = field(default_factory=time.perf_counter)
    started: float | None = None
    slot: "Slot | None" = None
    done: bool = False
    cancelled: bool = False


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
        self.ready = asyncio.Event()

    def info(self) -> dict[str, Any]:
        return {
            "slot": self.index,
            "pid": self.pid,
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
                    tail = "".join(dead[0].stderr_tail).strip()
                    raise RuntimeError(f"engine worker failed to start: {tail[-2000:] or 'no output'}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"engine worker not ready after {timeout:.0f}s")
                await asyncio.wait(waits, timeout=0.05)
        finally:
            for w in waits:
                w.cancel()
        self.started = True

    async def stop(self, timeout: float = 5.0) -> None:
        self.closed = True
        for slot in self.slots:
            proc = slot.proc
            if proc and proc.returncode is None:
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
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()
            slot.state = "stopped"
        for job in list(self.waiting):
            self._fail(job, unavailable("server is shutting down", code="shutting_down"))
        self.waiting.clear()

    async def _spawn(self, slot: Slot) -> None:
        slot.state = "starting"
        slot.ready.clear()
        slot.started_at = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *self.worker_argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            limit=1 << 24,
        )
        slot.proc = proc
        slot.pid = proc.pid
        self._bg(self._read_events(slot, proc))
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
            if slot.state != "starting":
                self.log(f"[engine {slot.index} pid {proc.pid}] {text.rstrip()}")

    async def _read_events(self, slot: Slot, proc) -> None:
        reader = proc.stdout
        loads = json.loads
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                msg = loads(line)
            except ValueError:
                self.log(f"[engine {slot.index}] unreadable event: {line[:200]!r}")
                continue
            job = slot.job
            if "i" in msg:
                if job is None or msg["i"] != job.id:
                    continue  # a late event for a job we already gave up on
                job.events.put_nowait(msg)
                if "e" in msg or "x" in msg:
                    self._release(slot)
            elif msg.get("ev") == "ready":
                slot.state = "idle"
                slot.ready.set()
                self._dispatch()
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
                    f"the engine process (slot {slot.index}, pid {proc.pid}) exited with code "
                    f"{proc.returncode} while serving this request; it is being restarted"
                ),
            )
        if self.closed:
            return
        if not self.started:
            return  # failed during the initial start: start() reports it
        self.log(
            f"engine slot {slot.index} (pid {proc.pid}) exited with code {proc.returncode}; restarting"
        )
        slot.restarts += 1
        if self.on_restart:
            self.on_restart()
        uptime = time.monotonic() - slot.started_at
        delay = 0.0 if uptime > 30 else min(10.0, 0.25 * 2 ** min(slot.restarts, 6))
        self._bg(self._restart(slot, delay))
        if was_starting and not self.alive_slots():
            # the engine can't even start again: don't let the queue wait on it
            for waiting in list(self.waiting):
                self._fail(waiting, engine_failed("the engine failed to restart; retry later"))
            self.waiting.clear()

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
                f"server is at its concurrency limit ({self.max_concurrency} requests running or "
                "queued); retry later"
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
        if proc and proc.returncode is None:
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
            self.running += 1
            msg = dict(job.payload, op="gen", id=job.id)
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
        job.events.put_nowait({CRASHED: err})
