-- run_attempts(from_ts, to_ts, classify := false): install attempts whose result falls in
-- [from_ts, to_ts). An attempt is one SSM invocation (the ssm.run events sharing a command_id on
-- one instance: one event per document step) or one azure.run event. Its result is its newest
-- event (time, then event index, then uid, as latest_runs picks); `steps` counts its events;
-- `since_previous` is the time since the same instance's previous attempt in the window (NULL
-- for the first). With `classify`, `reason` and `remedy` of a failed attempt are those of the
-- failure_rules rule its result matched (failure_text_reasons), else 'Unknown' and a hint; NULL
-- for successes and when not classifying.
-- grain: one row per (cloud, instance_key, attempt_id).
-- inputs: runs_in_window, failure_text_reasons, failure_rules.
CREATE OR REPLACE MACRO run_attempts(from_ts, to_ts, classify := false) AS TABLE
WITH identify_attempts AS (
    -- each event's rule comes from its distinct failure text (classified once per text) as a
    -- small integer, cheap to carry to the attempt; a constant false classify drops the join
    SELECT e.cloud, e.instance_key, e.uid, e.time, e.ei, e.is_failure, e.code, e.exit_code,
           e.status, coalesce(e.api_error, '') AS api_error, coalesce(e.stdout, '') AS stdout,
           coalesce(e.stderr, '') AS stderr, e.account_id, e.region, e.instance_id, e.vm_id,
           e.vm_name, e.resource_group,
           CASE WHEN e.cloud = 'aws' AND coalesce(e.command_id, '') <> '' THEN e.command_id
                ELSE e.uid END AS attempt_id,
           m.rule_id,
           create_sort_key(e.time, 'DESC NULLS LAST', e.ei, 'DESC NULLS LAST',
                           e.uid, 'DESC NULLS LAST') AS newest_first
    FROM runs_in_window(from_ts, to_ts) e
    LEFT JOIN failure_text_reasons(from_ts, to_ts) m
      ON classify AND e.is_failure AND m.exit_code = e.exit_code
     AND m.api_error = coalesce(e.api_error, '') AND m.stdout = coalesce(e.stdout, '')
     AND m.stderr = coalesce(e.stderr, '')
),
pick_result AS (
    -- one aggregate per column (unused ones are dropped), all taken from the newest event;
    -- arg_min_null keeps that event's NULLs; its time is the attempt's latest
    SELECT cloud, instance_key, attempt_id, count(*) AS steps, max(time) AS time,
           arg_min_null(COLUMNS(* EXCLUDE (cloud, instance_key, attempt_id, time, newest_first)),
                        newest_first)
    FROM identify_attempts
    GROUP BY cloud, instance_key, attempt_id
),
measure_gaps AS (
    SELECT *,
           time - lag(time) OVER (
               PARTITION BY cloud, instance_key ORDER BY time, attempt_id
           ) AS since_previous
    FROM pick_result
),
name_reasons AS (
    SELECT g.*,
           CASE WHEN classify AND g.is_failure THEN coalesce(r.reason, 'Unknown') END AS reason,
           CASE WHEN classify AND g.is_failure THEN coalesce(r.remedy,
               'No rule matched: read the attempt''s output (discovery-history history INSTANCE) '
               || 'and add a rule to failure_reasons.csv.') END AS remedy
    FROM measure_gaps g
    LEFT JOIN failure_rules() r ON classify AND r.rule_id = g.rule_id
)
SELECT cloud, instance_key, attempt_id, time, steps, is_failure, code, exit_code,
       coalesce(status, '') AS status, api_error, stdout, stderr,
       coalesce(account_id, '') AS account_id, coalesce(region, '') AS region,
       coalesce(instance_id, '') AS instance_id, coalesce(vm_id, '') AS vm_id,
       coalesce(vm_name, '') AS vm_name, coalesce(resource_group, '') AS resource_group,
       uid, since_previous, reason, remedy
FROM name_reasons;
