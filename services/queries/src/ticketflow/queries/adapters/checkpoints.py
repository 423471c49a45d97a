"""Where each read model is in the global log, as the projector announces it (LISTEN on the checkpoint
channel; NOTIFY arrives at the commit of each batch), refreshed from the table every second in case a
notice was missed. An answer reports the checkpoint it saw before it read, a lower bound of what the read
includes, so it never claims more than it has."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import asyncpg

from ticketflow.eventstore.store import Checkpoint
from ticketflow.eventstore.tracking import CHECKPOINTS_CHANNEL

log = logging.getLogger(__name__)
_ALL = "SELECT projection, transaction_id::text AS transaction_id, position FROM projection_checkpoints"
_LOCATE = "SELECT transaction_id::text FROM events WHERE position = $1"
REFRESH_S = 1.0
POLL_S = 0.05  # while the event asked for is not visible yet


class Checkpoints:
    def __init__(self, pool: asyncpg.Pool, read_models: Iterable[str]) -> None:
        self.pool = pool
        self.read_models = tuple(read_models)
        self.known: dict[str, Checkpoint] = {}
        self._changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._listener: Any = None

    def current(self, names: Iterable[str]) -> Checkpoint:
        """The oldest checkpoint among `names` (the beginning for one that has none)."""
        return min((self.known.get(name, Checkpoint()) for name in names), default=Checkpoint())

    async def wait_for(self, names: tuple[str, ...], position: int, timeout_s: float) -> bool:
        """Whether every read model of `names` includes the event at `position` within `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        target: Checkpoint | None = Checkpoint() if position == 0 else None
        while True:
            if target is None:
                xid = await self.pool.fetchval(_LOCATE, position)
                target = None if xid is None else Checkpoint(int(xid), position)
            if target is not None and self.current(names) >= target:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                pause = min(remaining, POLL_S if target is None else remaining)
                await asyncio.wait_for(asyncio.shield(self._changed), pause)

    async def refresh(self) -> None:
        for row in await self.pool.fetch(_ALL):
            self._advance(row["projection"], Checkpoint(int(row["transaction_id"]), row["position"]))

    async def run(self, stop: asyncio.Event) -> None:
        """Listen for checkpoints and refresh them every second until stopped (a lost connection is replaced)."""
        try:
            while not stop.is_set():
                if self._listener is None or self._listener.is_closed():
                    await self._listen()
                await self.refresh()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), REFRESH_S)
        finally:
            await self.close()

    async def ready(self) -> str:
        return "ok" if self._listener is not None and not self._listener.is_closed() else "not listening"

    async def close(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(CHECKPOINTS_CHANNEL, self._heard)
            await self.pool.release(self._listener)
        self._listener = None

    async def _listen(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self.pool.release(self._listener)
        self._listener = await self.pool.acquire()
        await self._listener.add_listener(CHECKPOINTS_CHANNEL, self._heard)

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            name, xid, position = payload.split(" ")
            self._advance(name, Checkpoint(int(xid), int(position)))
        except ValueError:
            log.warning("unexpected checkpoint notice %r", payload)

    def _advance(self, name: str, checkpoint: Checkpoint) -> None:
        """Checkpoints only move forward here (a rebuild swaps in a copy at or past the live one)."""
        if name in self.read_models and checkpoint > self.known.get(name, Checkpoint()):
            self.known[name] = checkpoint
            changed, self._changed = self._changed, asyncio.get_running_loop().create_future()
            changed.set_result(None)
