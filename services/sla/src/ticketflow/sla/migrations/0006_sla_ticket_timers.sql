-- The timers armed for each checkpointed ticket state (adapters/checkpoints.py, TIMER_ROW): a restore
-- under the same desk configuration arms them as stored instead of computing every ticket's next
-- firings again. NULL: not stored (derived at the restore, as before).
ALTER TABLE sla_ticket_states ADD COLUMN IF NOT EXISTS timers bytea;
