-- discovery_user_task_history_ends: the store's `user_task_history_ends/` dataset: the last capture of
-- each user-task interval that ended.
-- grain: one row per ended interval. inputs: s3://YOUR-BUCKET/lake/
--   user_task_history_ends/period=<YYYY-MM-01>/part-<ingest-id>-<n>.parquet (hive folders).
-- Replace s3://YOUR-BUCKET/lake with the store root (LOCATION and the template) before running.
-- Athena lists folders, not _manifest.json: see discovery_runs.sql.
CREATE EXTERNAL TABLE IF NOT EXISTS discovery_user_task_history_ends (
  `interval_id` bigint,
  `last_seen`   timestamp
)
PARTITIONED BY (`period` date)
STORED AS PARQUET
LOCATION 's3://YOUR-BUCKET/lake/user_task_history_ends/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.period.type' = 'date',
  'projection.period.format' = 'yyyy-MM-dd',
  'projection.period.range' = '2020-01-01,NOW',
  'projection.period.interval' = '1',
  'projection.period.interval.unit' = 'MONTHS',
  'storage.location.template' = 's3://YOUR-BUCKET/lake/user_task_history_ends/period=${period}/'
);
