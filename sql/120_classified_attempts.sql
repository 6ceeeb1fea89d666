-- classified_attempts(from_ts, to_ts): run_attempts with `reason` and `remedy` for failed
-- attempts: the failure_reasons rule of lowest (priority, reason) that matches, else 'Unknown';
-- both NULL for successful attempts. Failure is the event code's, as everywhere.
-- grain: one row per (cloud, instance_key, attempt_id). inputs: run_attempts, failure_reasons.
CREATE OR REPLACE MACRO classified_attempts(from_ts, to_ts) AS TABLE
WITH read_attempts AS MATERIALIZED (
    SELECT * FROM run_attempts(from_ts, to_ts)
),
distinct_failures AS (
    -- retries repeat the same few outputs: match the rules once per distinct failure
    SELECT DISTINCT exit_code, api_error, stdout, stderr
    FROM read_attempts
    WHERE is_failure
),
match_rules AS (
    SELECT f.exit_code, f.api_error, f.stdout, f.stderr, r.reason, r.remedy
    FROM distinct_failures f
    JOIN failure_reasons r
      ON (r.match_kind = 'exit_code' AND f.api_error = ''
          AND f.exit_code = TRY_CAST(r.pattern AS BIGINT))
      OR (r.match_kind = 'api_error_like' AND f.api_error ILIKE r.pattern)
      OR (r.match_kind = 'output_like' AND (f.stdout || chr(10) || f.stderr) ILIKE r.pattern)
    QUALIFY row_number() OVER (
        PARTITION BY f.exit_code, f.api_error, f.stdout, f.stderr ORDER BY r.priority, r.reason
    ) = 1
)
SELECT a.*,
       CASE WHEN a.is_failure THEN coalesce(m.reason, 'Unknown') END AS reason,
       CASE WHEN a.is_failure THEN coalesce(m.remedy,
           'No rule matched: read the attempt''s output (discovery-history history INSTANCE) '
           || 'and add a rule to failure_reasons.csv.') END AS remedy
FROM read_attempts a
LEFT JOIN match_rules m
  ON a.is_failure AND m.exit_code = a.exit_code AND m.api_error = a.api_error
 AND m.stdout = a.stdout AND m.stderr = a.stderr;
