"""`python -m pipeline.cli`: the `discovery-history` command."""

from pipeline.cli.main import main

main()
