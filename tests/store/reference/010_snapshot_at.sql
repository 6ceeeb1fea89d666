-- snapshot_at(kind, as_of): capture time of the newest snapshot of `kind` ('nodes' | 'user_tasks')
-- taken at or before `as_of`; NULL when there is none.
-- grain: one value. inputs: snapshot_log.
CREATE OR REPLACE MACRO snapshot_at(snap_kind, as_of) AS (
    SELECT max(captured_at)
    FROM snapshot_log
    WHERE kind = snap_kind
      AND captured_at <= as_of
);
