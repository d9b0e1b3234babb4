"""Near-duplicate stories: the same (often syndicated) text under several ids, found with
MinHash LSH (datasketch) over word shingles.

Copies are grouped under one story id, kept in each copy's ``metadata["story"]``: the id of the
group's first document in id order, so it does not depend on the order files are read in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from datasketch import MinHash, MinHashLSH

from .documents import Document

STORY = "story"
# Word 5-grams: long enough that two different stories on one topic share few of them.
SHINGLE_WORDS = 5
NUM_PERM = 128
# Estimated Jaccard similarity of the shingle sets at or above which two texts are copies;
# a wire story re-edited by an outlet (new intro, a sentence cut) stays above it.
THRESHOLD = 0.5
_WORD = re.compile(r"\w+")


def story_ids(documents: Sequence[Document], threshold: float = THRESHOLD) -> dict[str, str]:
    """Document id -> story id, for every document that has at least one copy."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError("the near-duplicate threshold must be in (0, 1]")
    signatures = {doc.id: _minhash(doc.text) for doc in documents}
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    for doc_id, signature in signatures.items():
        lsh.insert(doc_id, signature)
    parent = {doc_id: doc_id for doc_id in signatures}

    def root(doc_id: str) -> str:
        while parent[doc_id] != doc_id:
            parent[doc_id] = parent[parent[doc_id]]
            doc_id = parent[doc_id]
        return doc_id

    for doc_id, signature in signatures.items():
        for other in lsh.query(signature):
            # LSH only proposes candidates; the estimate decides.
            if other != doc_id and signature.jaccard(signatures[other]) >= threshold:
                first, second = sorted((root(doc_id), root(other)))
                parent[second] = first
    groups: dict[str, list[str]] = {}
    for doc_id in signatures:
        groups.setdefault(root(doc_id), []).append(doc_id)
    return {doc_id: min(members) for members in groups.values() if len(members) > 1
            for doc_id in members}


def with_story_ids(documents: Sequence[Document], threshold: float = THRESHOLD) -> list[Document]:
    """The documents with ``metadata["story"]`` set on copies and cleared on the rest."""
    stories = story_ids(documents, threshold)
    marked = []
    for doc in documents:
        metadata = {k: v for k, v in doc.metadata.items() if k != STORY}
        if doc.id in stories:
            metadata[STORY] = stories[doc.id]
        marked.append(doc if metadata == doc.metadata else replace(doc, metadata=metadata))
    return marked


def _minhash(text: str) -> MinHash:
    words = _WORD.findall(text.lower())
    width = min(SHINGLE_WORDS, len(words)) or 1
    shingles = {" ".join(words[i:i + width]) for i in range(max(len(words) - width + 1, 1))}
    signature = MinHash(num_perm=NUM_PERM)
    signature.update_batch([s.encode("utf-8") for s in shingles])
    return signature
