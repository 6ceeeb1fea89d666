-- user_tasks_at(as_of): the user task listing each instance in the newest user-task snapshot at
-- or before `as_of`, keyed by the id exactly as the task lists it (snapshots taken before this
-- rule hold Azure VM ids lower-cased). An instance listed by several tasks gets the last by name
-- (as tctl's map).
-- grain: one row per (cloud, instance_key). inputs: user_task_snapshots, snapshot_at.
CREATE OR REPLACE MACRO user_tasks_at(as_of) AS TABLE
WITH snapshot AS (
    SELECT *
    FROM user_task_snapshots
    WHERE captured_at = snapshot_at('user_tasks', as_of)
      AND cloud IS NOT NULL
      AND instance_key IS NOT NULL
),
pick_one AS (
    SELECT *
    FROM snapshot
    QUALIFY row_number() OVER (PARTITION BY cloud, instance_key ORDER BY name DESC) = 1
)
SELECT cloud, instance_key, name AS user_task_id, issue_type AS user_task_issue, state
FROM pick_one;
