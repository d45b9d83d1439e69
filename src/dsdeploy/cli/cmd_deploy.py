"""`dsdeploy deploy`: the launch command (or compose file, systemd units, Kubernetes manifests) for a plan."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsdeploy.errors import UserError


def register(app: typer.Typer) -> None:
    @app.command("deploy")
    def deploy(
        model: str = typer.Option("deepseek-r1", "--model", help="Catalog model id, config.json or .gguf path."),
        weights: Optional[str] = typer.Option(None, "--weights", help="Weight format id (default: the model's native format)."),
        kv_dtype: str = typer.Option("bf16", "--kv-dtype", help="KV cache dtype: bf16, fp16, fp8, q4_0."),
        accelerator: Optional[str] = typer.Option(None, "--accelerator", help="Accelerator id (e.g. h200-sxm, rtx-4090)."),
        count: Optional[int] = typer.Option(None, "--count", help="Accelerators per node. Default: 8 for datacenter GPUs, else 1."),
        nodes: int = typer.Option(1, "--nodes", help="Nodes."),
        engine: Optional[str] = typer.Option(None, "--engine", help="vllm, sglang, llama.cpp or ktransformers."),
        placement: Optional[str] = typer.Option(None, "--placement", help="gpu, experts-on-cpu, layer-split, cpu, unified."),
        tp: Optional[int] = typer.Option(None, "--tp", help="Tensor-parallel size of one attention group."),
        pp: Optional[int] = typer.Option(None, "--pp", help="Pipeline stages."),
        ep: Optional[int] = typer.Option(None, "--ep", help="Expert-parallel partitions."),
        dp_attention: Optional[int] = typer.Option(None, "--dp-attention", help="Data-parallel attention groups."),
        cpu: Optional[str] = typer.Option(None, "--cpu", help="CPU id (or 'local' after `dsdeploy doctor --save`)."),
        cpu_sockets: int = typer.Option(1, "--cpu-sockets", help="CPU sockets."),
        dram: Optional[str] = typer.Option(None, "--dram", help="Host memory, e.g. ddr5-4800x8."),
        dram_gb: Optional[float] = typer.Option(None, "--dram-gb", help="Host memory size, GB."),
        input_len: int = typer.Option(1024, "--input-len", help="Prompt tokens per request."),
        output_len: int = typer.Option(1024, "--output-len", help="Generated tokens per request."),
        concurrency: int = typer.Option(1, "--concurrency", help="Requests in flight."),
        model_path: str = typer.Option(..., "--model-path", help="Where the weights are on the serving host(s)."),
        emit_fmt: str = typer.Option("command", "--emit", help="command, compose, systemd or k8s."),
        host: Optional[str] = typer.Option(
            None, "--host", help="Listen address. Default 127.0.0.1 (command/systemd), 0.0.0.0 inside containers (compose/k8s)."
        ),
        port: int = typer.Option(8000, "--port", help="HTTP port."),
        head_addr: Optional[str] = typer.Option(
            None, "--head-addr", help="Multi-node: node 0's address (default: HEAD_NODE_IP placeholder; k8s: the head pod's DNS name)."
        ),
        dist_port: Optional[int] = typer.Option(None, "--dist-port", help="Multi-node rendezvous port (Ray 6379, SGLang 20000)."),
        served_model_name: Optional[str] = typer.Option(None, "--served-model-name", help="Model id clients use."),
        cpu_weights: Optional[str] = typer.Option(None, "--cpu-weights", help="KTransformers: CPU-side expert weights (GGUF or AMX)."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: the CPU's physical cores)."),
        image: Optional[str] = typer.Option(None, "--image", help="Container image for compose/k8s."),
        force: bool = typer.Option(False, "--force", help="Emit even if the memory plan says it does not fit."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to FILE instead of stdout."),
    ) -> None:
        """Write the exact launch command for a deployment plan (command | compose | systemd | k8s)."""
        from dsdeploy.engines import DeployOptions, render
        from dsdeploy.engines.emit import EMITS, k8s_head_addr
        from dsdeploy.engines.options import PlanOptions, resolve

        if emit_fmt not in EMITS:
            raise UserError(f"--emit must be one of {', '.join(EMITS)}; got '{emit_fmt}'")
        if not 0 < port < 65536:
            raise UserError("--port must be 1..65535")
        dep, mem, wl = resolve(PlanOptions(
            model=model, weights=weights, kv_dtype=kv_dtype, accelerator=accelerator, count=count, nodes=nodes,
            engine=engine, placement=placement, tp=tp, pp=pp, ep=ep, dp_attention=dp_attention, cpu=cpu,
            cpu_sockets=cpu_sockets, dram=dram, dram_gb=dram_gb, input_len=input_len, output_len=output_len,
            concurrency=concurrency,
        ))
        if host is None:
            host = "0.0.0.0" if emit_fmt in ("compose", "k8s") else "127.0.0.1"
        if head_addr is None and emit_fmt == "k8s" and dep.nodes > 1:
            head_addr = k8s_head_addr(dep.engine.id)
        opts = DeployOptions(
            model_path=model_path, host=host, port=port, head_addr=head_addr, served_name=served_model_name,
            cpu_weights_path=cpu_weights, threads=threads, dist_port=dist_port, image=image,
        )
        text = render(dep, mem, wl, opts, emit_fmt, force=force)
        if output is not None:
            output.write_text(text)
            if emit_fmt == "command":
                output.chmod(0o755)
            typer.echo(f"wrote {output}", err=True)
        else:
            typer.echo(text, nl=False)
