"""Gen: the synthetic fleet for demos, tests and benchmarks (`generate`: Teleport file logs,
nodes.json, user_tasks.json, Athena Parquet; `tostore`: the same fleet written straight into a
store)."""
