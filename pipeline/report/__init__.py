"""Report: the `tctl discovery nodes` report, byte for byte. Its row vocabulary (`rows`), the rows
of a window (`nodes`), and the renderers (`render`: text, JSON, YAML, CSV, Markdown) with the Go
formatting they imitate (`gofmt`, `yamlv2`, `table`)."""
