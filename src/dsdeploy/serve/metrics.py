"""Prometheus metrics for `dsdeploy serve` (one registry per app; names follow vLLM's where they
mean the same thing, with a `dsdeploy_` prefix)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The `endpoint` label of dsdeploy_requests_total is a route template or this: never a raw path,
# so a client can't add series by requesting new paths (the label set is bounded by the routes)
UNMATCHED = "unmatched"

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_PER_TOKEN = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "dsdeploy_requests",
            "HTTP requests by route template (or 'unmatched') and status code",
            ["endpoint", "code"],
            registry=r,
        )
        self.prompt_tokens = Counter("dsdeploy_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generation_tokens = Counter("dsdeploy_generation_tokens", "Tokens generated", registry=r)
        self.ttft = Histogram(
            "dsdeploy_time_to_first_token_seconds",
            "Arrival of the request to its first generated token",
            buckets=_LATENCY,
            registry=r,
        )
        self.prefill = Histogram(
            "dsdeploy_request_prefill_time_seconds",
            "Time in the engine worker from taking the request to its first token (prompt "
            "evaluation + first sample); the rest of the TTFT is queueing and the API layer",
            buckets=_LATENCY,
            registry=r,
        )
        self.tpot = Histogram(
            "dsdeploy_time_per_output_token_seconds",
            "Mean time between output tokens after the first, per request",
            buckets=_PER_TOKEN,
            registry=r,
        )
        self.e2e = Histogram(
            "dsdeploy_e2e_request_latency_seconds", "Arrival to last token", buckets=_LATENCY, registry=r
        )
        self.queue_time = Histogram(
            "dsdeploy_queue_time_seconds", "Time spent waiting for a free slot", buckets=_LATENCY, registry=r
        )
        self.aborted = Counter(
            "dsdeploy_requests_aborted", "Requests whose client went away before the end", registry=r
        )
        self.engine_errors = Counter(
            "dsdeploy_engine_errors", "Requests failed by an engine error or crash", registry=r
        )
        self.restarts = Counter("dsdeploy_engine_restarts", "Engine worker restarts", registry=r)
        self.running = Gauge("dsdeploy_requests_running", "Requests on an engine slot", registry=r)
        self.waiting = Gauge("dsdeploy_requests_waiting", "Requests waiting for a slot", registry=r)
        self.slots_alive = Gauge("dsdeploy_engine_slots_alive", "Engine slots ready to serve", registry=r)
        self.slots = Gauge("dsdeploy_engine_slots", "Engine slots configured", registry=r)
