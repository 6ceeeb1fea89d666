-- latest_runs(from_ts, to_ts): the newest run event per instance in [from_ts, to_ts).
-- Ties on time: higher event index, then uid, so the answer is deterministic.
-- grain: one row per (cloud, instance_key). inputs: runs_in_window.
CREATE OR REPLACE MACRO latest_runs(from_ts, to_ts) AS TABLE
WITH rank_events AS (
    SELECT *,
           create_sort_key(time, 'DESC NULLS LAST', ei, 'DESC NULLS LAST', uid, 'DESC NULLS LAST')
               AS newest_first
    FROM runs_in_window(from_ts, to_ts)
)
-- one aggregate per column (a GROUP BY, not a window sort of whole rows): unused columns are
-- never read; arg_min_null keeps a NULL of the newest event (arg_min would skip to another's)
SELECT arg_min_null(COLUMNS(* EXCLUDE (newest_first)), newest_first)
FROM rank_events
GROUP BY cloud, instance_key;
