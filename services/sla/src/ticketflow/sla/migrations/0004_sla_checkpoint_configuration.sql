-- The desk configuration (`Rules.fingerprint`) a partition's checkpointed states are consistent
-- with: a new owner whose configuration has the same fingerprint arms the timers as they are; any
-- other (or '' from a checkpoint written before this column) rechecks every ticket first.
ALTER TABLE sla_partition_checkpoints ADD COLUMN IF NOT EXISTS configuration text NOT NULL DEFAULT '';
