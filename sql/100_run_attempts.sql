-- run_attempts(from_ts, to_ts): install attempts whose result falls in [from_ts, to_ts).
-- An attempt is one SSM invocation (the ssm.run events sharing a command_id on one instance: one
-- event per document step) or one azure.run event. Its result is its newest event (time, then
-- event index, then uid, as latest_runs picks); `steps` counts its events; `since_previous` is
-- the time since the same instance's previous attempt in the window (NULL for the first).
-- grain: one row per (cloud, instance_key, attempt_id). inputs: runs_in_window.
CREATE OR REPLACE MACRO run_attempts(from_ts, to_ts) AS TABLE
WITH identify_attempts AS (
    SELECT *,
           CASE WHEN cloud = 'aws' AND coalesce(command_id, '') <> '' THEN command_id
                ELSE uid END AS attempt_id
    FROM runs_in_window(from_ts, to_ts)
),
pick_result AS (
    SELECT *,
           count(*) OVER (PARTITION BY cloud, instance_key, attempt_id) AS steps
    FROM identify_attempts
    QUALIFY row_number() OVER (
        PARTITION BY cloud, instance_key, attempt_id ORDER BY time DESC, ei DESC, uid DESC
    ) = 1
),
measure_gaps AS (
    SELECT *,
           time - lag(time) OVER (
               PARTITION BY cloud, instance_key ORDER BY time, attempt_id
           ) AS since_previous
    FROM pick_result
)
SELECT cloud, instance_key, attempt_id, time, steps, is_failure, code, exit_code,
       coalesce(status, '') AS status, coalesce(api_error, '') AS api_error,
       coalesce(stdout, '') AS stdout, coalesce(stderr, '') AS stderr,
       coalesce(account_id, '') AS account_id, coalesce(region, '') AS region,
       coalesce(instance_id, '') AS instance_id, coalesce(vm_id, '') AS vm_id,
       coalesce(vm_name, '') AS vm_name, coalesce(resource_group, '') AS resource_group,
       uid, since_previous
FROM measure_gaps;
