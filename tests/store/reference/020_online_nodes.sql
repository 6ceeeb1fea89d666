-- online_nodes(as_of): cloud instances registered in the newest node snapshot at or before `as_of`
-- (tctl: a registered node is online). Several nodes for one instance: the one that expires last.
-- grain: one row per (cloud, instance_key). inputs: node_snapshots, snapshot_at.
CREATE OR REPLACE MACRO online_nodes(as_of) AS TABLE
WITH snapshot AS (
    SELECT *
    FROM node_snapshots
    WHERE captured_at = snapshot_at('nodes', as_of)
      AND cloud IS NOT NULL
      AND instance_key <> ''
),
pick_one AS (
    SELECT *
    FROM snapshot
    QUALIFY row_number() OVER (
        PARTITION BY cloud, instance_key ORDER BY expires DESC NULLS LAST, name
    ) = 1
)
SELECT cloud, instance_key, instance_id, vm_id, account_id, region, resource_group,
       expires, hostname, name AS node_name
FROM pick_one;
