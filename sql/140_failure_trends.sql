-- failure_trends(from_ts, to_ts, bucket, dimension): attempts and failures per time bucket
-- ('hour' | 'day', UTC, by the attempt's time) and per value `key` of one dimension:
-- 'cloud', 'account' (AWS account / Azure subscription), 'region', 'exit_code' ('API error' when
-- the Run Command API call failed, else the code) or 'category' (the failure reason; successes
-- have none). failure_rate = failures / attempts; failing_instances = distinct instances with a
-- failure in the group, instances = distinct instances attempted. For 'category', attempts and
-- instances are the bucket's totals, so failure_rate is the share of all attempts failing for
-- that reason. Only non-empty groups appear. Order: bucket, failures desc, key.
-- grain: one row per (bucket_start, key). inputs: failure_trends_by.
CREATE OR REPLACE MACRO failure_trends(from_ts, to_ts, bucket, dimension) AS TABLE
SELECT * EXCLUDE (dimension)
FROM failure_trends_by(from_ts, to_ts, bucket, [dimension])
ORDER BY bucket_start, failures DESC, key;
