"""Paused desks and the messages held for them (`intake_paused_desks`, `intake_held_messages`).

A desk's intake is paused by the `PauseIntake` operator command: its chat messages are accepted (webhooks
still answer 202, `chat.inbound` is still consumed) but held here instead of being recorded; `ResumeIntake`
records the held messages in the order they came, then lifts the pause. Every intake instance keeps the
set of paused desks in memory (each applies the command), and reads it at start-up."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import msgspec

from ticketflow.contracts.chat import ChatMessage, chat_message_decoder

_encoder = msgspec.json.Encoder()
HELD_PER_ROUND = 1000


class DeskPauses:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.paused: set[str] = set()

    async def load(self) -> None:
        self.paused = {r["desk_id"] for r in await self.pool.fetch("SELECT desk_id FROM intake_paused_desks")}

    async def pause(self, desk_id: str, actor: str, command_id: str) -> None:
        await self.pool.execute(
            """INSERT INTO intake_paused_desks (desk_id, paused_by, command_id) VALUES ($1, $2, $3)
               ON CONFLICT (desk_id) DO NOTHING""",
            desk_id, actor, command_id,
        )  # fmt: skip
        self.paused.add(desk_id)

    async def hold(self, held: Sequence[tuple[str, ChatMessage]]) -> None:
        """Keep (desk id, message) pairs until the desk resumes; a message held twice is kept once."""
        await self.pool.executemany(
            """INSERT INTO intake_held_messages (desk_id, idempotency_key, message) VALUES ($1, $2, $3)
               ON CONFLICT (idempotency_key) DO NOTHING""",
            [(desk, m.idempotency_key(), _encoder.encode(m)) for desk, m in held],
        )

    async def held(self, desk_id: str) -> list[tuple[int, ChatMessage]]:
        """The oldest held messages of the desk (a round of them), with their ids."""
        rows = await self.pool.fetch(
            "SELECT held_id, message FROM intake_held_messages WHERE desk_id = $1 ORDER BY held_id LIMIT $2",
            desk_id, HELD_PER_ROUND,
        )  # fmt: skip
        return [(r["held_id"], chat_message_decoder.decode(r["message"])) for r in rows]

    async def release(self, held_ids: Sequence[int]) -> None:
        await self.pool.execute("DELETE FROM intake_held_messages WHERE held_id = ANY($1::bigint[])", list(held_ids))

    async def resume(self, desk_id: str) -> None:
        self.paused.discard(desk_id)
        await self.pool.execute("DELETE FROM intake_paused_desks WHERE desk_id = $1", desk_id)
