"""The manifest of an index in Milvus: one row that readers poll, and what of the other
collections' rows its generation sees.

Every row of the documents, texts, chunks and sentences collections carries the generation that
wrote it. The committed manifest (``Commit``) says which rows are visible: those of its generation
or older, but for the rows older than ``floor`` (a rebuild's generation) and the older rows of the
documents its generation replaced or deleted (``superseded``) until they are deleted. Rows of a
newer generation are a writer's, still invisible, or a dead writer's leftovers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ...errors import IndexMismatch
from ..generations import Manifest
from .collections import GENERATION, NO_VECTOR, NO_VECTOR_VALUE, Collections
from .connection import Milvus
from .expressions import is_in

# 1: rows without generations; 2: every row carries its generation, documents keyed by row.
SCHEMA_VERSION = 2  # of the collections' fields (``Manifest.format_version``)
_KEY = "manifest"


@dataclass(frozen=True)
class Commit:
    """The committed manifest and the rows it sees."""
    manifest: Manifest
    floor: int = 0  # rows of older generations are dead (a rebuild): 0 when none
    superseded: tuple[str, ...] = ()  # documents replaced or deleted by this generation

    @property
    def generation(self) -> int:
        return self.manifest.generation

    @property
    def garbage(self) -> bool:
        """Whether dead rows may still be stored: deleting them is still to do."""
        return bool(self.floor or self.superseded)

    def visible(self) -> str:
        """The Milvus expression of the rows this generation sees."""
        clauses = [f"{GENERATION} <= {self.generation}"]
        if self.floor:
            clauses.append(f"{GENERATION} >= {self.floor}")
        if self.superseded:
            clauses.append(f"not ({GENERATION} < {self.generation} and {is_in('doc_id', self.superseded)})")
        return " and ".join(clauses)


def read_commit(milvus: Milvus, names: Collections) -> Commit | None:
    """The committed manifest; None when nothing was ever committed under these names."""
    if not milvus.has_collection(names.manifest):
        return None
    rows = milvus.get(names.manifest, ids=[_KEY], output_fields=["value"])
    if not rows:
        return None
    data = rows[0]["value"]
    if data.get("format_version") != SCHEMA_VERSION:
        raise IndexMismatch(f"the Milvus collections {names.prefix}_* have schema {data.get('format_version')}, "
                            f"this version reads {SCHEMA_VERSION}; rebuild them with `qa index --rebuild`")
    manifest = Manifest(**{k: data[k] for k in Manifest.__dataclass_fields__ if k in data})
    return Commit(manifest, int(data.get("floor", 0)), tuple(data.get("superseded", ())))


def write_commit(milvus: Milvus, names: Collections, commit: Commit) -> None:
    """Replace the manifest row, at once for every reader, and flush it (durable)."""
    value = {**asdict(commit.manifest), "floor": commit.floor, "superseded": list(commit.superseded)}
    milvus.upsert(names.manifest, [{"key": _KEY, "value": value, NO_VECTOR: NO_VECTOR_VALUE}])
    milvus.flush(names.manifest)


def forget_commit(milvus: Milvus, names: Collections) -> None:
    """Delete the manifest row: the index is missing until the next commit (an incompatible rebuild)."""
    milvus.delete(names.manifest, ids=[_KEY])
    milvus.flush(names.manifest)


def and_(*clauses: str) -> str:
    """The conjunction of the non-empty expressions."""
    return " and ".join(f"({c})" for c in clauses if c)
