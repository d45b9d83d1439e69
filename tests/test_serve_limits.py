"""Limits, auth and error bodies of `dsdeploy serve` (OpenAI-style errors, right status codes)."""

from __future__ import annotations

import time

import httpx
import pytest

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.engine

MODEL = "tiny-deepseek"


@pytest.fixture(scope="module")
def limited(serve_factory):
    """One slot, one admitted request, small token limits."""
    return serve_factory(
        "--parallel",
        "1",
        "--max-concurrency",
        "1",
        "--max-tokens-limit",
        "1500",
        "--max-prompt-tokens",
        "32",
        "--n-ctx",
        "2048",
    )


@pytest.fixture(scope="module")
def lclient(limited):
    return openai.OpenAI(base_url=limited.base_url + "/v1", api_key=limited.api_key, max_retries=0, timeout=60)


def _error_shape(err) -> dict:
    body = err.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_missing_key_is_401(limited):
    r = httpx.post(limited.base_url + "/v1/completions", json={"model": MODEL, "prompt": "a"})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"


def test_wrong_key_is_401(limited):
    c = openai.OpenAI(base_url=limited.base_url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert _error_shape(e.value)["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        c.models.list()


def test_health_and_metrics_need_no_key(limited):
    assert httpx.get(limited.base_url + "/health").status_code == 200
    assert httpx.get(limited.base_url + "/metrics").status_code == 200


def test_max_tokens_over_limit_is_400(lclient):
    with pytest.raises(openai.BadRequestError) as e:
        lclient.completions.create(model=MODEL, prompt="a", max_tokens=1501)
    err = _error_shape(e.value)
    assert err["param"] == "max_tokens" and err["code"] == "max_tokens_too_large"
    with pytest.raises(openai.BadRequestError) as e:
        lclient.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "a"}], max_completion_tokens=5000
        )
    assert _error_shape(e.value)["param"] == "max_completion_tokens"


def test_prompt_too_long_is_413(lclient):
    with pytest.raises(openai.APIStatusError) as e:
        lclient.completions.create(model=MODEL, prompt="word " * 200, max_tokens=2)
    assert e.value.status_code == 413
    err = _error_shape(e.value)
    assert err["param"] == "prompt" and err["code"] == "prompt_too_long"


def test_unknown_model_is_404(lclient):
    with pytest.raises(openai.NotFoundError) as e:
        lclient.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "a"}])
    assert _error_shape(e.value)["code"] == "model_not_found"


def test_bad_parameters_are_400(limited):
    url, h = limited.base_url + "/v1/completions", limited.headers
    cases = [
        ({"prompt": "a", "temperature": 5}, "temperature"),
        ({"prompt": "a", "n": 2}, "n"),
        ({"prompt": "a", "max_tokens": "ten"}, "max_tokens"),
        ({"prompt": "a", "stop": 3}, "stop"),
        ({"prompt": 17}, "prompt"),
        ({"prompt": "a", "min_tokens": 99, "max_tokens": 5}, "min_tokens"),
    ]
    for body, param in cases:
        r = httpx.post(url, headers=h, json={"model": MODEL, **body})
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["param"] == param
    r = httpx.post(url, headers={**h, "content-type": "application/json"}, content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(limited.base_url + "/v1/chat/completions", headers=h, json={"model": MODEL, "messages": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_over_concurrency_is_429_and_disconnect_frees_the_slot(limited, lclient):
    stream = lclient.completions.create(
        model=MODEL, prompt="a", max_tokens=1500, stream=True, extra_body={"ignore_eos": True}
    )
    it = iter(stream)
    next(it)
    try:
        with pytest.raises(openai.RateLimitError) as e:
            lclient.completions.create(model=MODEL, prompt="b", max_tokens=2)
        assert _error_shape(e.value)["code"] == "too_many_requests"
    finally:
        stream.close()  # the client goes away mid-stream
    # the slot must come free at once, not after 1500 tokens
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        h = httpx.get(limited.base_url + "/health").json()
        if h["running"] == 0 and h["waiting"] == 0:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"slot still busy 2 s after the client left: {h}")
    r = lclient.completions.create(model=MODEL, prompt="c", max_tokens=3, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 3
    m = httpx.get(limited.base_url + "/metrics").text
    assert "dsdeploy_requests_aborted_total 1.0" in m
    assert any(
        l.startswith("dsdeploy_requests_total{")
        and 'code="429"' in l
        and 'endpoint="/v1/completions"' in l
        and l.endswith(" 1.0")
        for l in m.splitlines()
    )
