"""Reproducible performance runs against the sandbox; figures go to benchmarks/README.md."""
