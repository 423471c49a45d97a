"""`python -m ticketflow.deskconfig check [DIR]`: validate desk files.

Exit 0 when all load; exit 1 printing `file:line: field: problem` for each problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ticketflow.deskconfig.loader import DeskConfigError, config_directory, load_desks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ticketflow.deskconfig")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate every *.toml desk file in DIR")
    check.add_argument(
        "directory",
        nargs="?",
        type=Path,
        help="default: $TICKETFLOW_DESK_CONFIG_DIR or the packaged desks",
    )
    args = parser.parse_args(argv)
    directory = config_directory(args.directory)
    try:
        registry = load_desks(directory)
    except DeskConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        print(f"{len(error.problems)} problem(s) in {directory}", file=sys.stderr)
        return 1
    for desk in registry.desks.values():
        print(f"ok: {desk.id} ({len(desk.tracks)} tracks, {len(desk.queues)} queues)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
