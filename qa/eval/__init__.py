"""Evaluation: question sets (project JSONL, SQuAD, BEIR), metrics, the evaluation run and its report.

A tool over the runtime: nothing in the answering path imports it; it needs the `eval` extra.
"""
