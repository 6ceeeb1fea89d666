-- node_intervals: the node history as presence intervals: a node (every column the relations
-- read: name, hostname and the cloud identity) present in consecutive node captures, from
-- `first_seen` to `last_seen` (its first and last capture; NULL: present in the newest capture),
-- with `raw`, the resource as first captured. A node that leaves and comes back, or changes a
-- column, starts another interval. After retention `first_seen` may precede the oldest capture
-- kept.
-- grain: one row per interval (interval_id). inputs: node_history, node_history_ends.
CREATE OR REPLACE VIEW node_intervals AS
WITH first_period AS (
    SELECT * EXCLUDE (period)
    FROM node_history
    QUALIFY row_number() OVER (PARTITION BY interval_id ORDER BY period) = 1
)
SELECT f.interval_id, f.first_seen, e.last_seen, f.name, f.hostname, f.cloud, f.instance_key,
       f.instance_id, f.vm_id, f.account_id, f.region, f.resource_group, f.raw
FROM first_period f
LEFT JOIN node_history_ends e USING (interval_id);
