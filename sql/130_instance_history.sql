-- instance_history(from_ts, to_ts, dup_window := INTERVAL 2 MINUTE): each instance's install
-- history in [from_ts, to_ts): attempts and failures; first/last attempt, first/last failure,
-- first/last success; the newest attempt's result (last_failed, last_exit_code, last_reason) and
-- identity; failure_streak = failed attempts after the last success (all when none);
-- exit_codes = sorted distinct exit codes of failed attempts; duplicate_runs = attempts that
-- started less than dup_window after the previous one (overlapping matchers); first_online =
-- first node snapshot at or after first_seen and at or before to_ts listing the instance (the
-- first capture at or after first_seen, or an interval's first capture if later, within it);
-- time_to_enroll = from first_seen to the earliest evidence that the agent joined: its first
-- successful attempt (the installer succeeds only once the agent joined) or first_online,
-- whichever is first (snapshots are only as precise as their cadence); is_online = in the
-- node snapshot at to_ts. Order: failures desc, attempts desc, cloud, instance_key.
-- grain: one row per (cloud, instance_key) with an attempt in the window.
-- inputs: classified_attempts, snapshot_log, node_history, node_history_ends, online_nodes.
CREATE OR REPLACE MACRO instance_history(from_ts, to_ts, dup_window := INTERVAL 2 MINUTE) AS TABLE
WITH read_attempts AS MATERIALIZED (
    SELECT * FROM classified_attempts(from_ts, to_ts)
),
count_attempts AS (
    SELECT cloud, instance_key,
           count(*) AS attempts,
           count(*) FILTER (WHERE is_failure) AS failures,
           min(time) AS first_seen,
           max(time) AS last_seen,
           min(time) FILTER (WHERE is_failure) AS first_failure,
           max(time) FILTER (WHERE is_failure) AS last_failure,
           min(time) FILTER (WHERE NOT is_failure) AS first_success,
           max(time) FILTER (WHERE NOT is_failure) AS last_success,
           coalesce(list_sort(list(DISTINCT exit_code) FILTER (WHERE is_failure)), [])
               AS exit_codes,
           count(*) FILTER (WHERE since_previous < dup_window) AS duplicate_runs
    FROM read_attempts
    GROUP BY cloud, instance_key
),
pick_latest AS (
    SELECT cloud, instance_key, account_id, region, instance_id, vm_id, vm_name,
           resource_group, is_failure AS last_failed, exit_code AS last_exit_code,
           reason AS last_reason
    FROM read_attempts
    QUALIFY row_number() OVER (
        PARTITION BY cloud, instance_key ORDER BY time DESC, attempt_id DESC
    ) = 1
),
count_streak AS (
    SELECT a.cloud, a.instance_key, count(*) AS failure_streak
    FROM read_attempts a
    JOIN count_attempts s USING (cloud, instance_key)
    WHERE a.is_failure AND (s.last_success IS NULL OR a.time > s.last_success)
    GROUP BY a.cloud, a.instance_key
),
list_captures AS (
    SELECT DISTINCT captured_at FROM snapshot_log WHERE kind = 'nodes'
),
find_first_capture AS (
    SELECT s.cloud, s.instance_key, c.captured_at AS first_capture
    FROM count_attempts s
    ASOF JOIN list_captures c ON c.captured_at >= s.first_seen
),
find_first_online AS (
    SELECT f.cloud, f.instance_key,
           min(greatest(n.first_seen, f.first_capture)) AS first_online
    FROM find_first_capture f
    JOIN node_history n USING (cloud, instance_key)
    LEFT JOIN node_history_ends e USING (interval_id)
    WHERE greatest(n.first_seen, f.first_capture) <= to_ts
      AND (e.last_seen IS NULL OR greatest(n.first_seen, f.first_capture) <= e.last_seen)
    GROUP BY f.cloud, f.instance_key
)
SELECT s.cloud, s.instance_key, p.account_id, p.region, p.instance_id, p.vm_id, p.vm_name,
       p.resource_group, s.attempts, s.failures, s.first_seen, s.last_seen, s.first_failure,
       s.last_failure, s.first_success, s.last_success, p.last_failed, p.last_exit_code, p.last_reason,
       coalesce(c.failure_streak, 0) AS failure_streak, s.exit_codes, s.duplicate_runs,
       f.first_online, least(s.first_success, f.first_online) - s.first_seen AS time_to_enroll,
       o.instance_key IS NOT NULL AS is_online
FROM count_attempts s
JOIN pick_latest p USING (cloud, instance_key)
LEFT JOIN count_streak c USING (cloud, instance_key)
LEFT JOIN find_first_online f USING (cloud, instance_key)
LEFT JOIN online_nodes(to_ts) o USING (cloud, instance_key)
ORDER BY s.failures DESC, s.attempts DESC, s.cloud, s.instance_key;
