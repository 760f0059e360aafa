"""Executors: the places where a parsed command line or a job request turns into effects."""
