"""Benchmarks (not tests): speed, peak memory and quality, printed as comparable numbers."""
