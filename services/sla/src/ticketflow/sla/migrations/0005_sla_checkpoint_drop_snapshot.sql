-- The checkpoint row's `snapshot` column has been written empty since checkpoints became incremental
-- (0002: one sla_ticket_states row per ticket) and was never read: dropped. Stop SLA instances older
-- than this migration before applying it (they still write the column).
ALTER TABLE sla_partition_checkpoints DROP COLUMN IF EXISTS snapshot;
