-- period_comparison(a_from, a_to, b_from, b_to): how instances that failed in period A
-- [a_from, a_to) or B [b_from, b_to) changed, judged by each period's newest attempt:
-- 'newly failing' (failed in B, not in A), 'still failing' (failed in both), 'recovered'
-- (failed in A; in B its newest attempt succeeded, or it had none and is online at b_to),
-- 'not retried' (failed in A; no attempt in B and not online at b_to). Identity (account,
-- region, instance_id, vm_id, resource_group) from B's newest attempt, else A's. Order: that
-- change order, then failures in B desc, failures in A desc, cloud, instance_key.
-- grain: one row per (cloud, instance_key) whose newest attempt failed in A or B.
-- inputs: instance_history, online_nodes.
CREATE OR REPLACE MACRO period_comparison(a_from, a_to, b_from, b_to) AS TABLE
WITH join_periods AS (
    SELECT coalesce(b.cloud, a.cloud) AS cloud,
           coalesce(b.instance_key, a.instance_key) AS instance_key,
           coalesce(b.account_id, a.account_id) AS account_id,
           coalesce(b.region, a.region) AS region,
           coalesce(b.instance_id, a.instance_id) AS instance_id,
           coalesce(b.vm_id, a.vm_id) AS vm_id,
           coalesce(b.resource_group, a.resource_group) AS resource_group,
           coalesce(a.last_failed, false) AS failed_a,
           coalesce(b.last_failed, false) AS failed_b,
           b.instance_key IS NOT NULL AS seen_b,
           coalesce(a.failures, 0) AS failures_a,
           coalesce(b.failures, 0) AS failures_b,
           a.last_reason AS reason_a,
           b.last_reason AS reason_b,
           coalesce(b.last_seen, a.last_seen) AS last_seen
    FROM instance_history(a_from, a_to) a
    FULL OUTER JOIN instance_history(b_from, b_to) b USING (cloud, instance_key)
),
name_changes AS (
    SELECT j.*,
           CASE WHEN failed_b AND failed_a THEN 'still failing'
                WHEN failed_b THEN 'newly failing'
                WHEN seen_b OR o.instance_key IS NOT NULL THEN 'recovered'
                ELSE 'not retried' END AS change
    FROM join_periods j
    LEFT JOIN online_nodes(b_to) o USING (cloud, instance_key)
    WHERE failed_a OR failed_b
)
SELECT change, cloud, instance_key, account_id, region, instance_id, vm_id, resource_group,
       failures_a, failures_b, reason_a, reason_b, last_seen
FROM name_changes
ORDER BY CASE change WHEN 'newly failing' THEN 0 WHEN 'still failing' THEN 1
                     WHEN 'recovered' THEN 2 ELSE 3 END,
         failures_b DESC, failures_a DESC, cloud, instance_key;
