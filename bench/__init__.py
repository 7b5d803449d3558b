"""Benchmarks: each module measures one performance goal and prints its figures (``stridetwin bench``)."""
