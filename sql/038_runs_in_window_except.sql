-- runs_in_window_except(from_ts, to_ts, skip_months): run events with from_ts <= time < to_ts
-- (half-open), empty keys dropped (as tctl drops them), outside the months listed in
-- `skip_months` (DATEs, first of the month: what latest_runs reads from month rollups instead).
-- Only the files of the window's days are listed (runs_on_days, made by
-- pipeline.query.attach_views): older history is neither bound nor read.
-- grain: one row per run event. inputs: runs (runs_on_days).
CREATE OR REPLACE MACRO runs_in_window_except(from_ts, to_ts, skip_months) AS TABLE
SELECT *
FROM runs_on_days(
    CAST(from_ts AS DATE),
    -- the window ends before to_ts: a to_ts at midnight needs nothing of that day
    CASE WHEN CAST(to_ts AS DATE) = to_ts THEN CAST(to_ts AS DATE) - 1 ELSE CAST(to_ts AS DATE) END,
    skip_months := skip_months
)
WHERE time >= from_ts
  AND time < to_ts
  AND instance_key <> '';
