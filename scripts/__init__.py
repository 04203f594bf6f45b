"""Benchmarks and one-off maintenance scripts (not part of the inlined library)."""
