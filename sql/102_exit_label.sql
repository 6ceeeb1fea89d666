-- exit_label(exit_code, api_error): how an attempt's exit is named everywhere (trends, exit-code
-- lists, history, reports): 'API error' when the Run Command API call itself failed (the exit
-- code is then 0 and means nothing), else the exit code as text ('150', '-1').
-- grain: one value. inputs: none.
CREATE OR REPLACE MACRO exit_label(exit_code, api_error) AS
CASE WHEN coalesce(api_error, '') <> '' THEN 'API error' ELSE CAST(exit_code AS VARCHAR) END;
