-- Issue 14: what an agent sees of duplicates. merged_into: the ticket an automatic (or manual) merge
-- folded this one into; suggested_duplicate_of: another requester's look-alike, for the agent only;
-- known_problem_of: the known problem an agent linked the ticket to. Rebuild fills them for old events.
ALTER TABLE ticket_summaries
    ADD COLUMN merged_into            uuid,
    ADD COLUMN suggested_duplicate_of uuid,
    ADD COLUMN known_problem_of       uuid;
