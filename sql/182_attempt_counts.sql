-- attempt_counts(from_ts, to_ts): install attempts whose result falls in [from_ts, to_ts) and how
-- many of them failed, per cloud with an attempt. Order: cloud.
-- grain: one row per cloud with an attempt. inputs: run_attempts.
CREATE OR REPLACE MACRO attempt_counts(from_ts, to_ts) AS TABLE
SELECT cloud, count(*) AS attempts, count(*) FILTER (WHERE is_failure) AS failures
FROM run_attempts(from_ts, to_ts)
GROUP BY cloud
ORDER BY cloud;
