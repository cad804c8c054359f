"""Benchmarks: scripts that print figures and ratios (not pytest tests). See RESULTS.md."""
