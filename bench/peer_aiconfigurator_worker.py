"""Child-process worker for bench/peer_aiconfigurator.py: runs NVIDIA aiconfigurator's estimator.

Runs under `.venv-aic/bin/python` (made by scripts/setup_aiconfigurator.sh), never under dsdeploy's
venv: it imports only the standard library and aiconfigurator. Reads a JSON list of jobs, calls
`aiconfigurator.cli.api.cli_estimate` (the programmatic form of `aiconfigurator cli estimate`) once
per job, and writes a JSON list of results in the same order.

    .venv-aic/bin/python bench/peer_aiconfigurator_worker.py jobs.json results.json

A job is a dict of cli_estimate keyword arguments plus "key" (echoed back). A result is
{"key", "ok", "error", "ttft_ms", "tpot_ms", "tok_s", "tok_s_gpu", "tok_s_user", "request_latency_ms",
"backend_version", "seconds"}.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time


def _num(x: object) -> float | None:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def main() -> int:
    jobs_path, out_path = sys.argv[1], sys.argv[2]
    logging.disable(logging.WARNING)
    from aiconfigurator.cli.api import cli_estimate

    with open(jobs_path, encoding="utf-8") as fh:
        jobs = json.load(fh)
    out = []
    for job in jobs:
        key = job.pop("key")
        t0 = time.time()
        rec: dict = {"key": key, "ok": False, "error": ""}
        try:
            r = cli_estimate(**job)
            rec.update(
                ok=True,
                ttft_ms=_num(r.ttft),
                tpot_ms=_num(r.tpot),
                tok_s=_num(r.tokens_per_second),
                tok_s_gpu=_num(r.tokens_per_second_per_gpu),
                tok_s_user=_num(r.tokens_per_second_per_user),
                request_latency_ms=_num(r.request_latency),
                backend_version=str(r.backend_version),
                memory_gb=_num(r.memory) if r.mode != "disagg" else None,
            )
        except BaseException as exc:  # noqa: BLE001 -- any failure is "not covered", with its message
            if isinstance(exc, KeyboardInterrupt):
                raise
            rec["error"] = f"{type(exc).__name__}: {exc}"[:300]
        rec["seconds"] = round(time.time() - t0, 2)
        out.append(rec)
        print(f"{key}: {'ok' if rec['ok'] else rec['error'][:120]} ({rec['seconds']} s)", file=sys.stderr, flush=True)
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(out, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
