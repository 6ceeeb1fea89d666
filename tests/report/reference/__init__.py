"""Frozen pre-optimisation report renderers, kept as a differential-test oracle."""
