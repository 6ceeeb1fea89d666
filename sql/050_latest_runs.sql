-- latest_runs(from_ts, to_ts): the newest run event per instance in [from_ts, to_ts), instances
-- keyed as tctl keys them: the EC2 instance id, or the Azure VM id exactly as the event wrote it
-- (instance_key folds its case, vm_id keeps it).
-- Ties on time: higher event index, then uid, so the answer is deterministic.
-- A month the window covers whole is read from its rollup (the newest run per instance of that
-- month, pipeline/rollup.py) when one matches the stored runs, and runs are scanned for the rest:
-- the newest of the months' newest is the newest, so the rows are the same either way.
-- grain: one row per (cloud, instance_key, vm_id). inputs: runs_in_window_except, rolled_months,
-- rollup_latest_of.
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
GROUP BY cloud, instance_key, vm_id;
