-- discovery_joins: the store's `joins/` dataset (instance.join), read in place by Athena.
-- grain: one row per stored join event file row. inputs: s3://YOUR-BUCKET/lake/joins/
--   event_date=<YYYY-MM-DD>/part-<ingest-id>-<n>.parquet (hive folders).
-- Replace s3://YOUR-BUCKET/lake with the store root (LOCATION and the template) before running.
-- Athena lists folders, not _manifest.json: see discovery_runs.sql; dedup on uid.
CREATE EXTERNAL TABLE IF NOT EXISTS discovery_joins (
  `uid`          string,
  `event`        string,
  `code`         string,
  `time`         timestamp,
  `time_text`    string,
  `ei`           bigint,
  `cluster_name` string,
  `is_failure`   boolean,
  `node_name`    string,
  `host_id`      string,
  `role`         string,
  `method`       string,
  `token_name`   string,
  `attributes`   string,
  `extra`        string,
  `source`       string,
  `ingest_id`    string
)
PARTITIONED BY (`event_date` date)
STORED AS PARQUET
LOCATION 's3://YOUR-BUCKET/lake/joins/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.event_date.type' = 'date',
  'projection.event_date.format' = 'yyyy-MM-dd',
  'projection.event_date.range' = '2020-01-01,NOW',
  'projection.event_date.interval' = '1',
  'projection.event_date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://YOUR-BUCKET/lake/joins/event_date=${event_date}/'
);
