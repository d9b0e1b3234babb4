"""The manifest of an index in Milvus: one row, written last at each commit, that readers poll."""

from __future__ import annotations

from dataclasses import asdict

from ...errors import IndexMismatch
from ..generations import Manifest
from .collections import NO_VECTOR, NO_VECTOR_VALUE, Collections
from .connection import Milvus

SCHEMA_VERSION = 1  # of the collections' fields (``Manifest.format_version``)
_KEY = "manifest"


def read_manifest(milvus: Milvus, names: Collections) -> Manifest | None:
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
    return Manifest(**{k: data[k] for k in Manifest.__dataclass_fields__ if k in data})


def write_manifest(milvus: Milvus, names: Collections, manifest: Manifest) -> None:
    milvus.upsert(names.manifest, [{"key": _KEY, "value": asdict(manifest), NO_VECTOR: NO_VECTOR_VALUE}])
    milvus.flush(names.manifest)
