-- top_failure_reasons(from_ts, to_ts): failed attempts in [from_ts, to_ts) per reason, with its
-- remedy, the failing instances, the share of all failed attempts (0..1), the exit labels seen
-- (exit_labels: by code, 'API error' last) and the first and last failure. Order: failures
-- desc, reason.
-- grain: one row per reason. inputs: classified_attempts, exit_labels.
CREATE OR REPLACE MACRO top_failure_reasons(from_ts, to_ts) AS TABLE
WITH read_failures AS (
    SELECT * FROM classified_attempts(from_ts, to_ts) WHERE is_failure
),
count_reasons AS (
    SELECT reason, any_value(remedy ORDER BY remedy) AS remedy,
           count(*) AS failures,
           count(DISTINCT cloud || '/' || instance_key) AS failing_instances,
           exit_labels(list(exit_label)) AS exit_codes,
           min(time) AS first_failure,
           max(time) AS last_failure
    FROM read_failures
    GROUP BY reason
)
SELECT reason, remedy, failures, failing_instances,
       round(failures / sum(failures) OVER (), 4) AS share,
       exit_codes, first_failure, last_failure
FROM count_reasons
ORDER BY failures DESC, reason;
