-- failure_trends(from_ts, to_ts, bucket, dimension): attempts and failures per time bucket
-- ('hour' | 'day', UTC, cut on nanoseconds, by the attempt's time: its last step) and per value
-- `key` of one dimension: 'cloud', 'account' (AWS account / Azure subscription), 'region',
-- 'exit_code' (run_attempts' exit_label: 'API error' when the Run Command API call failed, else
-- the code) or 'category' (the failure reason; successes have none). An attempt is counted in
-- the bucket and window of its last step only, so adjacent windows add up to their union.
-- failure_rate = failures / attempts; failing_instances = distinct instances with a failure in
-- the group, instances = distinct instances attempted. For 'category', attempts and
-- instances are the bucket's totals, so failure_rate is the share of all attempts failing for
-- that reason. Only non-empty groups appear. Order: bucket, failures desc, key.
-- grain: one row per (bucket_start, key). inputs: failure_trends_by.
CREATE OR REPLACE MACRO failure_trends(from_ts, to_ts, bucket, dimension) AS TABLE
SELECT * EXCLUDE (dimension)
FROM failure_trends_by(from_ts, to_ts, bucket, [dimension])
ORDER BY bucket_start, failures DESC, key;
