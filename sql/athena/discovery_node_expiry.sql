-- discovery_node_expiry: the store's `node_expiry/` dataset: one row per node present per capture,
-- its `expires` as nanoseconds after `captured_at` (NULL: none). The nodes of a capture are these
-- rows joined with discovery_node_history on interval_id and period = the capture's month.
-- grain: one row per (captured_at, interval_id). inputs: s3://YOUR-BUCKET/lake/
--   node_expiry/capture_date=<YYYY-MM-DD>/part-<ingest-id>-<n>.parquet (hive folders).
-- Replace s3://YOUR-BUCKET/lake with the store root (LOCATION and the template) before running.
-- Athena lists folders, not _manifest.json: see discovery_runs.sql.
CREATE EXTERNAL TABLE IF NOT EXISTS discovery_node_expiry (
  `captured_at`    timestamp,
  `interval_id`    bigint,
  `expires_offset` bigint
)
PARTITIONED BY (`capture_date` date)
STORED AS PARQUET
LOCATION 's3://YOUR-BUCKET/lake/node_expiry/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.capture_date.type' = 'date',
  'projection.capture_date.format' = 'yyyy-MM-dd',
  'projection.capture_date.range' = '2020-01-01,NOW',
  'projection.capture_date.interval' = '1',
  'projection.capture_date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://YOUR-BUCKET/lake/node_expiry/capture_date=${capture_date}/'
);
