-- user_task_snapshots: every user-task capture as rows, as schema 1-2 stored them, rebuilt from
-- the intervals: an interval's row at each capture from its first to its last.
-- grain: one row per (task, instance) per capture (captured_at).
-- inputs: user_task_intervals, snapshot_log.
CREATE OR REPLACE VIEW user_task_snapshots AS
WITH list_captures AS (
    SELECT DISTINCT captured_at FROM snapshot_log WHERE kind = 'user_tasks'
)
SELECT c.captured_at, t.name, t.task_type, t.issue_type, t.state, t.cloud, t.instance_key, t.raw,
       CAST(c.captured_at AS DATE) AS capture_date
FROM user_task_intervals t
JOIN list_captures c
  ON c.captured_at >= t.first_seen AND (t.last_seen IS NULL OR c.captured_at <= t.last_seen);
