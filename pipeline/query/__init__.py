"""Query: reading the store. A DuckDB connection with every `sql/` view and macro loaded
(`views.connect`), the nodes report's data (`nodes`), the history analytics (`analytics`) and the
rollups that make year-long questions cheap (`rollups` read them, `rollup_build` builds them)."""
