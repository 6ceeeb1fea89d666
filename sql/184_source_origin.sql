-- source_origin(src): where a stored event came from (its `source`), without the parts that change
-- per file or per day, so that one exporter is one value: a file's folder (a Teleport file log
-- has one per auth server; a spool, an export folder) with a trailing date folder dropped
-- (Athena's <prefix>/<YYYY-MM-DD>/<file>), `dynamodb:TABLE` without the day, a generator's name
-- without its arguments; '.' for a file named without a folder.
-- grain: one value. inputs: none.
CREATE OR REPLACE MACRO source_origin(src) AS
CASE
    WHEN starts_with(src, 'dynamodb:') THEN regexp_replace(src, '/[^/]*$', '')
    WHEN regexp_matches(src, '^\w+\(') THEN regexp_extract(src, '^(\w+)\(', 1)
    WHEN NOT regexp_matches(src, '[/\\]') THEN '.'
    ELSE coalesce(nullif(regexp_replace(regexp_replace(src, '[/\\][^/\\]*$', ''),
                                        '[/\\]\d{4}-\d\d-\d\d$', ''), ''), '/')
END;
