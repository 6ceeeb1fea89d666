-- registered_nodes(as_of): cloud instances registered in the newest node snapshot at or before
-- `as_of`, keyed as tctl keys them: the EC2 instance id, or the Azure VM id exactly as the node's
-- label writes it (tctl's map keys: an upper-case label and a lower-case id are two instances).
-- Several nodes for one key: the one that expires last.
-- grain: one row per (cloud, instance_key, vm_id). inputs: node_snapshots, snapshot_at.
CREATE OR REPLACE MACRO registered_nodes(as_of) AS TABLE
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
        PARTITION BY cloud, instance_key, vm_id ORDER BY expires DESC NULLS LAST, name
    ) = 1
)
SELECT cloud, instance_key, instance_id, vm_id, account_id, region, resource_group,
       expires, hostname, name AS node_name
FROM pick_one;
