"""The store's SQL, one statement per operation, kept together so it can be read and reviewed as SQL."""

# One round trip appends the events of one or more streams. A stream's rows are inserted only if the
# expected version is its current head (or 0 for a new stream); a lost race shows up as fewer returned
# rows or a unique violation on (stream, version). Each row's `transaction_id` is the greater of this
# transaction's id and the stream head's (`LOG_ORDER_TRANSACTION_ID`): the global log's order is then
# each stream's version order too (docs/eventstore.md, "Reading").
LOG_ORDER_TRANSACTION_ID = "greatest(pg_current_xact_id(), {head})"
APPEND = f"""
WITH input AS (
    SELECT * FROM unnest(
        $1::text[], $2::int[], $3::int[], $4::uuid[], $5::text[], $6::int2[],
        $7::text[], $8::text[], $9::timestamptz[]
    ) WITH ORDINALITY AS u(stream_id, expected, stream_version, event_id, event_type, schema_version,
                           data, metadata, occurred_at, ord)
)
INSERT INTO events (transaction_id, stream_id, stream_version, event_id, event_type, schema_version, data,
                    metadata, occurred_at)
SELECT {LOG_ORDER_TRANSACTION_ID.format(head="head.transaction_id")}, i.stream_id, i.stream_version,
       i.event_id, i.event_type, i.schema_version, i.data::jsonb, i.metadata::jsonb, i.occurred_at
FROM input i
-- LATERAL + LIMIT keeps this an index probe per row: as a plain EXISTS under OR, the planner
-- may choose a hashed subplan that scans the whole events table.
LEFT JOIN LATERAL (
    SELECT e.transaction_id FROM events e
    WHERE e.stream_id = i.stream_id AND e.stream_version = i.expected LIMIT 1
) head ON true
WHERE i.expected = 0 OR head.transaction_id IS NOT NULL
ORDER BY i.ord
RETURNING position, event_id
"""

STREAM_HEAD = "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1"

EVENTS_BY_ID = "SELECT event_id, stream_id, stream_version, position FROM events WHERE event_id = ANY($1::uuid[])"

_COLUMNS = """position, transaction_id::text AS transaction_id, stream_id, stream_version, event_id,
    event_type, schema_version, data::text AS data, metadata::text AS metadata, occurred_at"""

READ_STREAM = f"""
SELECT {_COLUMNS} FROM events
WHERE stream_id = $1 AND stream_version >= $2
ORDER BY stream_version
"""

# The global log in commit-safe order: only transactions older than the oldest still running
# (pg_snapshot_xmin) are read, so no transaction can commit "behind" a reader's checkpoint.
READ_ALL = f"""
SELECT {_COLUMNS} FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2::bigint)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
-- Qualified: the select list aliases transaction_id::text AS transaction_id, and an unqualified
-- ORDER BY would sort by that text ("1000000" < "999999"). events.* names the xid8 column itself.
ORDER BY events.transaction_id, events.position
LIMIT $3
"""

COUNT_ALL = "SELECT count(*) FROM events"

# The newest committed event in this snapshot: where "caught up" is, for a reader starting now.
HEAD = """
SELECT transaction_id::text AS transaction_id, position FROM events
ORDER BY events.transaction_id DESC, events.position DESC LIMIT 1
"""
