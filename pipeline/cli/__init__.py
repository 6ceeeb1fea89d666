"""CLI: the `discovery-history` command (`main`), one module per command group, and `common`,
the helpers they share (one-line errors, progress, windows); `common` imports no command."""
