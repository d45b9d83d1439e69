"""The engine worker processes of a running `dsdeploy serve`, found from /proc (its /health does
not show process ids: they are not for the public)."""

from __future__ import annotations

import os
import time


def worker_pids(server_pid: int) -> list[int]:
    """The server's child processes (its engine workers), oldest first."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == server_pid and fields[0] != b"Z":  # fields[1]: ppid; Z: a zombie
            kids.append((int(fields[19]), int(entry)))  # fields[19]: start time
    return [pid for _, pid in sorted(kids)]


def one_worker(server_pid: int, timeout: float = 30.0) -> int:
    """The pid of the only engine worker (a --parallel 1 server)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = worker_pids(server_pid)
        if len(pids) == 1:
            return pids[0]
        assert time.monotonic() < deadline, f"expected one engine worker, found {pids}"
        time.sleep(0.05)


def long_stream(srv, max_tokens: int = 400):
    """A streamed completion from `dsdeploy serve` that runs for `max_tokens` tokens (EOS ignored),
    opened with the official `openai` client and read to its first chunk: an iterator over the rest.
    For the tests that stop or signal a server while a request is running."""
    import openai

    client = openai.OpenAI(base_url=srv.base_url + "/v1", api_key=srv.api_key, max_retries=0, timeout=60)
    stream = client.completions.create(
        model="tiny-deepseek",
        prompt="a",
        max_tokens=max_tokens,
        stream=True,
        extra_body={"ignore_eos": True},
        stream_options={"include_usage": True},
    )
    it = iter(stream)
    next(it)
    return it
