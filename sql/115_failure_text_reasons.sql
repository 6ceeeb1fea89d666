-- failure_text_reasons(from_ts, to_ts): each distinct failure text of the failed run events in
-- [from_ts, to_ts) (exit_code, api_error, stdout, stderr; text NULL as '') with the first
-- failure_rules rule it matches: match_kind `exit_code` (pattern is the integer; never with an API
-- error), `api_error_like` / `output_like` (case-insensitive LIKE on the API error / on stdout +
-- newline + stderr). Retries repeat a few texts: each is matched once. Unmatched texts are absent.
-- grain: one row per distinct failure text that matches a rule. inputs: runs_in_window,
-- failure_rules.
CREATE OR REPLACE MACRO failure_text_reasons(from_ts, to_ts) AS TABLE
WITH distinct_failures AS (
    SELECT DISTINCT exit_code, coalesce(api_error, '') AS api_error,
           coalesce(stdout, '') AS stdout, coalesce(stderr, '') AS stderr
    FROM runs_in_window(from_ts, to_ts)
    WHERE is_failure
)
SELECT f.exit_code, f.api_error, f.stdout, f.stderr, r.rule_id, r.reason, r.remedy
FROM distinct_failures f
JOIN failure_rules() r
  ON (r.match_kind = 'exit_code' AND f.api_error = ''
      AND f.exit_code = TRY_CAST(r.pattern AS BIGINT))
  OR (r.match_kind = 'api_error_like' AND f.api_error ILIKE r.pattern)
  OR (r.match_kind = 'output_like' AND (f.stdout || chr(10) || f.stderr) ILIKE r.pattern)
QUALIFY row_number() OVER (
    PARTITION BY f.exit_code, f.api_error, f.stdout, f.stderr ORDER BY r.rule_id
) = 1;
