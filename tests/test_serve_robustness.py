"""Engine crashes and graceful shutdown of `dsdeploy serve`."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest
from serve_procs import long_stream, one_worker

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.engine

MODEL = "tiny-deepseek"


def _wait_all_slots_ready(base: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = httpx.get(base + "/health").json()
        if all(s["state"] in ("idle", "busy") for s in h["slots"]):
            return h
        time.sleep(0.05)
    pytest.fail(f"slots not back after {timeout}s: {h}")


def test_killed_engine_fails_in_flight_request_fast_and_restarts(serve_factory):
    srv = serve_factory("--parallel", "1", "--n-ctx", "2048")
    client = openai.OpenAI(base_url=srv.base_url + "/v1", api_key=srv.api_key, max_retries=0, timeout=30)
    before = one_worker(srv.proc.pid)

    stream = client.completions.create(
        model=MODEL, prompt="a", max_tokens=2000, stream=True, extra_body={"ignore_eos": True}
    )
    it = iter(stream)
    next(it)
    busy = httpx.get(srv.base_url + "/health").json()["slots"][0]
    assert busy["state"] == "busy"
    os.kill(one_worker(srv.proc.pid), signal.SIGKILL)
    got = 0
    with pytest.raises(openai.APIError) as e:
        for _ in it:
            got += 1
    assert got < 1999  # the stream ended in an error, well before its 2,000 tokens
    assert "engine" in str(e.value).lower()

    after = _wait_all_slots_ready(srv.base_url)["slots"][0]
    assert one_worker(srv.proc.pid) != before and after["restarts"] == 1
    r = client.completions.create(model=MODEL, prompt="b", max_tokens=5, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 5
    assert "dsdeploy_engine_restarts_total 1.0" in httpx.get(srv.base_url + "/metrics").text


def test_killed_engine_non_streaming_gets_503(serve_factory):
    srv = serve_factory("--parallel", "1", "--n-ctx", "2048")
    client = openai.OpenAI(base_url=srv.base_url + "/v1", api_key=srv.api_key, max_retries=0, timeout=30)
    box: dict = {}

    def call():
        try:
            client.completions.create(model=MODEL, prompt="a", max_tokens=2000, extra_body={"ignore_eos": True})
        except Exception as exc:  # noqa: BLE001
            box["err"] = exc

    t = threading.Thread(target=call)
    t.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        slot = httpx.get(srv.base_url + "/health").json()["slots"][0]
        if slot["state"] == "busy":
            break
        time.sleep(0.01)
    os.kill(one_worker(srv.proc.pid), signal.SIGKILL)
    t.join(10)
    assert not t.is_alive()
    assert isinstance(box.get("err"), openai.APIStatusError) and box["err"].status_code == 503
    _wait_all_slots_ready(srv.base_url)


def test_sigterm_drains_running_stream_then_exits(serve_factory):
    srv = serve_factory("--parallel", "1", "--threads", "1")
    it = long_stream(srv)
    srv.proc.send_signal(signal.SIGTERM)
    rest = list(it)
    assert rest[-1].usage.completion_tokens == 400  # the running stream finished in full
    assert srv.proc.wait(30) == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(srv.base_url + "/health", timeout=2)


def test_sigterm_stops_the_server_even_when_its_stderr_reader_is_gone(tmp_path):
    """Regression: the drain message went to a stderr pipe whose reader had exited (a dead parent,
    `dsdeploy serve 2>&1 | head`); the BrokenPipeError in the signal handler skipped the shutdown
    and the server ignored SIGTERM for good."""
    import subprocess
    import sys

    from conftest import free_port, serve_model_path

    pytest.importorskip("llama_cpp")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dsdeploy.cli.main",
            "serve",
            "--model",
            str(serve_model_path()),
            "--port",
            str(port),
            "--api-key",
            "k",
            "--parallel",
            "1",
            "--threads",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "the server exited before it was up"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)
        proc.stderr.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
