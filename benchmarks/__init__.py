"""Timing and memory harness for softtorch (see README.md); run ``python -m benchmarks``."""
