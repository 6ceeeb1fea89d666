-- failure_trends_by(from_ts, to_ts, bucket, dimensions): failure_trends' rows (see
-- 140_failure_trends.sql) for a list of dimensions at once, with a `dimension` column first and
-- in no order, from one pass over the attempts (what the day rollups are built from).
-- grain: one row per (bucket_start, key) (per dimension). inputs: run_attempts (classified when
-- 'category' is asked for).
CREATE OR REPLACE MACRO failure_trends_by(from_ts, to_ts, bucket, dimensions) AS TABLE
WITH label_attempts AS (
    -- only the 'category' dimension needs the reason of each attempt
    -- the bucket is cut on integer nanoseconds (date_trunc would round through microseconds);
    -- its start, a whole hour or day, is exact as a TIMESTAMP
    SELECT CAST(make_timestamp_ns(epoch_ns(time) - (epoch_ns(time) % step + step) % step)
                AS TIMESTAMP) AS bucket_start,
           dimension, cloud, instance_key, is_failure,
           CASE dimension
               WHEN 'cloud' THEN cloud
               WHEN 'account' THEN account_id
               WHEN 'region' THEN region
               WHEN 'exit_code' THEN exit_label
               WHEN 'category' THEN reason
               ELSE error('failure_trends: dimension must be cloud, account, region, '
                          || 'exit_code or category, not ' || dimension)
           END AS key
    FROM run_attempts(from_ts, to_ts, classify := list_contains(dimensions, 'category'))
    CROSS JOIN unnest(dimensions) AS d(dimension)
    CROSS JOIN (SELECT CASE bucket WHEN 'hour' THEN 3600::BIGINT WHEN 'day' THEN 86400::BIGINT
                       ELSE error('failure_trends: bucket must be hour or day, not ' || bucket)
                       END * 1000000000 AS step) AS b
),
count_instances AS (
    -- per instance first: the distinct-instance counts below become plain counts
    SELECT bucket_start, dimension, key, cloud, instance_key,
           count(*) AS attempts, count(*) FILTER (WHERE is_failure) AS failures
    FROM label_attempts
    GROUP BY bucket_start, dimension, key, cloud, instance_key
),
count_buckets AS (
    SELECT bucket_start, dimension, CAST(sum(attempts) AS BIGINT) AS attempts,
           count(DISTINCT (cloud, instance_key)) AS instances
    FROM count_instances
    GROUP BY bucket_start, dimension
),
count_groups AS (
    SELECT bucket_start, dimension, key,
           CAST(sum(attempts) AS BIGINT) AS attempts,
           CAST(sum(failures) AS BIGINT) AS failures,
           count(*) FILTER (WHERE failures > 0) AS failing_instances,
           count(*) AS instances
    FROM count_instances
    WHERE key IS NOT NULL
    GROUP BY bucket_start, dimension, key
),
pick_denominators AS (
    SELECT g.bucket_start, g.dimension, g.key,
           CASE WHEN dimension = 'category' THEN b.attempts ELSE g.attempts END AS attempts,
           g.failures, g.failing_instances,
           CASE WHEN dimension = 'category' THEN b.instances ELSE g.instances END AS instances
    FROM count_groups g
    JOIN count_buckets b USING (bucket_start, dimension)
)
SELECT dimension, bucket_start, key, attempts, failures,
       round(failures / attempts, 4) AS failure_rate,
       failing_instances, instances
FROM pick_denominators;
