"""Tuning quality of every contender on the reference workload (see __main__.py)."""
