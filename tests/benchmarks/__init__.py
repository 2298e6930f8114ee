"""Benchmarks: run as modules (``python -m tests.benchmarks.rebuild``), never collected by pytest."""
