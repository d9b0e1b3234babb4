"""The SQuAD v1.1 JSON format: its articles, their questions, and splits of articles by title.

Evaluation and reader training both read SQuAD files through here. Splits are by article, not by
question, so that paragraphs of one article never sit on both sides of a split.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

from ..errors import DocumentError

# Splits of the public dev file: the first reader was fitted on "train" articles, its calibration on
# "calibration" ones, and figures kept for continuity are reported on the "test" articles.
SPLITS = ("train", "calibration", "test")


def read_articles(path: str | Path) -> list[dict]:
    """The articles of a SQuAD JSON file; a file of another shape is a DocumentError."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DocumentError(f"{path} is not SQuAD JSON (no 'data' list)")
    return data["data"]


def paragraph_questions(articles: list[dict]) -> Iterator[tuple[dict, int, dict]]:
    """(article, paragraph index, question record) for every question."""
    for article in articles:
        for index, paragraph in enumerate(article["paragraphs"]):
            for qa in paragraph["qas"]:
                yield article, index, qa


def title_bucket(title: str, buckets: int) -> int:
    """A stable bucket in [0, buckets) for an article title (sha1, so the same on every machine)."""
    return int(hashlib.sha1(title.encode("utf-8")).hexdigest(), 16) % buckets


def article_split(title: str) -> str:
    """"train" (buckets 0-5 of 10), "calibration" (6) or "test" (7-9) for an article of the dev file."""
    bucket = title_bucket(title, 10)
    if bucket <= 5:
        return "train"
    if bucket == 6:
        return "calibration"
    return "test"
