-- failing_now(from_ts, to_ts): instances whose newest install attempt in [from_ts, to_ts) failed
-- (newest by time, then event index, then uid: the tie rule), counted per cloud, account,
-- region and failure reason (the failure_reasons rule the attempt matched, else 'Unknown'): the
-- labels of the metric discovery_history_instances_failing, bounded by the fleet's accounts and
-- regions and by the rule table, never by raw output. Order: cloud, account_id, region, reason.
-- grain: one row per (cloud, account_id, region, reason). inputs: classified_attempts.
CREATE OR REPLACE MACRO failing_now(from_ts, to_ts) AS TABLE
WITH pick_newest AS (
    SELECT cloud, account_id, region, is_failure, reason
    FROM classified_attempts(from_ts, to_ts)
    QUALIFY row_number() OVER (
        PARTITION BY cloud, instance_key ORDER BY time DESC, ei DESC, uid DESC
    ) = 1
)
SELECT cloud, account_id, region, reason, count(*) AS instances
FROM pick_newest
WHERE is_failure
GROUP BY cloud, account_id, region, reason
ORDER BY cloud, account_id, region, reason;
