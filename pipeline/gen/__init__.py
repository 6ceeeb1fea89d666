"""Building blocks of the synthetic fleet generator (`pipeline.generate.generate_fleet`)."""
