"""The `dsdeploy` command line: an edge. It parses options, calls the planner and estimators, and
renders their results. It does no arithmetic of its own.

Each subcommand lives in its own module `dsdeploy/cli/cmd_<name>.py` exposing `register(app)`;
this module discovers them, so adding a command never touches this file.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path

import typer

from dsdeploy.errors import UserError

app = typer.Typer(
    name="dsdeploy",
    help="Plan, cost, launch and measure DeepSeek deployments on your own hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def package_version() -> str:
    """The installed distribution's version (package metadata); the source tree's when not installed."""
    from importlib import metadata

    try:
        return metadata.version("dsdeploy")
    except metadata.PackageNotFoundError:
        from dsdeploy import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dsdeploy {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Plan, cost, launch and measure DeepSeek deployments on your own hardware."""


_COMMAND_RE = re.compile(r"""\.command\(\s*["']([a-z][a-z0-9-]*)["']""")


def _command_modules() -> dict[str, str]:
    """Map command name → module, read from the sources' `@app.command("name")` lines, so that
    only the module a command needs is imported (start-up stays fast)."""
    import dsdeploy.cli as pkg

    out: dict[str, str] = {}
    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if mod.name.startswith("cmd_"):
            src = (Path(pkg.__path__[0]) / f"{mod.name}.py").read_text(encoding="utf-8")
            for name in _COMMAND_RE.findall(src):
                out.setdefault(name, mod.name)
            out.setdefault(mod.name[4:].replace("_", "-"), mod.name)
    return out


def _register_commands(argv: list[str] | None = None) -> None:
    mods = _command_modules()
    args = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("-")]
    wanted = [mods[args[0]]] if args and args[0] in mods else sorted(set(mods.values()))
    for name in wanted:
        importlib.import_module(f"dsdeploy.cli.{name}").register(app)


_register_commands()


def main() -> None:
    """Entry point. Usage errors are reported by typer itself (one message, exit 2); a UserError
    becomes one line on stderr and exit code 2; neither prints a traceback."""
    try:
        app()  # standalone mode: typer handles usage errors, --help and exit codes
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
