-- classified_attempts(from_ts, to_ts): run_attempts with `reason` and `remedy` for failed
-- attempts: the failure_reasons rule of lowest (priority, reason) that their result matches, else
-- 'Unknown'; both NULL for successful attempts. Failure is the event code's, as everywhere.
-- grain: one row per (cloud, instance_key, attempt_id). inputs: run_attempts.
CREATE OR REPLACE MACRO classified_attempts(from_ts, to_ts) AS TABLE
SELECT *
FROM run_attempts(from_ts, to_ts, classify := true);
