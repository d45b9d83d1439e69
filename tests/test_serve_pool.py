"""The engine pool's scheduling, cancellation and crash handling, with a fake engine worker
(no llama.cpp needed): FIFO fairness, no request ever cut off, a cancelled job frees its slot,
a dead worker fails its job at once and comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap

import pytest

from dsdeploy.serve.errors import APIError
from dsdeploy.serve.pool import CRASHED, EnginePool

FAKE_WORKER = textwrap.dedent(
    """
    import json, os, sys, threading, time, queue
    out = os.dup(1); os.dup2(2, 1)
    def emit(o): os.write(out, (json.dumps(o) + "\\n").encode())
    if os.environ.get("FAKE_FAIL_START"):
        print("cannot load model: bad magic", file=sys.stderr); sys.exit(3)
    jobs = queue.SimpleQueue(); cancelled = set()
    def reader():
        for line in sys.stdin:
            m = json.loads(line)
            if m["op"] == "gen": jobs.put(m)
            elif m["op"] == "cancel": cancelled.add(m["id"])
            elif m["op"] == "exit": jobs.put(None); return
        os._exit(0)
    threading.Thread(target=reader, daemon=True).start()
    emit({"ev": "ready", "pid": os.getpid(), "n_ctx": 100})
    while True:
        m = jobs.get()
        if m is None: break
        if os.environ.get("FAKE_FAST"):
            # the worker's short form: token texts as JSON string literals, several lines (and
            # the end event) in one write, as a batching worker sends them
            k = m["max_tokens"]
            lines = [json.dumps(t) for t in (["a", "", "\\u00e9\\n", '"q"'] * k)[:k]]
            os.write(out, ("\\n".join(lines + [json.dumps({"i": m["id"], "e": "length", "n": k, "t": "!"})]) + "\\n").encode())
            continue
        t_spin = time.time()
        while time.time() - t_spin < m.get("spin", 0): pass  # a silent, CPU-bound "prefill"
        n = 0; fin = "length"
        for i in range(m["max_tokens"]):
            if m["id"] in cancelled: fin = "cancelled"; break
            time.sleep(m.get("delay", float(os.environ.get("FAKE_DELAY", "0.002")))); n += 1
            emit({"i": m["id"], "t": "x"})
        emit({"i": m["id"], "e": fin, "n": n, "t": ""})
    """
)


@pytest.fixture()
def worker_argv(tmp_path):
    p = tmp_path / "fake_worker.py"
    p.write_text(FAKE_WORKER)
    return [sys.executable, str(p)]


async def _drain(job, timeout=10.0):
    text = ""
    while True:
        ev = await asyncio.wait_for(job.events.get(), timeout)
        if CRASHED in ev:
            return text, ev
        text += ev.get("t", "")
        if "e" in ev or "x" in ev:
            return text, ev


def test_fifo_slots_never_interrupt(worker_argv):
    async def main():
        pool = EnginePool(worker_argv, parallel=2, max_concurrency=8)
        await pool.start()
        try:
            jobs = [pool.submit({"max_tokens": 30, "delay": 0.002}) for _ in range(6)]
            assert pool.running == 2 and len(pool.waiting) == 4
            results = await asyncio.gather(*(_drain(j) for j in jobs))
            assert all(t == "x" * 30 and e["e"] == "length" and e["n"] == 30 for t, e in results)
            # FIFO: jobs started in submission order
            starts = [j.started for j in jobs]
            assert starts == sorted(starts)
            assert pool.running == 0 and not pool.waiting
        finally:
            await pool.stop()

    asyncio.run(main())


def test_admission_limit_and_cancel(worker_argv):
    async def main():
        pool = EnginePool(worker_argv, parallel=1, max_concurrency=2)
        await pool.start()
        try:
            a = pool.submit({"max_tokens": 100000, "delay": 0.001})
            b = pool.submit({"max_tokens": 3})
            with pytest.raises(APIError) as e:
                pool.submit({"max_tokens": 3})
            assert e.value.status == 429
            pool.cancel(b)  # waiting job leaves the queue
            assert not pool.waiting
            await asyncio.sleep(0.05)
            pool.cancel(a)  # running job stops at its next token
            _, end = await _drain(a, timeout=2)
            assert end["e"] == "cancelled"
            assert pool.slots[0].state == "idle" and pool.running == 0
            c = pool.submit({"max_tokens": 4})
            text, end = await _drain(c)
            assert text == "xxxx"
        finally:
            await pool.stop()

    asyncio.run(main())


def test_crash_fails_job_fast_and_restarts(worker_argv):
    async def main():
        restarts = []
        pool = EnginePool(worker_argv, parallel=1, max_concurrency=4, on_restart=lambda: restarts.append(1))
        await pool.start()
        try:
            pid0 = pool.slots[0].pid
            job = pool.submit({"max_tokens": 100000, "delay": 0.001})
            waiting = pool.submit({"max_tokens": 5})
            await asyncio.sleep(0.05)
            os.kill(pid0, signal.SIGKILL)
            _, ev = await _drain(job, timeout=3)
            assert CRASHED in ev and ev[CRASHED].status == 503
            # the queued request is served by the restarted worker
            text, end = await _drain(waiting, timeout=15)
            assert text == "xxxxx" and end["e"] == "length"
            assert pool.slots[0].pid != pid0 and restarts == [1]
        finally:
            await pool.stop()

    asyncio.run(main())


def test_start_failure_reports_engine_message(worker_argv):
    async def main():
        pool = EnginePool(worker_argv, parallel=2, max_concurrency=4, env=dict(os.environ, FAKE_FAIL_START="1"))
        with pytest.raises(RuntimeError, match="bad magic"):
            await pool.start(timeout=20)
        await pool.stop()

    asyncio.run(main())


def test_stop_fails_waiting_and_refuses_new(worker_argv):
    async def main():
        pool = EnginePool(worker_argv, parallel=1, max_concurrency=4)
        await pool.start()
        pool.draining = True
        with pytest.raises(APIError) as e:
            pool.submit({"max_tokens": 1})
        assert e.value.status == 503
        await pool.stop()
        assert all(s.state == "stopped" for s in pool.slots)

    asyncio.run(main())


def test_short_form_token_lines_batched_in_one_write(tmp_path):
    p = tmp_path / "fake_worker.py"
    p.write_text(FAKE_WORKER)

    async def main():
        pool = EnginePool([sys.executable, str(p)], parallel=1, max_concurrency=4, env=dict(os.environ, FAKE_FAST="1"))
        await pool.start()
        try:
            a = pool.submit({"max_tokens": 6})
            b = pool.submit({"max_tokens": 2})  # dispatched right after a's end event
            items = []
            while not items or not isinstance(items[-1], dict):
                items += await asyncio.wait_for(a.take(), 10)
            assert all(isinstance(x, bytes) for x in items[:-1]) and len(items) == 7
            assert items[-1] == {"i": a.id, "e": "length", "n": 6, "t": "!"}
            text, end = await _drain(b)
            assert text == "a!" and end["n"] == 2 and pool.running == 0
        finally:
            await pool.stop()

    asyncio.run(main())


def test_event_view_decodes_short_form(tmp_path):
    p = tmp_path / "fake_worker.py"
    p.write_text(FAKE_WORKER)

    async def main():
        pool = EnginePool([sys.executable, str(p)], parallel=1, max_concurrency=4, env=dict(os.environ, FAKE_FAST="1"))
        await pool.start()
        try:
            text, end = await _drain(pool.submit({"max_tokens": 4}))
            assert text == 'a\u00e9\n"q"!' and end["e"] == "length"
        finally:
            await pool.stop()

    asyncio.run(main())


def test_watchdog_fails_a_hung_job_and_restarts_the_worker(worker_argv):
    async def main():
        restarts = []
        pool = EnginePool(
            worker_argv, parallel=1, max_concurrency=4, watchdog_timeout=0.5, on_restart=lambda: restarts.append(1)
        )
        await pool.start()
        try:
            pid0 = pool.slots[0].pid
            job = pool.submit({"max_tokens": 100000, "delay": 0.001})
            waiting = pool.submit({"max_tokens": 3})
            await asyncio.sleep(0.1)
            os.kill(pid0, signal.SIGSTOP)  # hung: sends nothing, uses no CPU
            _, ev = await _drain(job, timeout=10)
            assert CRASHED in ev and ev[CRASHED].status == 503 and "no progress" in ev[CRASHED].message
            assert str(pid0) not in ev[CRASHED].message
            text, end = await _drain(waiting, timeout=15)  # served by the restarted worker
            assert text == "xxx" and end["e"] == "length"
            assert pool.slots[0].pid != pid0 and restarts == [1]
        finally:
            await pool.stop()

    asyncio.run(main())


def test_watchdog_spares_a_silent_worker_that_is_computing(worker_argv):
    """A long prefill sends nothing for a while but keeps the CPU busy: not a hang."""

    async def main():
        pool = EnginePool(worker_argv, parallel=1, max_concurrency=4, watchdog_timeout=1.0)
        await pool.start()
        try:
            pid0 = pool.slots[0].pid
            text, end = await _drain(pool.submit({"max_tokens": 2, "spin": 3.0}), timeout=20)
            assert text == "xx" and end["e"] == "length" and pool.slots[0].pid == pid0
        finally:
            await pool.stop()

    asyncio.run(main())


def test_drain_deadline_fails_running_and_waiting_jobs(worker_argv):
    async def main():
        pool = EnginePool(worker_argv, parallel=1, max_concurrency=4)
        await pool.start()
        try:
            running = pool.submit({"max_tokens": 100000, "delay": 0.001})
            waiting = pool.submit({"max_tokens": 3})
            await asyncio.sleep(0.05)
            await pool.drain(0.2)
            for job in (running, waiting):
                _, ev = await _drain(job, timeout=5)
                assert CRASHED in ev and ev[CRASHED].code == "shutting_down"
            assert pool.running == 0 and not pool.waiting
            with pytest.raises(APIError):
                pool.submit({"max_tokens": 1})
        finally:
            await pool.stop()

    asyncio.run(main())


def test_no_restart_while_draining_and_workers_have_their_own_session(worker_argv):
    async def main():
        restarts = []
        pool = EnginePool(worker_argv, parallel=1, max_concurrency=4, on_restart=lambda: restarts.append(1))
        await pool.start()
        try:
            pid0 = pool.slots[0].pid
            assert os.getsid(pid0) == pid0 != os.getsid(0)  # a group signal to us does not reach it
            pool.draining = True
            os.kill(pid0, signal.SIGKILL)
            await asyncio.sleep(0.5)
            assert pool.slots[0].state == "dead" and restarts == []
        finally:
            await pool.stop()

    asyncio.run(main())
