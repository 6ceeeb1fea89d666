-- exit_labels(labels): the distinct exit labels of a list (exit_label's), by exit code, then
-- 'API error'; [] for NULL or an empty list.
-- grain: one value (a list). inputs: none.
CREATE OR REPLACE MACRO exit_labels(labels) AS
list_transform(
    list_sort(list_transform(list_distinct(coalesce(labels, []::VARCHAR[])),
                             lambda l: {'api': l = 'API error', 'code': TRY_CAST(l AS BIGINT),
                                        'label': l})),
    lambda x: x.label);
