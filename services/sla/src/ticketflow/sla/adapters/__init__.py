"""Outbound: the event store (`store_writer`, behind the append queue `append_queue`), the checkpoint
tables (`checkpoints`), the calendar versions table (`calendar_versions`), and the desk configuration
as the domain's `Rules` (`desk_rules`)."""
