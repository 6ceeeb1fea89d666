-- online_nodes(as_of): cloud instances registered in the newest node snapshot at or before `as_of`
-- (tctl: a registered node is online), one per instance_key: the Azure VM id folded to lower case,
-- so a VM whose label and events differ only in case is one VM here (history, analytics). The
-- `nodes` report keys ids exactly instead, as tctl does (registered_nodes).
-- Several nodes for one instance: the one that expires last. Only instances with several are
-- sorted: a hash of the key finds them (a collision only sends more rows through the sort).
-- grain: one row per (cloud, instance_key). inputs: registered_nodes.
CREATE OR REPLACE MACRO online_nodes(as_of) AS TABLE
WITH read_nodes AS MATERIALIZED (
    SELECT *, hash(cloud, instance_key) AS key_hash FROM registered_nodes(as_of)
),
find_shared AS (
    SELECT key_hash FROM read_nodes GROUP BY key_hash HAVING count(*) > 1
),
pick_one AS (
    SELECT * FROM read_nodes WHERE key_hash NOT IN (SELECT key_hash FROM find_shared)
    UNION ALL
    (SELECT * FROM read_nodes WHERE key_hash IN (SELECT key_hash FROM find_shared)
     QUALIFY row_number() OVER (
         PARTITION BY cloud, instance_key ORDER BY expires DESC NULLS LAST, node_name, vm_id
     ) = 1)
)
SELECT * EXCLUDE (key_hash)
FROM pick_one;
