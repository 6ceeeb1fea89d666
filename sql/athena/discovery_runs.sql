-- discovery_runs: the store's `runs/` dataset (ssm.run + azure.run), read in place by Athena.
-- grain: one row per stored run event file row. inputs: s3://YOUR-BUCKET/lake/runs/
--   cloud=<aws|azure>/event_date=<YYYY-MM-DD>/part-<ingest-id>-<n>.parquet (hive folders).
-- Replace s3://YOUR-BUCKET/lake with the store root (LOCATION and the template) before running.
-- Partition projection: no MSCK REPAIR / crawler needed; always filter on event_date (and
-- cloud) so that Athena lists only those folders.
-- Athena lists folders; it does not read _manifest.json. A writer's files appear before its
-- commit (and stay if it crashed, until the next write sweeps them); a compaction briefly
-- shows old and new files. Query discovery_runs_unique for one row per uid.
-- `time` is Parquet TIMESTAMP(NANOS); Athena reads it at millisecond precision, `time_text`
-- keeps Teleport's text with nanoseconds.
CREATE EXTERNAL TABLE IF NOT EXISTS discovery_runs (
  `uid`              string,
  `event`            string,
  `code`             string,
  `time`             timestamp,
  `time_text`        string,
  `ei`               bigint,
  `cluster_name`     string,
  `is_failure`       boolean,
  `instance_key`     string,
  `instance_id`      string,
  `vm_id`            string,
  `account_id`       string,
  `region`           string,
  `exit_code`        bigint,
  `status`           string,
  `stdout`           string,
  `stderr`           string,
  `api_error`        string,
  `command_id`       string,
  `invocation_url`   string,
  `platform_name`    string,
  `platform_type`    string,
  `platform_version` string,
  `subscription_id`  string,
  `resource_group`   string,
  `resource_id`      string,
  `vm_name`          string,
  `execution_state`  string,
  `extra`            string,
  `source`           string,
  `ingest_id`        string
)
PARTITIONED BY (`cloud` string, `event_date` date)
STORED AS PARQUET
LOCATION 's3://YOUR-BUCKET/lake/runs/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.cloud.type' = 'enum',
  'projection.cloud.values' = 'aws,azure',
  'projection.event_date.type' = 'date',
  'projection.event_date.format' = 'yyyy-MM-dd',
  'projection.event_date.range' = '2020-01-01,NOW',
  'projection.event_date.interval' = '1',
  'projection.event_date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://YOUR-BUCKET/lake/runs/cloud=${cloud}/event_date=${event_date}/'
);
