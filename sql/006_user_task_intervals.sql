-- user_task_intervals: the user-task history as presence intervals: a (task, instance) row with
-- the same task type, issue type and state in consecutive user-task captures, from `first_seen` to
-- `last_seen` (NULL: present in the newest capture), with `raw`, the task as first captured.
-- grain: one row per interval (interval_id). inputs: user_task_history, user_task_history_ends.
CREATE OR REPLACE VIEW user_task_intervals AS
WITH first_period AS (
    SELECT * EXCLUDE (period)
    FROM user_task_history
    QUALIFY row_number() OVER (PARTITION BY interval_id ORDER BY period) = 1
)
SELECT f.interval_id, f.first_seen, e.last_seen, f.name, f.task_type, f.issue_type, f.state,
       f.cloud, f.instance_key, f.raw
FROM first_period f
LEFT JOIN user_task_history_ends e USING (interval_id);
