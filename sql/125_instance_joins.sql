-- instance_joins(from_ts, to_ts): successful instance.join events (code TJ002I) in
-- [from_ts, to_ts) matched to the cloud instance that joined (evidence that it enrolled):
-- * method 'ec2': the instance id in the attributes, else Teleport's EC2 host id
--   `<account>-<instance id>`;
-- * method 'iam': the ARN in the attributes, whose session name is the instance id;
-- * a VM id in the attributes (`vm_id` / `vmId`), lower-cased like the store's VM keys;
-- * otherwise (Azure joins carry only subscription and resource group): the node whose name is
--   the join's host id in a node snapshot of the window, through that node's labels.
-- Joins matching no instance are left out.
-- grain: one row per matched join event.
-- inputs: joins (joins_on_days), snapshot_log, node_history, node_history_ends.
CREATE OR REPLACE MACRO instance_joins(from_ts, to_ts) AS TABLE
WITH read_joins AS (
    SELECT time, ei, uid, host_id, node_name, method, attributes
    FROM joins_on_days(CAST(from_ts AS DATE), CAST(to_ts AS DATE))
    WHERE time >= from_ts AND time < to_ts AND NOT is_failure
),
read_attributes AS (
    SELECT *,
           CASE WHEN method = 'ec2' THEN coalesce(
                    nullif(json_extract_string(attributes, '$.instance_id'), ''),
                    nullif(regexp_extract(host_id, '^[0-9]{12}-(i-[0-9a-f]+)$', 1), ''))
                WHEN method = 'iam' THEN nullif(regexp_extract(
                    json_extract_string(attributes, '$.arn'), '/(i-[0-9a-f]+)$', 1), '')
           END AS ec2_id,
           lower(nullif(coalesce(json_extract_string(attributes, '$.vm_id'),
                                 json_extract_string(attributes, '$.vmId')), '')) AS vm_key
    FROM read_joins
),
list_captures AS (
    SELECT DISTINCT captured_at FROM snapshot_log
    WHERE kind = 'nodes' AND captured_at >= from_ts AND captured_at <= to_ts
),
find_nodes AS (
    -- a node interval is in every capture from its first to its last
    SELECT DISTINCT n.name, n.cloud, n.instance_key
    FROM node_history n
    LEFT JOIN node_history_ends e USING (interval_id)
    JOIN list_captures c
      ON c.captured_at >= n.first_seen AND (e.last_seen IS NULL OR c.captured_at <= e.last_seen)
    WHERE n.cloud IS NOT NULL AND n.instance_key <> ''
      AND n.name IN (SELECT host_id FROM read_attributes WHERE ec2_id IS NULL AND vm_key IS NULL)
)
SELECT CASE WHEN j.ec2_id IS NOT NULL THEN 'aws' WHEN j.vm_key IS NOT NULL THEN 'azure'
            ELSE n.cloud END AS cloud,
       coalesce(j.ec2_id, j.vm_key, n.instance_key) AS instance_key,
       j.time, j.ei, j.uid, j.method, j.host_id, j.node_name
FROM read_attributes j
LEFT JOIN find_nodes n ON j.ec2_id IS NULL AND j.vm_key IS NULL AND n.name = j.host_id
WHERE coalesce(j.ec2_id, j.vm_key, n.instance_key) IS NOT NULL;
