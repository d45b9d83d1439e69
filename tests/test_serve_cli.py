"""`dsdeploy serve` argument checks (no engine needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsdeploy.errors import UserError
from dsdeploy.serve.settings import ServeSettings, is_loopback


def _serve(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dsdeploy.cli.main", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.fixture()
def fake_gguf(tmp_path) -> Path:
    p = tmp_path / "m.gguf"
    p.write_bytes(b"GGUF")
    return p


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


def test_refuses_public_host_without_key(fake_gguf):
    s = ServeSettings(model_path=fake_gguf, served_name="m", host="0.0.0.0")
    with pytest.raises(UserError, match="without an API key"):
        s.validate()
    ServeSettings(model_path=fake_gguf, served_name="m", host="0.0.0.0", api_key="k").validate()


def test_cli_public_host_without_key_exits_2(fake_gguf):
    env = {k: v for k, v in os.environ.items() if k != "DSDEPLOY_API_KEY"}
    r = _serve("--model", str(fake_gguf), "--host", "0.0.0.0", env=env)
    assert r.returncode == 2, r.stderr
    assert "API key" in r.stderr and "Traceback" not in r.stderr


def test_cli_missing_model_exits_2(tmp_path):
    r = _serve("--model", str(tmp_path / "nope.gguf"))
    assert r.returncode == 2 and "not found" in r.stderr


def test_cli_bad_limits_exit_2(fake_gguf):
    r = _serve("--model", str(fake_gguf), "--max-prompt-tokens", "5000", "--n-ctx", "2048")
    assert r.returncode == 2 and "--max-prompt-tokens" in r.stderr


def test_engine_not_installed_says_how(monkeypatch, tmp_path):
    from dsdeploy.serve import external

    monkeypatch.setattr(external, "engine_installed", lambda engine: False)
    with pytest.raises(UserError, match="setup_vllm_cpu.sh"):
        external.run_external("vllm", tmp_path, "127.0.0.1", 8000, "m", 2048, None)
    with pytest.raises(UserError, match="pip install sglang"):
        external.run_external("sglang", tmp_path, "127.0.0.1", 8000, "m", 2048, None)


def test_engine_without_launcher_module_is_a_user_error(monkeypatch, tmp_path):
    from dsdeploy.serve import external

    monkeypatch.setattr(external, "engine_installed", lambda engine: True)
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name.startswith("dsdeploy.engines."):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return real(name, *a, **k)

    monkeypatch.setattr(external.importlib, "import_module", fake)
    with pytest.raises(UserError, match="no launcher"):
        external.run_external("vllm", tmp_path, "127.0.0.1", 8000, "m", 2048, None)


def _loop_factories():
    import asyncio

    out = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop

        out.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("new_loop", _loop_factories())
def test_listening_socket_turns_nagle_off_for_every_connection(new_loop):
    """Regression: `bind()` made its socket with proto 0, so asyncio never set TCP_NODELAY on the
    connections it accepted, and every streamed response after the first on a keep-alive
    connection waited ~40 ms for a delayed ACK. Checked on the transports the event loop itself
    makes from the socket `dsdeploy serve` hands to uvicorn."""
    import asyncio
    import socket

    from dsdeploy.serve.server import bind

    seen = []

    async def main():
        sock = bind("127.0.0.1", 0)
        assert sock.proto == socket.IPPROTO_TCP
        port = sock.getsockname()[1]

        async def handle(reader, writer):
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        for _ in range(2):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            await r.read()
            w.close()
        server.close()

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(main())
    assert len(seen) == 2 and all(seen)


def test_engine_nice_out_of_range_is_one_clear_error(fake_gguf):
    r = _serve("--model", str(fake_gguf), "--engine-nice", "25")
    assert r.returncode == 2 and "--engine-nice must be between 0 and 19" in r.stderr
    assert "Traceback" not in r.stderr


def test_port_zero_means_any_free_port(fake_gguf):
    ServeSettings(model_path=fake_gguf, served_name="m", port=0).validate()
    with pytest.raises(UserError, match=r"--port must be 0\.\.65535"):
        ServeSettings(model_path=fake_gguf, served_name="m", port=70000).validate()


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("header_timeout", 0.0, "--header-timeout"),
        ("header_timeout", float("nan"), "--header-timeout"),
        ("body_timeout", -1.0, "--body-timeout"),
        ("watchdog_timeout", float("inf"), "--watchdog-timeout"),
        ("write_timeout", 0.0, "--write-timeout"),
        ("drain_timeout", float("nan"), "--drain-timeout"),
        ("max_connections", 0, "--max-connections"),
        ("max_connections", 10, "--max-connections"),  # below --max-concurrency (64)
        ("max_body_bytes", 0, "--max-body-bytes"),
    ],
)
def test_hostile_client_limits_are_checked(fake_gguf, field, value, flag):
    with pytest.raises(UserError, match=flag):
        ServeSettings(model_path=fake_gguf, served_name="m", **{field: value}).validate()


def test_cli_bad_timeout_exits_2(fake_gguf):
    r = _serve("--model", str(fake_gguf), "--header-timeout", "0")
    assert r.returncode == 2 and "--header-timeout" in r.stderr and "Traceback" not in r.stderr
