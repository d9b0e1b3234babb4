"""Benchmarks: indexing, article extraction, and load and soak against a live server (and the harness that runs one).

A tool over the runtime: nothing in the answering path imports it; it needs the `bench` extra.
"""
