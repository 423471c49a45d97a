"""`python -m ticketflow.queries` runs the service (a bad setting, desk file or token grant stops it: exit 2).

python -m ticketflow.queries token --name NAME --scope read:DESK [--scope agent:DESK --agent AGENT_ID]
    prints a new random token (give it to its holder) and the [[tokens]] entry with its hash (add that to
    the file TICKETFLOW_QUERIES_TOKENS_FILE names); the token itself is stored nowhere
python -m ticketflow.queries openapi
    prints the OpenAPI document
"""

from __future__ import annotations

import argparse
import sys

from ticketflow.deskconfig import DeskConfigError, load_desks
from ticketflow.queries.domain.routes import route_params
from ticketflow.queries.domain.tokens import TokenConfigError, grant_toml, grants, new_token, parse_grants
from ticketflow.queries.http import endpoints
from ticketflow.queries.main import build
from ticketflow.queries.openapi import encoded
from ticketflow.queries.settings import QueriesSettings
from ticketflow.runtime.service import main as serve
from ticketflow.runtime.settings import SettingsError, load_settings


def token(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ticketflow.queries token", description="make a new token")
    parser.add_argument("--name", required=True, help="who holds it (an agent, a wallboard)")
    parser.add_argument("--scope", action="append", required=True, help="read:<desk>, read:*, agent:<desk>")
    parser.add_argument("--agent", help="the agent's id (with an agent:<desk> scope)")
    args = parser.parse_args(argv)
    made = new_token()
    entry = grant_toml(args.name, made, args.scope, args.agent)
    try:
        desks = load_desks(load_settings(QueriesSettings).desk_folder())
        grants(parse_grants(entry, None), desks.desks)  # refuse what the service would refuse
    except (SettingsError, DeskConfigError, TokenConfigError) as error:
        print(f"queries: {error}", file=sys.stderr)
        return 2
    print(f"token for {args.name} (stored nowhere: hand it over now):\n  {made}\n")
    print(f"its entry for {QueriesSettings.variable('tokens_file')}:\n")
    print(entry)
    return 0


def openapi() -> int:
    try:
        settings = load_settings(QueriesSettings)
        desks = load_desks(settings.desk_folder())
    except (SettingsError, DeskConfigError) as error:
        print(f"queries: {error}", file=sys.stderr)
        return 2
    params = route_params(sorted(desks.desks), max_limit=settings.max_limit, max_wait_ms=settings.max_wait_ms)
    sys.stdout.write(encoded(endpoints(params)).decode())
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] == "token":
        return token(argv[1:])
    if argv == ["openapi"]:
        return openapi()
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    return serve("queries", QueriesSettings, build, refusals=(DeskConfigError, TokenConfigError))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
