"""Routing's outbound I/O: how its decisions reach the event store (`batched_store`: segments split by
queue and appended as parallel transactions; `fenced_store`: every write checked against the leader's
epoch)."""
