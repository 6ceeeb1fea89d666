-- instance_history(from_ts, to_ts, dup_window_ns := 2 minutes): each instance's install history
-- in [from_ts, to_ts), its attempts (run_attempts) taken in one order: time, event index, uid
-- (the tie rule; `seq` numbers them). attempts and failures; retries = attempts after the first
-- failed one; first/last attempt, first/last failure, first/last success; the newest attempt's
-- result (last_failed, last_exit_code as its exit label, last_reason) and identity;
-- failure_streak = failed attempts after the last success (all when none); first_failed = the
-- first attempt failed; exit_codes = the exit labels of failed attempts ('API error' for a
-- failed Run Command API call), by code, 'API error' last; duplicate_runs = attempts that
-- started less than dup_window_ns nanoseconds after the start of the previous one (two runs
-- this close are one too many, whatever started them); first_joined = first successful
-- instance.join of the instance (instance_joins) at or after first_seen; first_online = first
-- node snapshot at or after first_seen and at or before to_ts listing the instance (the first
-- capture at or after first_seen, or a node interval's first capture if later, within it);
-- time_to_enroll = nanoseconds from first_seen to the earliest evidence that the agent joined:
-- its first successful attempt, first_joined or first_online (snapshots are only as precise as
-- their cadence); is_online = in the node snapshot at to_ts (NULL: no node snapshot at or before
-- to_ts). Order: failures desc, attempts desc, cloud, instance_key.
-- grain: one row per (cloud, instance_key) with an attempt in the window.
-- inputs: classified_attempts, exit_labels, instance_joins, snapshot_log, node_history,
-- node_history_ends, online_nodes, snapshot_at.
CREATE OR REPLACE MACRO instance_history(from_ts, to_ts, dup_window_ns := 120000000000) AS TABLE
WITH read_attempts AS MATERIALIZED (
    SELECT *,
           row_number() OVER (PARTITION BY cloud, instance_key ORDER BY time, ei, uid) AS seq
    FROM classified_attempts(from_ts, to_ts)
),
count_attempts AS (
    -- the newest attempt's fields are those of the highest seq (arg_max_null keeps its NULLs)
    SELECT cloud, instance_key,
           count(*) AS attempts,
           count(*) FILTER (WHERE is_failure) AS failures,
           min(time) AS first_seen,
           max(time) AS last_seen,
           min(time) FILTER (WHERE is_failure) AS first_failure,
           max(time) FILTER (WHERE is_failure) AS last_failure,
           min(time) FILTER (WHERE NOT is_failure) AS first_success,
           max(time) FILTER (WHERE NOT is_failure) AS last_success,
           min(seq) FILTER (WHERE is_failure) AS first_failure_seq,
           coalesce(max(seq) FILTER (WHERE NOT is_failure), 0) AS last_success_seq,
           arg_min_null(is_failure, seq) AS first_failed,
           exit_labels(list(exit_label) FILTER (WHERE is_failure)) AS exit_codes,
           count(*) FILTER (WHERE since_previous < dup_window_ns) AS duplicate_runs,
           arg_max_null(account_id, seq) AS account_id,
           arg_max_null(region, seq) AS region,
           arg_max_null(instance_id, seq) AS instance_id,
           arg_max_null(vm_id, seq) AS vm_id,
           arg_max_null(vm_name, seq) AS vm_name,
           arg_max_null(resource_group, seq) AS resource_group,
           arg_max_null(is_failure, seq) AS last_failed,
           arg_max_null(exit_label, seq) AS last_exit_code,
           arg_max_null(reason, seq) AS last_reason
    FROM read_attempts
    GROUP BY cloud, instance_key
),
find_first_joined AS (
    SELECT j.cloud, j.instance_key, min(j.time) AS first_joined
    FROM instance_joins(from_ts, to_ts) j
    JOIN count_attempts s USING (cloud, instance_key)
    WHERE j.time >= s.first_seen
    GROUP BY j.cloud, j.instance_key
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
    -- an interval listing the instance is in every capture from its first to its last
    SELECT f.cloud, f.instance_key,
           min(greatest(n.first_seen, f.first_capture)) AS first_online
    FROM find_first_capture f
    JOIN node_history n USING (cloud, instance_key)
    LEFT JOIN node_history_ends e USING (interval_id)
    WHERE greatest(n.first_seen, f.first_capture) <= to_ts
      AND (e.last_seen IS NULL OR greatest(n.first_seen, f.first_capture) <= e.last_seen)
    GROUP BY f.cloud, f.instance_key
)
SELECT s.cloud, s.instance_key, s.account_id, s.region, s.instance_id, s.vm_id, s.vm_name,
       s.resource_group, s.attempts, s.failures,
       CASE WHEN s.first_failure_seq IS NULL THEN 0 ELSE s.attempts - s.first_failure_seq END
           AS retries,
       s.first_seen, s.last_seen, s.first_failure, s.last_failure, s.first_success,
       s.last_success, s.last_failed, s.last_exit_code, s.last_reason,
       s.attempts - s.last_success_seq AS failure_streak, s.first_failed, s.exit_codes,
       s.duplicate_runs, j.first_joined, f.first_online,
       epoch_ns(least(s.first_success, j.first_joined, f.first_online)) - epoch_ns(s.first_seen)
           AS time_to_enroll,
       CASE WHEN snapshot_at('nodes', to_ts) IS NULL THEN NULL
            ELSE o.instance_key IS NOT NULL END AS is_online
FROM count_attempts s
LEFT JOIN find_first_joined j USING (cloud, instance_key)
LEFT JOIN find_first_online f USING (cloud, instance_key)
LEFT JOIN online_nodes(to_ts) o USING (cloud, instance_key)
ORDER BY s.failures DESC, s.attempts DESC, s.cloud, s.instance_key;
