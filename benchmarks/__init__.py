"""Benchmarks of sync_tweaks (run with `python benchmarks/run.py`)."""
