-- failure_rules(): the failure_reasons rules numbered in the order they are tried: priority,
-- reason, then match_kind, pattern and remedy (so equal priorities and reasons still have one
-- order). rule_id is only meaningful within one query.
-- grain: one row per rule. inputs: failure_reasons.
CREATE OR REPLACE MACRO failure_rules() AS TABLE
SELECT row_number() OVER (ORDER BY priority, reason, match_kind, pattern, remedy) AS rule_id,
       priority, reason, match_kind, pattern, remedy
FROM failure_reasons;
