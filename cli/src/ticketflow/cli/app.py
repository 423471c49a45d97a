"""`ticketflow`, the process: the commands (`root.py` holds the app and its options; `commands_*.py` the
commands), and the rule that every error is one line on stderr with a non-zero exit status."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

# typer 0.29 vendors click and names this one nowhere public: `ticketflow` alone shows the help.
from typer._click.exceptions import NoArgsIsHelpError

from ticketflow.cli import commands_operate, commands_system, commands_tickets
from ticketflow.cli.context import CliError
from ticketflow.cli.root import app
from ticketflow.runtime.settings import SettingsError

COMMANDS = (commands_tickets, commands_operate, commands_system)  # imported for their commands


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every error is one line on stderr (2: a wrong command line; 1: it failed)."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(argv) if argv is not None else None, prog_name="ticketflow",
                              standalone_mode=False)  # fmt: skip
        return result if isinstance(result, int) else 0
    except NoArgsIsHelpError as shown:  # `ticketflow`, `ticketflow dlq`: the help, not an error
        print(shown.ctx.get_help() if shown.ctx else "ticketflow --help")
        return 0
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:
        return _error("aborted", 1)
    except typer.TyperException as wrong:  # the command line (usage, a bad value)
        path = wrong.ctx.command_path if getattr(wrong, "ctx", None) else "ticketflow"  # type: ignore[attr-defined]
        return _error(f"{wrong.format_message()} (see: {path} --help)", 2)  # type: ignore[attr-defined]
    except SettingsError as bad:
        return _error("; ".join(str(bad).splitlines()), 2)
    except CliError as failed:
        return _error(str(failed), 1)
    except Exception as error:  # the broker or the database away, a bug: named, on one line
        return _error(f"{type(error).__name__}: {error}".replace("\n", " "), 1)


def _error(text: str, code: int) -> int:
    print(f"ticketflow: error: {text}", file=sys.stderr)
    return code


def entry() -> None:
    sys.exit(main())
