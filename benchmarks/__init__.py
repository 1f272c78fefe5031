"""Benchmarks: runnable commands that print ratios against comparisons measured in the same run."""
