"""Append-only PostgreSQL event store, transactional outbox relay, idempotent consumers, projections."""
