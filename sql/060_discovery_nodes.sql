-- discovery_nodes(from_ts, to_ts, clouds, failures_only): the `tctl discovery nodes` report for
-- the window [from_ts, to_ts): newest run per instance merged with the nodes online at to_ts
-- (the event side wins every field it has), decorated by user tasks at to_ts, in tctl's order:
-- AWS block then Azure, account, region (byte order), last time descending, then key.
-- Instances are keyed exactly as tctl keys them (Go map keys): the EC2 instance id, or the Azure
-- VM id as written, so an upper-case node label and a lower-case event id are two rows, as in
-- tctl; `instance_key` here is that exact key.
-- grain: one row per (cloud, instance_key). inputs: latest_runs, registered_nodes, user_tasks_at.
CREATE OR REPLACE MACRO discovery_nodes(from_ts, to_ts, clouds, failures_only) AS TABLE
WITH events AS (
    SELECT *, CASE cloud WHEN 'azure' THEN vm_id ELSE instance_key END AS exact_key
    FROM latest_runs(from_ts, to_ts) WHERE list_contains(clouds, cloud)
),
online AS (
    SELECT *, CASE cloud WHEN 'azure' THEN vm_id ELSE instance_key END AS exact_key
    FROM registered_nodes(to_ts) WHERE list_contains(clouds, cloud)
),
merge_sides AS (
    SELECT
        coalesce(e.cloud, n.cloud) AS cloud,
        coalesce(e.exact_key, n.exact_key) AS instance_key,
        coalesce(nullif(e.region, ''), n.region, '') AS region,
        n.exact_key IS NOT NULL AS is_online,
        n.expires AS expiry,
        e.uid IS NOT NULL AS has_run,
        e.time AS run_time,
        e.exit_code, e.stdout, e.stderr, e.api_error, e.is_failure,
        CASE WHEN e.uid IS NOT NULL THEN e.instance_id ELSE n.instance_id END AS instance_id,
        CASE WHEN e.uid IS NOT NULL THEN e.account_id ELSE n.account_id END AS account_id,
        CASE WHEN e.uid IS NOT NULL THEN e.vm_id ELSE n.vm_id END AS vm_id,
        CASE WHEN e.uid IS NOT NULL THEN e.vm_name ELSE '' END AS vm_name,
        CASE WHEN e.uid IS NOT NULL THEN e.resource_group ELSE n.resource_group END AS resource_group,
        CASE WHEN e.uid IS NOT NULL THEN e.resource_id ELSE '' END AS resource_id
    FROM events e
    FULL OUTER JOIN online n USING (cloud, exact_key)
),
decorate AS (
    SELECT m.*, coalesce(t.user_task_id, '') AS user_task_id,
           coalesce(t.user_task_issue, '') AS user_task_issue
    FROM merge_sides m
    LEFT JOIN user_tasks_at(to_ts) t USING (cloud, instance_key)
)
SELECT *
FROM decorate
WHERE NOT failures_only OR (has_run AND is_failure) OR user_task_id <> ''
ORDER BY CASE cloud WHEN 'aws' THEN 0 ELSE 1 END, account_id, region,
         coalesce(run_time, expiry) DESC NULLS LAST, instance_key;
