"""discovery-history: a stored history of Teleport auto-discovery enrollment runs."""

__version__ = "0.1.0"
