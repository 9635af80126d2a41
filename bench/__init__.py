"""Benchmarks: each figure is ours beside a baseline measured in the same run (``python -m bench``)."""
