-- latest_runs(from_ts, to_ts): the newest run event per instance in [from_ts, to_ts).
-- Ties on time: higher event index, then uid, so the answer is deterministic.
-- A month the window covers whole is read from its rollup (the newest run per instance of that
-- month, pipeline/rollup.py) when one matches the stored runs, and runs are scanned for the rest:
-- the newest of the months' newest is the newest, so the rows are the same either way.
-- grain: one row per (cloud, instance_key). inputs: runs_in_window_except, rollup_latest.
CREATE OR REPLACE MACRO rolled_months(from_ts, to_ts) AS
list_filter(getvariable('rollup_latest_months'),
            lambda m: m >= from_ts AND m + INTERVAL 1 MONTH <= to_ts);

CREATE OR REPLACE MACRO rollup_latest_of(months) AS TABLE
-- the runs schema file comes first in the list, so it is never empty
SELECT *
FROM read_parquet(
    list_filter(getvariable('rollup_latest_files'), lambda f, i: i = 1 OR list_contains(
        months, TRY_CAST(regexp_extract(f, '[/\\]event_month=([0-9-]+)[/\\]', 1) AS DATE))),
    union_by_name = true, hive_partitioning = false
);

CREATE OR REPLACE MACRO latest_runs(from_ts, to_ts) AS TABLE
WITH candidates AS (
    SELECT * FROM runs_in_window_except(from_ts, to_ts, rolled_months(from_ts, to_ts))
    UNION ALL BY NAME
    SELECT * FROM rollup_latest_of(rolled_months(from_ts, to_ts))
),
rank_events AS (
    SELECT *,
           create_sort_key(time, 'DESC NULLS LAST', ei, 'DESC NULLS LAST', uid, 'DESC NULLS LAST')
               AS newest_first
    FROM candidates
)
-- one aggregate per column (a GROUP BY, not a window sort of whole rows): unused columns are
-- never read; arg_min_null keeps a NULL of the newest event (arg_min would skip to another's)
SELECT arg_min_null(COLUMNS(* EXCLUDE (newest_first)), newest_first)
FROM rank_events
GROUP BY cloud, instance_key;
