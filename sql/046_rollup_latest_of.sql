-- rollup_latest_of(months): the rows of the fresh month rollups of `months` (the newest run per
-- instance of each month, runs' own columns). The runs schema file comes first in the listed
-- files, so the list is never empty and the columns are always bound.
-- grain: one row per (month, cloud, instance_key, vm_id). inputs: the variable
-- rollup_latest_files.
CREATE OR REPLACE MACRO rollup_latest_of(months) AS TABLE
SELECT *
FROM read_parquet(
    list_filter(getvariable('rollup_latest_files'), lambda f, i: i = 1 OR list_contains(
        months, TRY_CAST(regexp_extract(f, '[/\\]event_month=([0-9-]+)[/\\]', 1) AS DATE))),
    union_by_name = true, hive_partitioning = false
);
