-- The planner takes the desk and a filtered column as independent; they are not (one desk has no feature
-- requests at all). Without these it walked that desk's whole opened_at index for an empty page instead
-- of the filter's own index (`make bench-queries`, docs/benchmarks.md "Query API").
CREATE STATISTICS ticket_list_desk_category (mcv) ON desk_id, category FROM ticket_list;
CREATE STATISTICS ticket_list_desk_organisation (mcv) ON desk_id, organisation_id FROM ticket_list;
CREATE STATISTICS ticket_list_desk_status (mcv) ON desk_id, status FROM ticket_list;
CREATE STATISTICS ticket_list_desk_queue (mcv) ON desk_id, queue_id FROM ticket_list;
CREATE STATISTICS ticket_list_desk_assignee (mcv) ON desk_id, assignee FROM ticket_list;
ANALYZE ticket_list;
