"""`dsdeploy deploy`: the launch command (or compose file, systemd units, Kubernetes manifests) for a plan."""

from __future__ import annotations

from pathlib import Path

import typer

from dsdeploy.cli import options as opt
from dsdeploy.cli.files import write_text
from dsdeploy.errors import UserError
from dsdeploy.planner.options import DEFAULTS, options_from


def register(app: typer.Typer) -> None:
    @app.command("deploy")
    def deploy(
        model: opt.Model = DEFAULTS.model,
        weights: opt.Weights = DEFAULTS.weights,
        kv_dtype: opt.KvDtype = DEFAULTS.kv_dtype,
        accelerator: opt.Accelerator = DEFAULTS.accelerator,
        count: opt.Count = DEFAULTS.count,
        nodes: opt.Nodes = DEFAULTS.nodes,
        engine: opt.Engine = DEFAULTS.engine,
        placement: opt.Placement = DEFAULTS.placement,
        tp: opt.Tp = DEFAULTS.tp,
        pp: opt.Pp = DEFAULTS.pp,
        ep: opt.Ep = DEFAULTS.ep,
        dp_attention: opt.DpAttention = DEFAULTS.dp_attention,
        cpu: opt.Cpu = DEFAULTS.cpu,
        cpu_sockets: opt.CpuSockets = DEFAULTS.cpu_sockets,
        dram: opt.Dram = DEFAULTS.dram,
        dram_gb: opt.DramGb = DEFAULTS.dram_gb,
        input_len: opt.InputLen = DEFAULTS.input_len,
        output_len: opt.OutputLen = DEFAULTS.output_len,
        concurrency: opt.Concurrency = DEFAULTS.concurrency,
        mtp: opt.Mtp = DEFAULTS.mtp,
        model_path: str = typer.Option(..., "--model-path", help="Where the weights are on the serving host(s)."),
        emit_fmt: str = typer.Option("command", "--emit", help="command, compose, systemd or k8s."),
        host: str | None = typer.Option(
            None,
            "--host",
            help="Listen address. Default 127.0.0.1 (command/systemd), 0.0.0.0 inside containers (compose/k8s).",
        ),
        port: int = typer.Option(8000, "--port", help="HTTP port."),
        head_addr: str | None = typer.Option(
            None,
            "--head-addr",
            help="Multi-node: node 0's address (default: HEAD_NODE_IP placeholder; k8s: the head pod's DNS name).",
        ),
        dist_port: int | None = typer.Option(
            None, "--dist-port", min=1, max=65535, help="Multi-node rendezvous port (Ray 6379, SGLang 20000)."
        ),
        served_model_name: str | None = typer.Option(None, "--served-model-name", help="Model id clients use."),
        cpu_weights: str | None = typer.Option(
            None, "--cpu-weights", help="KTransformers: CPU-side expert weights (GGUF or AMX)."
        ),
        threads: int | None = typer.Option(
            None, "--threads", min=1, help="CPU threads (default: the CPU's physical cores)."
        ),
        image: str | None = typer.Option(None, "--image", help="Container image for compose/k8s."),
        max_model_len: int | None = typer.Option(
            None,
            "--max-model-len",
            min=1,
            help="Per-request context limit (default: prompt + the larger of output and the model's reasoning budget, "
            "within the model's limit and the planned KV).",
        ),
        force: bool = typer.Option(False, "--force", help="Emit even if the memory plan says it does not fit."),
        output: Path | None = typer.Option(None, "-o", "--output", help="Write to FILE instead of stdout."),
    ) -> None:
        """Write the exact launch command for a deployment plan (command | compose | systemd | k8s)."""
        from dsdeploy.engines import DeployOptions, render
        from dsdeploy.engines.base import check_address
        from dsdeploy.engines.emit import EMITS, k8s_head_addr
        from dsdeploy.engines.options import resolve

        if emit_fmt not in EMITS:
            raise UserError(f"--emit must be one of {', '.join(EMITS)}; got '{emit_fmt}'")
        if not 0 < port < 65536:
            raise UserError("--port must be 1..65535")
        dep, mem, wl = resolve(options_from(locals()))
        if host is None:
            host = "0.0.0.0" if emit_fmt in ("compose", "k8s") else "127.0.0.1"
        if head_addr is not None:
            check_address(head_addr, "--head-addr")
        if host is not None:
            check_address(host, "--host")
        if head_addr is None and emit_fmt == "k8s" and dep.nodes > 1:
            head_addr = k8s_head_addr(dep.engine.id)
        opts = DeployOptions(
            model_path=model_path,
            host=host,
            port=port,
            head_addr=head_addr,
            served_name=served_model_name,
            cpu_weights_path=cpu_weights,
            threads=threads,
            dist_port=dist_port,
            image=image,
            max_model_len=max_model_len,
        )
        text = render(dep, mem, wl, opts, emit_fmt, force=force)
        if output is not None:
            write_text(output, text, mode=0o755 if emit_fmt == "command" else None)
            typer.echo(f"wrote {output}", err=True)
        else:
            typer.echo(text, nl=False)
