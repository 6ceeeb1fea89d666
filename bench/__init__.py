"""Benchmarks of issue 5 (`make bench` = `python -m bench`): apart from the tests, each figure a
median of interleaved runs against a baseline measured in the same session. See bench/README.md."""
