"""Benchmarks: indexing, article extraction, load and soak (and the live-server harness they use).

A tool over the runtime: nothing in the answering path imports it; it needs the `bench` extra.
"""
