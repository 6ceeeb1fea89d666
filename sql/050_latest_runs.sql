-- latest_runs(from_ts, to_ts): the newest run event per instance in [from_ts, to_ts).
-- Ties on time: higher event index, then uid, so the answer is deterministic.
-- grain: one row per (cloud, instance_key). inputs: runs_in_window.
CREATE OR REPLACE MACRO latest_runs(from_ts, to_ts) AS TABLE
SELECT *
FROM runs_in_window(from_ts, to_ts)
QUALIFY row_number() OVER (
    PARTITION BY cloud, instance_key ORDER BY time DESC, ei DESC, uid DESC
) = 1;
