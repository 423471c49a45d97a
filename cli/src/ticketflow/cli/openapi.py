"""`make openapi`: docs/openapi/<service>.json, the OpenAPI document of every service's HTTP API (each
service's `openapi.py` next to its routes; the health routes of the runtime in all), and operations.json,
every service's operations port. Here because this
package may import every service (a library may not)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec

from ticketflow.runtime.openapi import document, operations_document


def documents() -> dict[str, dict[str, Any]]:
    from ticketflow.intake.openapi import openapi as intake
    from ticketflow.sla.openapi import openapi as sla

    def health_only(name: str) -> dict[str, Any]:
        return document(name, f"{name}: health and readiness (it serves no other HTTP route).", [])

    return {
        "intake": intake(),
        "preflight": health_only("preflight"),
        "routing": health_only("routing"),
        "sla": sla(),
        "notifications": health_only("notifications"),
        "projector": health_only("projector"),
        "operations": operations_document(),
    }


def render(doc: dict[str, Any]) -> bytes:
    return msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n"


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "docs/openapi")
    folder.mkdir(parents=True, exist_ok=True)
    for name, doc in documents().items():
        (folder / f"{name}.json").write_bytes(render(doc))
        print(f"{folder / name}.json: {len(doc['paths'])} paths")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
