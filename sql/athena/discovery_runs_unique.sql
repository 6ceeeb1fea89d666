-- discovery_runs_unique: discovery_runs with one row per uid, hiding what a listing reader
-- sees besides committed files (a compaction's old + new copies, a writer's files before its
-- commit). Files of a crashed writer stay visible until the next write sweeps them.
-- grain: one row per uid (`copy_no` is always 1). inputs: discovery_runs (create it first).
-- A uid's copies share cloud and event_date (same event time), so the window partitions by
-- them too: a filter on event_date/cloud is pushed below it and projection prunes folders.
CREATE OR REPLACE VIEW discovery_runs_unique AS
WITH ranked AS (
  SELECT r.*, row_number() OVER (
    PARTITION BY r.cloud, r.event_date, r.uid ORDER BY r.ingest_id
  ) AS copy_no
  FROM discovery_runs r
)
SELECT * FROM ranked WHERE copy_no = 1;
