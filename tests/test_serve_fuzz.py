"""Fuzz a real `dsdeploy serve` (the tiny model) from its own `/openapi.json` with schemathesis.

Every operation of the published document gets schema-valid ("positive") and schema-breaking
("negative") requests, 1,000+ in all, each with a 10 s timeout. Asserted for every response:
no 5xx, no hang, every error in the OpenAI shape `{"error": {"message", "type", "param", "code"}}`,
and schemathesis's own conformance checks (status codes, content types and bodies as documented;
schema-breaking input refused). Left out: `positive_data_acceptance`, which expects every
schema-valid request to succeed: some limits span several fields (prompt + max_tokens <= n_ctx,
min_tokens <= max_tokens) or depend on the text's token count, which a JSON Schema can't say.

Kept modest for 2 cores: --max-tokens-limit 8 (a generation is a few ms), a fixed seed
(derandomized), no shrinking.
"""

from __future__ import annotations

import collections

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

pytestmark = pytest.mark.engine

ERROR_KEYS = {"message", "type", "param", "code"}
MIN_CASES = 1000
# examples per (operation, mode); operations without parameters have few distinct cases and end early
BUDGET = {
    ("POST", "/v1/chat/completions"): {GenerationMode.POSITIVE: 300, GenerationMode.NEGATIVE: 250},
    ("POST", "/v1/completions"): {GenerationMode.POSITIVE: 300, GenerationMode.NEGATIVE: 250},
    ("GET", "/v1/models/{model_id}"): {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 40},
}
DEFAULT_BUDGET = {GenerationMode.POSITIVE: 20}


@pytest.fixture(scope="module")
def fuzz_server(serve_factory):
    return serve_factory(
        "--parallel", "2", "--n-ctx", "256", "--max-tokens-limit", "8", "--max-concurrency", "16", "--body-timeout", "5"
    )


def _check_error_shape(response) -> None:
    if response.status_code < 400:
        return
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, (response.status_code, body)
    err = body["error"]
    assert isinstance(err["message"], str) and isinstance(err["type"], str), err
    assert err["param"] is None or isinstance(err["param"], str), err
    assert err["code"] is None or isinstance(err["code"], str), err


def _fuzz(op, mode: GenerationMode, n: int, base_url: str, auth: dict, counts, statuses) -> None:
    """`n` cases of one operation in one mode against the server; every response checked."""
    key = (op.method.upper(), op.path, mode.value)

    @settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case) -> None:
        response = case.call(base_url=base_url, headers=auth, timeout=10)
        counts[key] += 1
        statuses[response.status_code] += 1
        assert response.status_code < 500, (response.status_code, response.text[:500])
        _check_error_shape(response)
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    run()


def test_fuzz_the_openapi_document(fuzz_server):
    schema = schemathesis.openapi.from_url(fuzz_server.base_url + "/openapi.json")
    auth = {"Authorization": f"Bearer {fuzz_server.api_key}"}
    counts: collections.Counter = collections.Counter()
    statuses: collections.Counter = collections.Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} >= set(BUDGET)

    for op in operations:
        for mode, n in BUDGET.get((op.method.upper(), op.path), DEFAULT_BUDGET).items():
            _fuzz(op, mode, n, fuzz_server.base_url, auth, counts, statuses)

    total = sum(counts.values())
    print(f"\nfuzz: {total} cases; by operation and mode: {dict(counts)}; by status: {dict(sorted(statuses.items()))}")
    assert total >= MIN_CASES, counts
    assert not any(s >= 500 for s in statuses)
    assert statuses[200] > 100  # real generations among them, not only refusals
