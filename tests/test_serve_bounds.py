"""`dsdeploy serve` refuses impossible engine settings at once, with one clear message (issue #10):
`--threads` above this machine's CPUs (100,000 threads made the first request segfault the worker,
on every restart) and `--n-ctx` above the model's training context (999,999,999 took 31 s to fail
inside llama.cpp); and a bad `--extra-bufts`. No engine is started by these tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsdeploy.errors import UserError
from dsdeploy.serve.loading import gguf_context_length
from dsdeploy.serve.settings import ServeSettings
from dsdeploy.tinymodel import default_gguf_path

TINY = Path(default_gguf_path())
CORES = os.cpu_count() or 1


def _serve(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dsdeploy.cli.main", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture()
def fake_gguf(tmp_path) -> Path:
    p = tmp_path / "m.gguf"
    p.write_bytes(b"GGUF")
    return p


def test_tiny_model_training_context_is_read_from_its_gguf_header():
    # tinymodel/artifacts/hf/config.json max_position_embeddings = 2048, written by gguf_writer
    # as deepseek2.context_length
    assert gguf_context_length(TINY) == 2048


def test_unreadable_gguf_has_no_context_length(fake_gguf):
    assert gguf_context_length(fake_gguf) is None


def test_threads_above_the_cores_are_refused():
    with pytest.raises(UserError, match=rf"--threads {CORES + 1} .* at most {CORES} on this machine"):
        ServeSettings(model_path=TINY, served_name="m", threads=CORES + 1).validate()
    ServeSettings(model_path=TINY, served_name="m", threads=CORES).validate()


def test_cli_threads_100000_exits_2_with_one_line(fake_gguf):
    r = _serve("--model", str(fake_gguf), "--threads", "100000")
    assert r.returncode == 2, r.stderr
    assert f"at most {CORES} on this machine" in r.stderr and "Traceback" not in r.stderr


def test_n_ctx_above_the_training_context_is_refused():
    with pytest.raises(UserError, match=r"--n-ctx 999999999 .* training context \(2048 tokens.*at most 2048"):
        ServeSettings(model_path=TINY, served_name="m", n_ctx=999_999_999).validate()
    with pytest.raises(UserError, match="at most 2048"):
        ServeSettings(model_path=TINY, served_name="m", n_ctx=2049).validate()
    ServeSettings(model_path=TINY, served_name="m", n_ctx=2048).validate()


def test_cli_n_ctx_999999999_fails_at_once():
    pytest.importorskip("llama_cpp")  # without it the CLI stops earlier, with the install hint
    r = _serve("--n-ctx", "999999999", "--port", "0")
    assert r.returncode == 2, r.stderr
    assert "--n-ctx 999999999" in r.stderr and "at most 2048" in r.stderr and "Traceback" not in r.stderr
    # refused by the settings check, before any engine (or the extra-buffer-types probe) started;
    # the old code failed 31 s later inside llama.cpp with another message
    assert "extra buffer types" not in r.stderr and "engine" not in r.stderr


def test_extra_bufts_must_be_auto_on_or_off(fake_gguf):
    r = _serve("--model", str(fake_gguf), "--extra-bufts", "maybe")
    assert r.returncode == 2 and "--extra-bufts must be one of auto, on, off, got 'maybe'" in r.stderr, r.stderr
    r = _serve("--model", str(fake_gguf), env={**os.environ, "DSDEPLOY_EXTRA_BUFTS": "maybe"})
    assert r.returncode == 2 and "$DSDEPLOY_EXTRA_BUFTS must be one of auto, on, off" in r.stderr, r.stderr
    s = ServeSettings(model_path=TINY, served_name="m", extra_bufts="OFF")
    s.validate()
    assert s.extra_bufts == "off"
