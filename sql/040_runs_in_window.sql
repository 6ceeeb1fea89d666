-- runs_in_window(from_ts, to_ts): run events with from_ts <= time < to_ts (half-open), empty keys
-- dropped (as tctl drops them); only the window's days are read.
-- grain: one row per run event. inputs: runs_in_window_except.
CREATE OR REPLACE MACRO runs_in_window(from_ts, to_ts) AS TABLE
SELECT * FROM runs_in_window_except(from_ts, to_ts, []::DATE[]);
