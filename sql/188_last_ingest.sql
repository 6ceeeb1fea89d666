-- last_ingest(ingest_kind, as_of): the newest ingest of `ingest_kind` ('events' | 'nodes' |
-- 'user_tasks') finished at or before `as_of` (by finish time, then ingest_id): its times,
-- conservation counts (read = stored + duplicates + skipped + quarantined) and how many sources
-- it read. An ingest is logged in the commit that stores its rows, so this is the last
-- successful one; no row before the first.
-- grain: at most one row. inputs: ingest_log.
CREATE OR REPLACE MACRO last_ingest(ingest_kind, as_of) AS TABLE
SELECT ingest_id, kind, started_at, finished_at, read, stored, duplicates, skipped, quarantined,
       len(sources) AS sources
FROM ingest_log
WHERE kind = ingest_kind
  AND finished_at <= as_of
ORDER BY finished_at DESC, ingest_id DESC
LIMIT 1;
