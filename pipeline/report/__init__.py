"""The `tctl discovery nodes` report: row vocabulary, data access and renderers."""
