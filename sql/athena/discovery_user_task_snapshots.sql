-- discovery_user_task_snapshots: the store's `user_task_snapshots/` dataset, read in place.
-- grain: one row per (task, affected instance) per snapshot. inputs: s3://YOUR-BUCKET/lake/
--   user_task_snapshots/capture_date=<YYYY-MM-DD>/part-<ingest-id>-<n>.parquet (hive folders).
-- Replace s3://YOUR-BUCKET/lake with the store root (LOCATION and the template) before running.
-- Athena lists folders, not _manifest.json: see discovery_runs.sql.
CREATE EXTERNAL TABLE IF NOT EXISTS discovery_user_task_snapshots (
  `captured_at`  timestamp,
  `name`         string,
  `task_type`    string,
  `issue_type`   string,
  `state`        string,
  `cloud`        string,
  `instance_key` string,
  `raw`          string
)
PARTITIONED BY (`capture_date` date)
STORED AS PARQUET
LOCATION 's3://YOUR-BUCKET/lake/user_task_snapshots/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.capture_date.type' = 'date',
  'projection.capture_date.format' = 'yyyy-MM-dd',
  'projection.capture_date.range' = '2020-01-01,NOW',
  'projection.capture_date.interval' = '1',
  'projection.capture_date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://YOUR-BUCKET/lake/user_task_snapshots/capture_date=${capture_date}/'
);
