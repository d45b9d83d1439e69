"""`dsdeploy serve` through the official openai client: endpoints, parameters, streaming."""

from __future__ import annotations

import json
import os
import threading

import httpx
import pytest
from serve_procs import worker_pids

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.engine

MODEL = "tiny-deepseek"
MSG = [{"role": "user", "content": "def fibonacci(n):"}]


@pytest.fixture(scope="module")
def client(tiny_server):
    return openai.OpenAI(base_url=tiny_server.base_url + "/v1", api_key=tiny_server.api_key, max_retries=0, timeout=60)


def test_health(tiny_server):
    r = httpx.get(tiny_server.base_url + "/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert len(body["slots"]) == 2 and all(s["state"] in ("idle", "busy") for s in body["slots"])
    assert not any("pid" in s for s in body["slots"])  # process ids are not for the public


def test_engine_workers_run_below_the_api_process(tiny_server):
    """--engine-nice (default 5): the workers are niced, the API process is not."""
    workers = worker_pids(tiny_server.proc.pid)
    api = os.getpriority(os.PRIO_PROCESS, tiny_server.proc.pid)
    expected = min(19, api + 5)  # the kernel caps niceness at 19
    assert [os.getpriority(os.PRIO_PROCESS, pid) for pid in workers] == [expected, expected]


def _listen_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f[9])
    return inodes


def test_engine_workers_do_not_hold_the_listening_socket(tiny_server):
    """Regression: the listener was inheritable, and under uvloop the workers kept a copy, so a
    draining server kept accepting connections that then hung."""
    inodes = _listen_inodes(tiny_server.port)
    assert inodes, "the server's listening socket was not found in /proc/net/tcp"

    def sockets_of(pid: int) -> set[str]:
        out = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
        return out

    assert inodes & sockets_of(tiny_server.proc.pid)
    for pid in worker_pids(tiny_server.proc.pid):
        assert not inodes & sockets_of(pid), f"worker {pid} holds the listening socket"


def test_models(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL


def test_chat_non_streaming(client):
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=16, temperature=0)
    c = r.choices[0]
    assert c.message.role == "assistant" and isinstance(c.message.content, str)
    assert c.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0
    assert 0 < r.usage.completion_tokens <= 16 or c.finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streaming_matches_non_streaming_and_reports_usage(client):
    kw = dict(model=MODEL, messages=MSG, max_tokens=24, temperature=0)
    full = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == full.choices[0].message.content
    finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finals == [full.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert all(ch.usage is None for ch in chunks[:-1])


def test_completions_ignore_eos_gives_exact_length(client):
    r = client.completions.create(
        model=MODEL, prompt="import os\n", max_tokens=40, temperature=0, extra_body={"ignore_eos": True}
    )
    assert r.usage.completion_tokens == 40
    assert r.choices[0].finish_reason == "length"


def test_completions_streaming(client):
    chunks = list(
        client.completions.create(
            model=MODEL,
            prompt="class ",
            max_tokens=20,
            stream=True,
            extra_body={"ignore_eos": True},
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage.completion_tokens == 20
    assert any(ch.choices and ch.choices[0].finish_reason == "length" for ch in chunks)


def test_stream_one_valid_chunk_per_token_and_first_token_not_held(tiny_server):
    """Tokens reach the API in batches (--stream interval), but each SSE event is still one valid
    text_completion chunk with one token's text, and the concatenation equals the non-streamed text."""
    body = {
        "model": MODEL,
        "prompt": "import os\n",
        "max_tokens": 64,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {tiny_server.api_key}"}
    events = []
    with httpx.stream("POST", tiny_server.base_url + "/v1/completions", json=body, headers=headers, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    texts = [c["choices"][0]["text"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"] is None]
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == 64
    assert 0 < len(texts) <= 64 and all(texts)  # one chunk per (non-empty) token, never merged
    full = httpx.post(
        tiny_server.base_url + "/v1/completions", headers=headers, timeout=60, json=dict(body, stream=False)
    ).json()
    assert "".join(texts) == full["choices"][0]["text"]


def test_max_completion_tokens_is_honoured(client):
    r = client.chat.completions.create(
        model=MODEL, messages=MSG, max_completion_tokens=7, extra_body={"ignore_eos": True}
    )
    assert r.usage.completion_tokens == 7 and r.choices[0].finish_reason == "length"


def test_min_tokens_suppresses_eos(client):
    r = client.completions.create(model=MODEL, prompt="x", max_tokens=30, extra_body={"min_tokens": 30}, seed=3)
    assert r.usage.completion_tokens == 30


def test_stop_string_cuts_output(client):
    base = client.completions.create(
        model=MODEL, prompt="def f(x):\n", max_tokens=48, temperature=0, extra_body={"ignore_eos": True}
    )
    text = base.choices[0].text
    assert len(text) > 12
    stop = text[8:11]
    cut = text.index(stop)
    r = client.completions.create(
        model=MODEL, prompt="def f(x):\n", max_tokens=48, temperature=0, stop=[stop], extra_body={"ignore_eos": True}
    )
    assert r.choices[0].text == text[:cut]
    assert r.choices[0].finish_reason == "stop"


def test_seed_makes_sampling_reproducible(client):
    kw = dict(model=MODEL, prompt="def ", max_tokens=24, temperature=1.0, extra_body={"ignore_eos": True})
    a = client.completions.create(seed=1234, **kw).choices[0].text
    b = client.completions.create(seed=1234, **kw).choices[0].text
    assert a == b


def test_temperature_zero_is_deterministic(client):
    kw = dict(model=MODEL, prompt="import ", max_tokens=16, temperature=0, extra_body={"ignore_eos": True})
    assert client.completions.create(**kw).choices[0].text == client.completions.create(**kw).choices[0].text


def test_any_x_request_id_is_accepted(tiny_server):
    r = httpx.post(
        tiny_server.base_url + "/v1/completions",
        headers={**tiny_server.headers, "x-request-id": "anything at all"},
        json={"model": MODEL, "prompt": "a", "max_tokens": 2},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "anything at all"


def test_concurrent_streams_do_not_cut_each_other_off(client):
    n, length = 4, 120
    results: dict[int, tuple] = {}

    def one(i: int) -> None:
        chunks = list(
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"stream {i}"}],
                max_tokens=length,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"ignore_eos": True},
                seed=i,
            )
        )
        fin = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
        results[i] = (chunks[-1].usage.completion_tokens, fin)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == {i: (length, ["length"]) for i in range(n)}


def _metric(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(name + (("{" + labels + "}") if labels else " ")):
            return float(line.rsplit(" ", 1)[1])
        if labels and line.startswith(name + "{") and all(p in line for p in labels.split(",")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_counters_move(tiny_server, client):
    def scrape() -> str:
        r = httpx.get(tiny_server.base_url + "/metrics")
        assert r.status_code == 200
        return r.text

    before = scrape()
    client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=10, extra_body={"ignore_eos": True})
    after = scrape()
    ep = 'endpoint="/v1/chat/completions",code="200"'
    assert _metric(after, "dsdeploy_requests_total", ep) == _metric(before, "dsdeploy_requests_total", ep) + 1
    assert (
        _metric(after, "dsdeploy_generation_tokens_total") == _metric(before, "dsdeploy_generation_tokens_total") + 10
    )
    assert _metric(after, "dsdeploy_prompt_tokens_total") > _metric(before, "dsdeploy_prompt_tokens_total")
    assert (
        _metric(after, "dsdeploy_time_to_first_token_seconds_count")
        == _metric(before, "dsdeploy_time_to_first_token_seconds_count") + 1
    )
    assert (
        _metric(after, "dsdeploy_time_per_output_token_seconds_count")
        == _metric(before, "dsdeploy_time_per_output_token_seconds_count") + 1
    )
    assert "dsdeploy_requests_running" in after and "dsdeploy_engine_slots_alive 2.0" in after
    # the engine's part of the TTFT: counted once, positive, and never more than the whole TTFT
    pf = "dsdeploy_request_prefill_time_seconds"
    ttft = "dsdeploy_time_to_first_token_seconds"
    assert _metric(after, pf + "_count") == _metric(before, pf + "_count") + 1
    d_pf = _metric(after, pf + "_sum") - _metric(before, pf + "_sum")
    assert 0 < d_pf < _metric(after, ttft + "_sum") - _metric(before, ttft + "_sum")


def test_unknown_path_gets_openai_error_body(tiny_server):
    r = httpx.get(tiny_server.base_url + "/v1/nope", headers=tiny_server.headers)
    assert r.status_code == 404
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_prompt_with_a_lone_surrogate_is_a_400(tiny_server):
    r = httpx.post(
        tiny_server.base_url + "/v1/completions",
        content=b'{"prompt": "a\\ud800", "max_tokens": 1}',
        headers={**tiny_server.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_value" and "not valid Unicode" in r.json()["error"]["message"]
