"""The HTTP layer (FastAPI app) over a fake engine worker and a byte tokenizer, so it runs without
llama.cpp: SSE framing, usage, errors, auth, disconnects, metrics."""

from __future__ import annotations

import socket
import sys
import threading
import time

import httpx
import pytest

from dsdeploy.serve.settings import ServeSettings

openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

from test_serve_pool import FAKE_WORKER  # noqa: E402


class BytePrompt:
    def tokenize(self, text: str, add_bos=None, special=False) -> list[int]:
        return list(text.encode())

    def chat_tokens(self, messages) -> list[int]:
        return self.tokenize("".join(f"{m['role']}: {m['content']}\n" for m in messages))

    def vocab_size(self) -> int:
        return 256


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory):
    from dsdeploy.serve.app import create_app
    from dsdeploy.serve.pool import EnginePool

    d = tmp_path_factory.mktemp("fake")
    worker = d / "w.py"
    worker.write_text(FAKE_WORKER)
    model = d / "m.gguf"
    model.write_bytes(b"GGUF")
    s = ServeSettings(
        model_path=model,
        served_name="fake",
        api_key="k",
        n_ctx=100,
        parallel=1,
        max_tokens_limit=60,
        max_prompt_tokens=50,
        max_concurrency=2,
    )
    import os

    pool = EnginePool(
        [sys.executable, str(worker)], s.parallel, s.max_concurrency, env=dict(os.environ, FAKE_DELAY="0.01")
    )
    app = create_app(s, BytePrompt(), pool)
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield base
    server.should_exit = True
    t.join(10)


@pytest.fixture()
def client(fake_server):
    return openai.OpenAI(base_url=fake_server + "/v1", api_key="k", max_retries=0, timeout=20)


def test_chat_and_completion_shapes(client):
    r = client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert r.choices[0].message.content == "xxxxx" and r.usage.completion_tokens == 5
    assert r.usage.prompt_tokens == len("user: hi\n")
    r = client.completions.create(model="fake", prompt="abc", max_tokens=3)
    assert r.choices[0].text == "xxx" and r.usage.prompt_tokens == 3


def test_stream_with_usage(client):
    chunks = list(
        client.chat.completions.create(
            model="fake",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=7,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "x" * 7
    assert chunks[-1].usage.completion_tokens == 7 and chunks[-1].choices == []


def test_default_max_tokens_is_the_limit(client):
    r = client.completions.create(model="fake", prompt="a")
    assert r.usage.completion_tokens == 60


def test_errors(fake_server, client):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="fake", prompt="a", max_tokens=61)
    with pytest.raises(openai.APIStatusError) as e:
        client.completions.create(model="fake", prompt="a" * 51, max_tokens=1)
    assert e.value.status_code == 413
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="fake", prompt="a" * 50, max_tokens=51)
    assert e.value.response.json()["error"]["code"] == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="other", prompt="a", max_tokens=1)
    r = httpx.post(fake_server + "/v1/completions", json={"prompt": "a"})
    assert r.status_code == 401
    r = httpx.post(
        fake_server + "/v1/completions",
        headers={"Authorization": "Bearer k", "x-request-id": "??"},
        json={"prompt": "a", "max_tokens": 1},
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "??"


def test_disconnect_frees_slot_and_429(fake_server, client):
    with httpx.stream(
        "POST",
        fake_server + "/v1/completions",
        headers={"Authorization": "Bearer k"},
        json={"prompt": "a", "max_tokens": 60, "stream": True},
    ) as r:
        it = r.iter_bytes()
        next(it)
        # one running; a second admitted (queued); a third is over --max-concurrency
        with httpx.stream(
            "POST",
            fake_server + "/v1/completions",
            headers={"Authorization": "Bearer k"},
            json={"prompt": "a", "max_tokens": 60, "stream": True},
        ):
            with pytest.raises(openai.RateLimitError):
                client.completions.create(model="fake", prompt="a", max_tokens=1)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        h = httpx.get(fake_server + "/health").json()
        if h["running"] == 0 and h["waiting"] == 0:
            break
        time.sleep(0.01)
    assert h["running"] == 0 and h["waiting"] == 0, h
    m = httpx.get(fake_server + "/metrics").text
    assert "dsdeploy_requests_aborted_total 2.0" in m


def test_other_methods_on_generation_paths_still_get_openai_errors(fake_server):
    """POST on the two generation paths skips FastAPI's routing (app._App.fast_routes); any other
    method on them still goes through FastAPI and gets its 405 in the OpenAI error shape."""
    r = httpx.get(fake_server + "/v1/completions", headers={"Authorization": "Bearer k"})
    assert r.status_code == 405 and r.json()["error"]["code"] == "405"
    r = httpx.post(fake_server + "/v1/chat/completions", content=b"{", headers={"Authorization": "Bearer k"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(fake_server + "/v1/completions", json={"prompt": "a", "max_tokens": 1})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_internal_error_on_the_direct_path_is_a_500_and_logged(fake_server, caplog):
    """An unexpected exception in a generation handler (here the test's byte tokenizer failing on
    a lone surrogate) gets the OpenAI-shaped 500, and its traceback is logged, as FastAPI's own
    error middleware would have done."""
    import logging

    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        r = httpx.post(
            fake_server + "/v1/completions",
            content=b'{"prompt": "a\\ud800", "max_tokens": 1}',
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        )
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert any(rec.exc_info and "UnicodeEncodeError" in rec.exc_info[0].__name__ for rec in caplog.records)


def test_chat_role_chunk_is_not_sent_before_the_first_token(fake_server):
    """The role-only chunk used to go out before the prefill, so anything that times the first
    chunk (dsdeploy bench, vLLM's bench) measured ~0 TTFT. It now travels in the same write as
    the first token: the first bytes of the body hold both."""
    with httpx.stream(
        "POST",
        fake_server + "/v1/chat/completions",
        headers={"Authorization": "Bearer k"},
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True},
    ) as r:
        first = next(r.iter_raw())
    assert b'"role":"assistant"' in first and b'"content":"x"' in first
