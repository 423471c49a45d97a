"""Everything Kafka: the producer, per-partition batches and the partitioner, the relay (the store's
log to Kafka), topic declarations, dead letters (one header set), and the three consumption patterns:
`per_key` (per-key batches), `ordered` (an ordered pipeline) and `owned` (partition-owning consumers)."""
