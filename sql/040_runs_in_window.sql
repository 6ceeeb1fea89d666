-- runs_in_window(from_ts, to_ts): run events with from_ts <= time < to_ts (half-open), empty keys
-- dropped (as tctl drops them). Partition pruning on event_date keeps old files unread.
-- grain: one row per run event. inputs: runs.
CREATE OR REPLACE MACRO runs_in_window(from_ts, to_ts) AS TABLE
SELECT *
FROM runs
WHERE event_date BETWEEN CAST(from_ts AS DATE) AND CAST(to_ts AS DATE)
  AND time >= from_ts
  AND time < to_ts
  AND instance_key <> '';
