-- discovery_node_snapshots: the store's `node_snapshots/` dataset, read in place by Athena.
-- grain: one row per node per snapshot (captured_at). inputs: s3://YOUR-BUCKET/lake/
--   node_snapshots/capture_date=<YYYY-MM-DD>/part-<ingest-id>-<n>.parquet (hive folders).
-- Replace s3://YOUR-BUCKET/lake with the store root (LOCATION and the template) before running.
-- Athena lists folders, not _manifest.json: see discovery_runs.sql.
CREATE EXTERNAL TABLE IF NOT EXISTS discovery_node_snapshots (
  `captured_at`    timestamp,
  `name`           string,
  `hostname`       string,
  `cloud`          string,
  `instance_key`   string,
  `instance_id`    string,
  `vm_id`          string,
  `account_id`     string,
  `region`         string,
  `resource_group` string,
  `expires`        timestamp,
  `raw`            string
)
PARTITIONED BY (`capture_date` date)
STORED AS PARQUET
LOCATION 's3://YOUR-BUCKET/lake/node_snapshots/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.capture_date.type' = 'date',
  'projection.capture_date.format' = 'yyyy-MM-dd',
  'projection.capture_date.range' = '2020-01-01,NOW',
  'projection.capture_date.interval' = '1',
  'projection.capture_date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://YOUR-BUCKET/lake/node_snapshots/capture_date=${capture_date}/'
);
