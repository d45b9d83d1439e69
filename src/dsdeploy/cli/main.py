"""The `dsdeploy` command line: an edge. It parses options, calls the planner and estimators, and
renders their results. It does no arithmetic of its own.

Each subcommand lives in its own module `dsdeploy/cli/cmd_<name>.py` exposing `register(app)`;
this module discovers them, so adding a command never touches this file.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from dsdeploy.errors import UserError

app = typer.Typer(
    name="dsdeploy",
    help="Plan, cost, launch and measure DeepSeek deployments on your own hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    import dsdeploy.cli as pkg

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if mod.name.startswith("cmd_"):
            module = importlib.import_module(f"dsdeploy.cli.{mod.name}")
            module.register(app)


_register_commands()


def main() -> None:
    """Entry point: run the app; a UserError becomes one message on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
