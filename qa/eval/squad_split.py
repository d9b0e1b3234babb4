"""Deterministic article-level split of the SQuAD v1.1 dev set.

The reader is fine-tuned on "train" articles, its confidence calibration is
fitted on "calibration" articles, and evaluation numbers are only ever
reported on "test" articles. Splitting by article (not by question) keeps
paragraphs of one article from leaking across splits.
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "calibration", "test")


def article_split(title: str) -> str:
    """Return "train", "calibration" or "test" from sha1(title) mod 10.

    Buckets 0-5 -> train, 6 -> calibration, 7-9 -> test.
    """
    bucket = int(hashlib.sha1(title.encode("utf-8")).hexdigest(), 16) % 10
    if bucket <= 5:
        return "train"
    if bucket == 6:
        return "calibration"
    return "test"
