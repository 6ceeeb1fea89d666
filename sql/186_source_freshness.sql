-- source_freshness(from_ts, to_ts): the newest stored event (runs and joins) per source origin
-- (source_origin) among events with from_ts <= time < to_ts; only the files of the window's days
-- are read. An origin without an event in the window has no row. Order: origin.
-- grain: one row per source origin. inputs: runs_on_days, joins_on_days, source_origin.
CREATE OR REPLACE MACRO source_freshness(from_ts, to_ts) AS TABLE
WITH read_events AS (
    SELECT source, time
    FROM runs_on_days(CAST(from_ts AS DATE), CAST(to_ts AS DATE))
    WHERE time >= from_ts AND time < to_ts
    UNION ALL
    SELECT source, time
    FROM joins_on_days(CAST(from_ts AS DATE), CAST(to_ts AS DATE))
    WHERE time >= from_ts AND time < to_ts
),
newest_per_source AS (
    -- a few distinct sources per day: group by the stored text first, name origins after
    SELECT source, max(time) AS newest_event
    FROM read_events
    GROUP BY source
)
SELECT source_origin(source) AS origin, max(newest_event) AS newest_event
FROM newest_per_source
GROUP BY origin
ORDER BY origin;
