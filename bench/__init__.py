"""Benchmarks and labelled evaluations: each script prints its figures and writes bench/results/<name>.txt."""
