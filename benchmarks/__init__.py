"""Benchmarks of ikkuna's cost on training loops; run ``benchmarks/overhead.py``."""
