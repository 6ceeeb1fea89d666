-- registered_nodes(as_of): cloud instances registered in the newest node snapshot at or before
-- `as_of`, keyed as tctl keys them: the EC2 instance id, or the Azure VM id exactly as the node's
-- label writes it (tctl's map keys: an upper-case label and a lower-case id are two instances).
-- Several nodes for one key: the one that expires last (then by name). The snapshot's nodes are
-- its rows of node_expiry (read from the capture's day only), named by their interval's row in
-- node_history (read from the capture's month only). Only keys with several nodes are sorted: a
-- hash of the key finds them (a collision only sends more rows through the sort).
-- grain: one row per (cloud, instance_key, vm_id).
-- inputs: node_expiry, node_history, snapshot_at.
CREATE OR REPLACE MACRO registered_nodes(as_of) AS TABLE
WITH find_capture AS (
    SELECT snapshot_at('nodes', as_of) AS captured_at
),
read_expiry AS (
    SELECT e.interval_id, make_timestamp_ns(epoch_ns(c.captured_at) + e.expires_offset) AS expires
    FROM node_expiry e
    JOIN find_capture c
      ON e.capture_date = CAST(c.captured_at AS DATE) AND e.captured_at = c.captured_at
),
name_nodes AS MATERIALIZED (
    SELECT h.interval_id, h.name, h.hostname, h.cloud, h.instance_key, h.instance_id, h.vm_id,
           h.account_id, h.region, h.resource_group, x.expires,
           hash(h.cloud, h.instance_key, h.vm_id) AS key_hash
    FROM node_history h
    JOIN find_capture c ON h.period = CAST(date_trunc('month', c.captured_at) AS DATE)
    JOIN read_expiry x USING (interval_id)
    WHERE h.cloud IS NOT NULL
      AND h.instance_key <> ''
),
find_shared AS (
    SELECT key_hash FROM name_nodes GROUP BY key_hash HAVING count(*) > 1
),
pick_one AS (
    SELECT * FROM name_nodes WHERE key_hash NOT IN (SELECT key_hash FROM find_shared)
    UNION ALL
    (SELECT * FROM name_nodes WHERE key_hash IN (SELECT key_hash FROM find_shared)
     QUALIFY row_number() OVER (
         PARTITION BY cloud, instance_key, vm_id
         ORDER BY expires DESC NULLS LAST, name, interval_id
     ) = 1)
)
SELECT cloud, instance_key, instance_id, vm_id, account_id, region, resource_group,
       expires, hostname, name AS node_name
FROM pick_one;
