-- discovery_node_history: the store's `node_history/` dataset: node presence intervals, one row per
-- interval per month it is present in (an interval spanning months has a row in each, the same
-- first_seen and raw).
-- grain: one row per (interval_id, period). Join discovery_node_history_ends on interval_id for its
--   last capture (none: present in the newest capture). inputs: s3://YOUR-BUCKET/lake/
--   node_history/period=<YYYY-MM-01>/part-<ingest-id>-<n>.parquet (hive folders).
-- Replace s3://YOUR-BUCKET/lake with the store root (LOCATION and the template) before running.
-- Athena lists folders, not _manifest.json: see discovery_runs.sql.
CREATE EXTERNAL TABLE IF NOT EXISTS discovery_node_history (
  `interval_id`    bigint,
  `first_seen`     timestamp,
  `name`           string,
  `hostname`       string,
  `cloud`          string,
  `instance_key`   string,
  `instance_id`    string,
  `vm_id`          string,
  `account_id`     string,
  `region`         string,
  `resource_group` string,
  `raw`            string
)
PARTITIONED BY (`period` date)
STORED AS PARQUET
LOCATION 's3://YOUR-BUCKET/lake/node_history/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.period.type' = 'date',
  'projection.period.format' = 'yyyy-MM-dd',
  'projection.period.range' = '2020-01-01,NOW',
  'projection.period.interval' = '1',
  'projection.period.interval.unit' = 'MONTHS',
  'storage.location.template' = 's3://YOUR-BUCKET/lake/node_history/period=${period}/'
);
