-- history_summary(from_ts, to_ts, dup_window_ns := 2 minutes): headline figures of
-- [from_ts, to_ts) per cloud and for all clouds (cloud = 'all', last): attempts, failures,
-- failure_rate, instances attempted, failing_instances (at least one failure), failing_now
-- (newest attempt failed), online_now (attempted and online at to_ts), duplicate_runs (attempts
-- started less than dup_window_ns after the previous one's start), retries (attempts after an
-- instance's first failed one), retried_instances (with a retry), enrolled (time_to_enroll
-- known), enrolled_after_failure (enrolled, first attempt failed) and median_time_to_enroll over
-- those, in nanoseconds (the lower and upper middle averaged, rounded down; first-try enrolments
-- take 0 and would hide the retries). Definitions: instance_history. Order: aws, azure, all.
-- grain: one row per cloud with attempts, plus 'all' (always present). inputs: instance_history.
CREATE OR REPLACE MACRO history_summary(from_ts, to_ts, dup_window_ns := 120000000000) AS TABLE
WITH add_up AS (
    SELECT coalesce(cloud, 'all') AS cloud,
           coalesce(sum(attempts), 0)::BIGINT AS attempts,
           coalesce(sum(failures), 0)::BIGINT AS failures,
           count(*) AS instances,
           count(*) FILTER (WHERE failures > 0) AS failing_instances,
           count(*) FILTER (WHERE last_failed) AS failing_now,
           count(*) FILTER (WHERE is_online) AS online_now,
           coalesce(sum(duplicate_runs), 0)::BIGINT AS duplicate_runs,
           coalesce(sum(retries), 0)::BIGINT AS retries,
           count(*) FILTER (WHERE retries > 0) AS retried_instances,
           count(time_to_enroll) AS enrolled,
           count(*) FILTER (WHERE time_to_enroll IS NOT NULL AND first_failed)
               AS enrolled_after_failure,
           (quantile_disc(time_to_enroll, 0.5) FILTER (WHERE first_failed)
            - quantile_disc(-time_to_enroll, 0.5) FILTER (WHERE first_failed)) // 2
               AS median_time_to_enroll
    FROM instance_history(from_ts, to_ts, dup_window_ns := dup_window_ns)
    GROUP BY GROUPING SETS ((cloud), ())
)
SELECT cloud, attempts, failures,
       CASE WHEN attempts > 0 THEN round(failures / attempts, 4) ELSE 0 END AS failure_rate,
       instances, failing_instances, failing_now, online_now, duplicate_runs, retries,
       retried_instances, enrolled, enrolled_after_failure, median_time_to_enroll
FROM add_up
ORDER BY CASE cloud WHEN 'aws' THEN 0 WHEN 'azure' THEN 1 ELSE 2 END;
