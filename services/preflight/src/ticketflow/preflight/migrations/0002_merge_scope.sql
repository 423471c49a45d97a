-- Who may absorb an open ticket as a duplicate (issue 14): the requester ("<platform>:<tenant>:<user>")
-- or, where a tenant is one customer organisation, the organisation ("<platform>:<tenant>").
-- Rows indexed before this column are '' and never match: they can only be suggested to an agent.
ALTER TABLE preflight_open_tickets ADD COLUMN merge_scope text NOT NULL DEFAULT '';
