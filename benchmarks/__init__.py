"""Benchmarks (not tests): speed, peak memory and quality, printed as comparable numbers."""

from focusstudio.core.runtime import tune_process

# In-process benchmarks measure the library as the CLI and the window run it (entry points opt in).
tune_process()
