-- rolled_months(from_ts, to_ts): the months [from_ts, to_ts) covers whole that have a fresh
-- newest-run rollup (DATEs, first of the month; `rollup_latest_months`, set by
-- pipeline.rollup.attach_latest from the manifest the connection opened).
-- grain: one value (a list). inputs: the variable rollup_latest_months.
CREATE OR REPLACE MACRO rolled_months(from_ts, to_ts) AS
list_filter(getvariable('rollup_latest_months'),
            lambda m: m >= from_ts AND m + INTERVAL 1 MONTH <= to_ts);
