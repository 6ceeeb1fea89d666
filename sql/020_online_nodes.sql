-- online_nodes(as_of): cloud instances registered in the newest node snapshot at or before `as_of`
-- (tctl: a registered node is online), one per instance_key: the Azure VM id folded to lower case,
-- so a VM whose label and events differ only in case is one VM here (history, analytics). The
-- `nodes` report keys ids exactly instead, as tctl does (registered_nodes).
-- Several nodes for one instance: the one that expires last.
-- grain: one row per (cloud, instance_key). inputs: registered_nodes.
CREATE OR REPLACE MACRO online_nodes(as_of) AS TABLE
SELECT *
FROM registered_nodes(as_of)
QUALIFY row_number() OVER (
    PARTITION BY cloud, instance_key ORDER BY expires DESC NULLS LAST, node_name, vm_id
) = 1;
