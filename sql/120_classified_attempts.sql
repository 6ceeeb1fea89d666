-- classified_attempts(from_ts, to_ts): run_attempts with `reason` and `remedy` for failed
-- attempts: the failure_reasons rule of lowest (priority, reason) that matches, else 'Unknown';
-- both NULL for successful attempts. Failure is the event code's, as everywhere.
-- grain: one row per (cloud, instance_key, attempt_id). inputs: run_attempts, failure_reasons.
CREATE OR REPLACE MACRO classified_attempts(from_ts, to_ts) AS TABLE
WITH read_attempts AS MATERIALIZED (
    SELECT * FROM run_attempts(from_ts, to_ts)
),
match_rules AS (
    SELECT a.cloud, a.instance_key, a.attempt_id, r.reason, r.remedy
    FROM read_attempts a
    JOIN failure_reasons r
      ON a.is_failure
     AND ((r.match_kind = 'exit_code' AND a.api_error = ''
           AND a.exit_code = TRY_CAST(r.pattern AS BIGINT))
          OR (r.match_kind = 'api_error_like' AND a.api_error ILIKE r.pattern)
          OR (r.match_kind = 'output_like' AND (a.stdout || chr(10) || a.stderr) ILIKE r.pattern))
    QUALIFY row_number() OVER (
        PARTITION BY a.cloud, a.instance_key, a.attempt_id ORDER BY r.priority, r.reason
    ) = 1
)
SELECT a.*,
       CASE WHEN a.is_failure THEN coalesce(m.reason, 'Unknown') END AS reason,
       CASE WHEN a.is_failure THEN coalesce(m.remedy,
           'No rule matched: read the attempt''s output (discovery-history history INSTANCE) '
           || 'and add a rule to failure_reasons.csv.') END AS remedy
FROM read_attempts a
LEFT JOIN match_rules m USING (cloud, instance_key, attempt_id);
