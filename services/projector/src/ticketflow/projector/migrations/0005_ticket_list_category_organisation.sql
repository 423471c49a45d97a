-- Filtering the list by category or by organisation walked a desk's whole opened_at index when few or no
-- tickets matched (a desk without feature requests: 265 ms for an empty page on 250,000 tickets, in
-- `make bench-queries`); with these, such a page is an index range in order, as for status, queue and assignee.
CREATE INDEX ticket_list_category ON ticket_list (desk_id, category, opened_at DESC, ticket_id DESC);
CREATE INDEX ticket_list_organisation ON ticket_list (desk_id, organisation_id, opened_at DESC, ticket_id DESC);
