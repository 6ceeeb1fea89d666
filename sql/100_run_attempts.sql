-- run_attempts(from_ts, to_ts, classify := false): install attempts whose result falls in
-- [from_ts, to_ts). An attempt is one SSM invocation (the ssm.run events sharing a command_id on
-- one instance: one event per document step; events without a command, or with Teleport's
-- 'no-command', are attempts each) or one azure.run event.
-- * Its result is its last step: `time`, `ei` and `uid` are that step's (newest by time, then
--   event index, then uid: the one tie rule, as latest_runs). The attempt belongs to the window
--   holding that step, whatever the window, so windows add up.
-- * Its outcome is decided by all its steps, also those before from_ts: it failed when any step
--   failed (SSM fails an invocation when a step fails), and then code, exit code, status, output
--   and reason are those of its first failed step (the step Teleport itself reports), else of
--   its last step. `exit_label` is 'API error' when the Run Command API call failed, else the
--   exit code as text (one label everywhere). `started` is its first step; `steps` counts them.
-- * `since_previous`: nanoseconds from the start of the same instance's previous attempt in the
--   window (by start, then the tie order) to this one's start; NULL for the first.
-- Steps are read from a day either side of the window: an attempt's steps are assumed to lie
-- within 24 hours (SSM's execution timeout defaults to 1 h; pipeline/rollup.py relies on it).
-- With `classify`, `reason` and `remedy` of a failed attempt are those of the failure_rules rule
-- its deciding step matched (failure_text_reasons), else 'Unknown' and a hint; NULL for
-- successes and when not classifying.
-- grain: one row per (cloud, instance_key, attempt_id).
-- inputs: runs_in_window, failure_text_reasons, failure_rules, exit_label.
CREATE OR REPLACE MACRO run_attempts(from_ts, to_ts, classify := false) AS TABLE
WITH read_steps AS (
    SELECT *
    FROM runs_in_window(from_ts - INTERVAL 1 DAY, to_ts + INTERVAL 1 DAY)
),
identify_attempts AS (
    -- each event's rule comes from its distinct failure text (classified once per text) as a
    -- small integer, cheap to carry to the attempt; a constant false classify drops the join
    SELECT e.cloud, e.instance_key, e.uid, e.time, e.ei, e.is_failure, e.code, e.exit_code,
           e.status, coalesce(e.api_error, '') AS api_error, coalesce(e.stdout, '') AS stdout,
           coalesce(e.stderr, '') AS stderr, e.account_id, e.region, e.instance_id, e.vm_id,
           e.vm_name, e.resource_group,
           CASE WHEN e.cloud = 'aws' AND coalesce(e.command_id, '') NOT IN ('', 'no-command')
                THEN e.command_id ELSE e.uid END AS attempt_id,
           m.rule_id,
           create_sort_key(e.time, 'DESC NULLS LAST', e.ei, 'DESC NULLS LAST',
                           e.uid, 'DESC NULLS LAST') AS newest_first,
           -- the first failed step (time, event index, uid), else the newest step
           create_sort_key(e.is_failure, 'DESC NULLS LAST',
                           CASE WHEN e.is_failure THEN e.time END, 'ASC NULLS LAST',
                           CASE WHEN e.is_failure THEN e.ei END, 'ASC NULLS LAST',
                           CASE WHEN e.is_failure THEN e.uid END, 'ASC NULLS LAST',
                           e.time, 'DESC NULLS LAST', e.ei, 'DESC NULLS LAST',
                           e.uid, 'DESC NULLS LAST') AS deciding_first
    FROM read_steps e
    LEFT JOIN failure_text_reasons(from_ts - INTERVAL 1 DAY, to_ts + INTERVAL 1 DAY) m
      ON classify AND e.is_failure AND m.exit_code = e.exit_code
     AND m.api_error = coalesce(e.api_error, '') AND m.stdout = coalesce(e.stdout, '')
     AND m.stderr = coalesce(e.stderr, '')
),
fold_steps AS (
    -- one aggregate per column (unused ones are dropped); arg_min_null keeps a step's NULLs
    SELECT cloud, instance_key, attempt_id, count(*) AS steps, min(time) AS started,
           bool_or(is_failure) AS is_failure,
           arg_min_null(time, newest_first) AS time,
           arg_min_null(ei, newest_first) AS ei,
           arg_min_null(uid, newest_first) AS uid,
           arg_min_null(account_id, newest_first) AS account_id,
           arg_min_null(region, newest_first) AS region,
           arg_min_null(instance_id, newest_first) AS instance_id,
           arg_min_null(vm_id, newest_first) AS vm_id,
           arg_min_null(vm_name, newest_first) AS vm_name,
           arg_min_null(resource_group, newest_first) AS resource_group,
           arg_min_null(code, deciding_first) AS code,
           arg_min_null(exit_code, deciding_first) AS exit_code,
           arg_min_null(status, deciding_first) AS status,
           arg_min_null(api_error, deciding_first) AS api_error,
           arg_min_null(stdout, deciding_first) AS stdout,
           arg_min_null(stderr, deciding_first) AS stderr,
           arg_min_null(rule_id, deciding_first) AS rule_id
    FROM identify_attempts
    GROUP BY cloud, instance_key, attempt_id
),
keep_window AS (
    SELECT *
    FROM fold_steps
    WHERE time >= from_ts AND time < to_ts
),
measure_gaps AS (
    SELECT *,
           epoch_ns(started) - lag(epoch_ns(started)) OVER (
               PARTITION BY cloud, instance_key ORDER BY started, time, ei, uid
           ) AS since_previous
    FROM keep_window
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
SELECT cloud, instance_key, attempt_id, time, started, steps, is_failure, code, exit_code,
       exit_label(exit_code, api_error) AS exit_label,
       coalesce(status, '') AS status, api_error, stdout, stderr,
       coalesce(account_id, '') AS account_id, coalesce(region, '') AS region,
       coalesce(instance_id, '') AS instance_id, coalesce(vm_id, '') AS vm_id,
       coalesce(vm_name, '') AS vm_name, coalesce(resource_group, '') AS resource_group,
       ei, uid, since_previous, reason, remedy
FROM name_reasons;
