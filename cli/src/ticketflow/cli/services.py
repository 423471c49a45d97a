"""The services from outside: health and readiness of each (its /health/live and /health/ready), the
desk-configuration check, a projection rebuild, and notifications' dead deliveries."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from ticketflow.cli.context import CliError, Context
from ticketflow.deskconfig.loader import DeskConfigError, config_directory, load_desks
from ticketflow.runtime.settings import SERVICE_PORTS


def urls(host: str, overrides: Sequence[str]) -> dict[str, str]:
    """Each service's base URL: http://<host>:<its port>, or `name=url` overrides (e.g. in Kubernetes)."""
    found = {name: f"http://{host}:{port}" for name, port in SERVICE_PORTS.items()}
    for override in overrides:
        name, sep, url = override.partition("=")
        if not sep or name not in found:
            raise CliError(f"--url takes service=url with a service among {', '.join(found)}, not {override!r}")
        found[name] = url.rstrip("/")
    return found


async def _probe(client: httpx.AsyncClient, name: str, base: str) -> dict[str, Any]:
    row: dict[str, Any] = {"service": name, "url": base, "live": False, "ready": False, "checks": {}}
    try:
        live = await client.get(f"{base}/health/live")
        row["live"] = live.status_code == 200
        ready = await client.get(f"{base}/health/ready")
        body = ready.json()
        row["ready"], row["checks"] = ready.status_code == 200 and bool(body.get("ready")), body.get("checks", {})
    except (httpx.HTTPError, ValueError) as error:
        row["checks"] = {"http": f"unreachable: {type(error).__name__}: {error}"}
    return row


async def health(ctx: Context, services: Mapping[str, str], timeout_s: float) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        rows = list(await asyncio.gather(*(_probe(client, n, u) for n, u in services.items())))
    table = [(r["service"], r["url"], "yes" if r["live"] else "no", "yes" if r["ready"] else "no",
              "; ".join(f"{k}: {v}" for k, v in r["checks"].items() if v != "ok") or "ok") for r in rows]  # fmt: skip
    ctx.table("services", ("service", "url", "live", "ready", "not ok"), table, rows)
    return rows


def check_desks(ctx: Context, directory: Path | None) -> int:
    """Validate every desk file; problems as `file:line: field: problem`, exit status 1 with any."""
    folder = config_directory(directory)
    try:
        registry = load_desks(folder)
    except DeskConfigError as error:
        ctx.emit({"directory": str(folder), "ok": False, "problems": [str(p) for p in error.problems]})
        if not ctx.json:
            for problem in error.problems:
                print(problem, file=sys.stderr)
            print(f"{len(error.problems)} problem(s) in {folder}", file=sys.stderr)
        return 1
    desks = [{"desk": d.id, "tracks": len(d.tracks), "queues": len(d.queues)} for d in registry.desks.values()]
    ctx.emit({"directory": str(folder), "ok": True, "desks": desks},
             "\n".join(f"ok: {d['desk']} ({d['tracks']} tracks, {d['queues']} queues)" for d in desks))  # fmt: skip
    return 0


async def rebuild(ctx: Context, projection: str) -> int:
    """Rebuild a read model in this process, with a progress bar (the projector's `rebuild_projection`)."""
    from ticketflow.projector.ops import rebuild_projection

    pool = await asyncpg.create_pool(ctx.pg_dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        applied = await rebuild_projection(pool, load_desks(), projection, show_progress=not ctx.json)
    except KeyError as unknown:
        raise CliError(unknown.args[0]) from None
    finally:
        await pool.close()
    ctx.emit({"projection": projection, "events": applied}, f"rebuilt {projection} from {applied} events")
    return applied
