"""`dsdeploy ui`: a local web app (FastAPI on 127.0.0.1) to pick a model, format, hardware, count,
engine and workload and see the plan, the charts and the launch command change with them. It draws
with the same templates and chart code as `dsdeploy report` (`dsdeploy.reports.html`) and loads
nothing from outside the machine.
"""

from __future__ import annotations

import typer

from dsdeploy.errors import UserError


def register(app: typer.Typer) -> None:
    @app.command("ui")
    def ui(
        host: str = typer.Option("127.0.0.1", "--host", help="Listen address (loopback only by default)."),
        port: int = typer.Option(8765, "--port", min=0, max=65535, help="TCP port (0: any free port)."),
    ) -> None:
        """Open a local web UI for planning: the plan, charts and launch command follow the options as you change them."""
        import socket

        import uvicorn

        from dsdeploy.reports.ui import create_app

        if host not in ("127.0.0.1", "localhost", "::1"):
            typer.echo(f"warning: listening on {host}: anyone who can reach it can use this UI", err=True)
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            try:
                s.bind((host, port))
            except OSError as exc:
                raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (try --port 0)") from None
            port = s.getsockname()[1]
        typer.echo(f"dsdeploy ui on http://{host}:{port}/  (Ctrl-C to stop)")
        uvicorn.run(create_app(), host=host, port=port, log_level="warning")
