"""Query benchmark (`make bench-queries`): the query API over 1,000,000 tickets (about 10 M events) in the
read models, against the same SQL sent straight to PostgreSQL in the same run; and projection catch-up from
zero against reading the raw global log alone.

Phases:
  dataset   build (or reuse) database --database: the tickets' events and every read model, by bulk COPY
            (tests/load/queries/dataset.py); reused while the migrations and the generator are unchanged
  queries   the queries service as a real process; for each of list-with-filters, ticket detail and the SLA
            board: --warmup s, then --seconds at --rate requests/s open loop (openloop_get.py, its own
            process), then the same requests' SQL straight to PostgreSQL at the same rate (ceiling.py)
  catchup   each read model from zero over the first --catchup-events events, into copies of its tables (as a
            rebuild fills them), alone and all six at once (as the projector runs them); against reading the
            same events from the global log alone (rows only, and rows decoded into envelopes)
The load average (/proc/loadavg) is printed with every figure: the machine is shared.

Usage: python tests/load/queries/bench_queries.py [--tickets 1000000] [--rate 1000] [--seconds 30]
       [--phases dataset,queries,catchup] [--catchup-events 300000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from tabulate import tabulate

from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.connection import dsn_from_env
from ticketflow.eventstore.projections import ProjectionRunner
from ticketflow.eventstore.sql import READ_ALL
from ticketflow.eventstore.store import Checkpoint
from ticketflow.projector.adapters.read_models import read_models
from ticketflow.queries.domain.tokens import grant_toml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tests"))  # support.ticket_histories, support.infra

from dataset import ensure_dataset  # noqa: E402

TOKEN = "tfq_bench-queries-token-read-every-desk-000000000"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- the workload -------------------------------------------------------------------------------------


async def workload(dsn: str, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Requests of each scenario, as specs both the HTTP paths and the ceiling's SQL are made from."""
    rng = random.Random(seed)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT setseed(0.19)")
        rows = await conn.fetch("SELECT ticket_id, desk_id FROM ticket_list ORDER BY random() LIMIT 20000")
        agents = await conn.fetch(
            "SELECT DISTINCT desk_id, assignee FROM agent_load_tickets WHERE assignee IS NOT NULL"
        )
        queues = await conn.fetch("SELECT DISTINCT desk_id, queue_id FROM ticket_list WHERE queue_id IS NOT NULL")
    finally:
        await conn.close()
    desks = sorted({r["desk_id"] for r in rows})
    by_desk = {d: [r["queue_id"] for r in queues if r["desk_id"] == d] for d in desks}
    agents_of = {d: [r["assignee"] for r in agents if r["desk_id"] == d] for d in desks}
    filters: list[tuple[str, dict[str, list[str]]]] = []
    for desk in desks:
        filters += [
            (desk, {"statuses": ["routed", "assigned", "in_progress"]}),
            (desk, {"statuses": ["closed"], "priorities": ["urgent"]}),
            (desk, {"sla_states": ["breached", "warning"]}),
            (desk, {"statuses": ["resolved", "closed"], "categories": ["feature_request"]}),
            *((desk, {"queues": [q], "statuses": ["waiting_on_customer", "in_progress", "resolved"]})
              for q in by_desk[desk]),
            *((desk, {"assignees": [a]}) for a in agents_of[desk][:6]),
        ]  # fmt: skip
    lists = [{"kind": "list", "desks": [d], "filter": f, "limit": 50} for d, f in filters]
    rng.shuffle(lists)
    details = [{"kind": "detail", "ticket_id": str(r["ticket_id"]), "desks": desks} for r in rows]
    boards = [{"kind": "board", "desk": rng.choice(desks), "limit": 50} for _ in range(200)]
    return {"list": lists, "detail": details, "board": boards}


PARAM_NAMES = {"statuses": "status", "priorities": "priority", "sla_states": "sla_state", "categories": "category",
               "queues": "queue", "assignees": "assignee"}  # fmt: skip


def path_of(spec: dict[str, Any]) -> str:
    if spec["kind"] == "list":
        query = {"desk": spec["desks"][0], "limit": spec["limit"]}
        query.update({PARAM_NAMES[k]: ",".join(v) for k, v in spec["filter"].items()})
        return "/v1/tickets?" + urllib.parse.urlencode(query)
    if spec["kind"] == "detail":
        return f"/v1/tickets/{spec['ticket_id']}"
    return f"/v1/desks/{spec['desk']}/sla-board?within=60&limit={spec['limit']}"


# --- the service and the two generators -----------------------------------------------------------------


def start_service(dsn: str, tmp: Path, pool_size: int) -> tuple[subprocess.Popen[bytes], str]:
    tokens = tmp / "tokens.toml"
    tokens.write_text(grant_toml("bench", TOKEN, ["read:*"], None))
    port = 18007
    env = {**os.environ, "TICKETFLOW_PG_DSN": dsn, "TICKETFLOW_QUERIES_PORT": str(port),
           "TICKETFLOW_QUERIES_TOKENS_FILE": str(tokens), "TICKETFLOW_ENSURE_TOPICS": "false",
           "TICKETFLOW_QUERIES_POOL_SIZE": str(pool_size), "TICKETFLOW_LOG_LEVEL": "WARNING"}  # fmt: skip
    log = (tmp / "queries.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "ticketflow.queries"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"queries exited:\n{(tmp / 'queries.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("queries never became ready")


def generate(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    line = next(line for line in done.stdout.splitlines() if line.startswith("OPENLOOP "))
    return dict(json.loads(line.removeprefix("OPENLOOP ")))


def cpu_of(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def queries_phase(dsn: str, args: argparse.Namespace, specs: dict[str, list[dict[str, Any]]]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        service, url = start_service(dsn, tmp, args.pool_size)
        workload_file = tmp / "workload.json"
        workload_file.write_text(json.dumps(specs))
        watched = psutil.Process(service.pid)
        try:
            for scenario, title in (("list", "list with filters"), ("detail", "ticket detail"), ("board", "SLA board")):
                paths = tmp / f"{scenario}.paths"
                paths.write_text("\n".join(path_of(s) for s in specs[scenario]))
                base = [sys.executable, str(HERE / "openloop_get.py"), "--url", url, "--paths", str(paths),
                        "--token", TOKEN, "--rate", str(args.rate), "--connections", str(args.connections)]  # fmt: skip
                generate([*base, "--duration", str(args.warmup)])
                before, started = cpu_of(watched), time.monotonic()
                api = generate([*base, "--duration", str(args.seconds)])
                service_cpu = (cpu_of(watched) - before) / (time.monotonic() - started)
                load_api = loadavg()
                ceiling = generate([sys.executable, str(HERE / "ceiling.py"), "--dsn", dsn, "--workload",
                                    str(workload_file), "--scenario", scenario, "--rate", str(args.rate),
                                    "--duration", str(args.seconds)])  # fmt: skip
                print(f"{title}: API {json.dumps(api)}\n  ceiling {json.dumps(ceiling)}", flush=True)
                for label, result, note in (
                    (f"{title}: query API", api, f"service CPU {service_cpu:.2f} cores; load {load_api}"),
                    (f"{title}: same SQL straight to PostgreSQL", ceiling, f"load {loadavg()}"),
                ):
                    bad = {k: v for k, v in result["statuses"].items() if k not in ("200", "ok") and v}
                    rows.append([label, result["offered_rate"], result["achieved_rate"], result["p50_ms"],
                                 result["p99_ms"], result["p999_ms"], result["max_ms"], bad or "", note])  # fmt: skip
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=20)
    return rows


# --- catch-up -----------------------------------------------------------------------------------------


async def catchup_phase(dsn: str, events: int, batch: int) -> list[list[Any]]:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=12)
    assert pool is not None
    store = EventStore(pool)
    rows: list[list[Any]] = []
    try:
        raw = await read_raw(pool, events, batch)
        decoded = await read_decoded(store, events, batch)
        rows.append(["global log: rows only (SELECT)", events, f"{events / raw:,.0f}", f"load {loadavg()}"])
        rows.append(["global log: rows decoded into envelopes", events, f"{events / decoded:,.0f}", ""])
        projections = read_models(load_desks())
        for projection in projections:
            seconds = (await catch_up(store, [projection], events, batch))[projection.name]
            rows.append(
                [f"{projection.name} from zero, alone", events, f"{events / seconds:,.0f}", f"load {loadavg()}"]
            )
        together = await catch_up(store, projections, events, batch)
        slowest = max(together.values())
        rows.append(["all six at once (as the projector runs them), slowest", events, f"{events / slowest:,.0f}",
                     f"{6 * events / slowest:,.0f} events applied/s in all; load {loadavg()}"])  # fmt: skip
    finally:
        await pool.close()
    return rows


async def read_raw(pool: asyncpg.Pool, events: int, batch: int) -> float:
    started, after, read = time.perf_counter(), Checkpoint(), 0
    async with pool.acquire() as conn:
        while read < events:
            got = await conn.fetch(READ_ALL, str(after.transaction_id), after.position, batch)
            if not got:
                break
            read += len(got)
            after = Checkpoint(int(got[-1]["transaction_id"]), got[-1]["position"])
    return time.perf_counter() - started


async def read_decoded(store: EventStore, events: int, batch: int) -> float:
    started, after, read = time.perf_counter(), Checkpoint(), 0
    while read < events:
        got = await store.read_all(after, batch)
        if not got:
            break
        read += len(got)
        after = got[-1].checkpoint
    return time.perf_counter() - started


async def catch_up(store: EventStore, projections: list[Any], events: int, batch: int) -> dict[str, float]:
    """Each projection from zero into copies of its tables (schema bench_<name>), until it has applied `events`;
    seconds each took (the projections run concurrently, each on its own connection)."""

    async def one(projection: Any) -> float:
        schema, name = f"bench_{projection.name}", f"bench:{projection.name}"
        async with store.pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
            for table in projection.tables:
                await conn.execute(f"CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)")
            await conn.execute("DELETE FROM projection_checkpoints WHERE projection = $1", name)
            await conn.execute(f"SET search_path = {schema}, public")
            runner = ProjectionRunner(store, projection, batch_size=batch, checkpoint=name, conn=conn)
            started, applied = time.perf_counter(), 0
            try:
                while applied < events:
                    step = await runner.step()
                    if not step:
                        break
                    applied += step
                return time.perf_counter() - started
            finally:
                await conn.execute("RESET search_path")
                await conn.execute(f"DROP SCHEMA {schema} CASCADE")
                await conn.execute("DELETE FROM projection_checkpoints WHERE projection = $1", name)

    seconds = await asyncio.gather(*(one(p) for p in projections))
    return {p.name: s for p, s in zip(projections, seconds, strict=True)}


# --- main ---------------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    phases = set(args.phases.split(","))
    print(f"load before: {loadavg()}", flush=True)
    dsn, built = await ensure_dataset(dsn_from_env(), args.database, args.tickets, args.seed)
    conn = await asyncpg.connect(dsn)
    try:
        sizes = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM ticket_list) AS tickets, (SELECT max(position) FROM events) AS events"
        )
    finally:
        await conn.close()
    print(f"dataset {args.database}: {sizes['tickets']:,} tickets, {sizes['events']:,} events "
          f"({'built now' if built else 'reused'})", flush=True)  # fmt: skip
    if "queries" in phases:
        specs = await workload(dsn, args.seed)
        rows = queries_phase(dsn, args, specs)
        print(f"\n## Queries: {args.rate:,.0f} requests/s offered, {args.seconds:g} s each, open loop\n")
        print(tabulate(rows, headers=["", "offered/s", "answered/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
                                      "not 200", "note"]))  # fmt: skip
    if "catchup" in phases:
        rows = await catchup_phase(dsn, min(args.catchup_events, sizes["events"]), args.batch)
        print(f"\n## Catch-up from zero: the first {min(args.catchup_events, sizes['events']):,} events\n")
        print(tabulate(rows, headers=["", "events", "events/s", "note"]))
    print(f"\nload after: {loadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--database", default="tf_bench_queries")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--phases", default="dataset,queries,catchup")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32, help="HTTP keep-alive connections of the generator")
    parser.add_argument("--pool-size", type=int, default=16, help="the service's PostgreSQL connections")
    parser.add_argument("--catchup-events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=1000, help="events per projection batch (the projector's)")
    asyncio.run(main(parser.parse_args()))
