-- user_tasks_at(as_of): the user task listing each instance in the newest user-task snapshot at
-- or before `as_of`, keyed by the id exactly as the task lists it (snapshots taken before this
-- rule hold Azure VM ids lower-cased). An instance listed by several tasks gets the last by name
-- (as tctl's map). The snapshot's rows are the intervals of its month (user_task_history) that
-- began by then and had not ended before it (user_task_history_ends).
-- grain: one row per (cloud, instance_key).
-- inputs: user_task_history, user_task_history_ends, snapshot_at.
CREATE OR REPLACE MACRO user_tasks_at(as_of) AS TABLE
WITH find_capture AS (
    SELECT snapshot_at('user_tasks', as_of) AS captured_at
),
list_ended AS (
    SELECT e.interval_id
    FROM user_task_history_ends e
    JOIN find_capture c ON e.period = CAST(date_trunc('month', c.captured_at) AS DATE)
    WHERE e.last_seen < c.captured_at
),
snapshot AS (
    SELECT h.*
    FROM user_task_history h
    JOIN find_capture c ON h.period = CAST(date_trunc('month', c.captured_at) AS DATE)
    WHERE h.first_seen <= c.captured_at
      AND h.interval_id NOT IN (SELECT interval_id FROM list_ended)
      AND h.cloud IS NOT NULL
      AND h.instance_key IS NOT NULL
),
pick_one AS (
    SELECT *
    FROM snapshot
    QUALIFY row_number() OVER (PARTITION BY cloud, instance_key ORDER BY name DESC, interval_id) = 1
)
SELECT cloud, instance_key, name AS user_task_id, issue_type AS user_task_issue, state
FROM pick_one;
