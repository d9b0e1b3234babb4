"""An index kept in Milvus (a server, a cluster, or Milvus Lite): documents, chunks, sentences,
their vectors and BM25, and the manifest, so that any number of stateless processes can serve it.

- ``connection``: the client, its timeouts and errors,
- ``collections``: the collections and their schemas,
- ``expressions``: filters as Milvus boolean expressions,
- ``manifests``: the committed manifest,
- ``backend`` and ``search``: the SearchBackend,
- ``writer``: the DocumentWriter.

Only ``qa.store.backends`` imports this package, when the milvus backend is chosen: pymilvus is
an optional dependency (the ``milvus`` extra).
"""

from __future__ import annotations

import threading

from ...errors import IndexMissing
from ..backends import MilvusAddress
from ..generations import IndexConfig, check_compatible
from .backend import MilvusBackend
from .collections import Collections
from .connection import Milvus
from .manifests import read_manifest
from .writer import MilvusWriter

__all__ = ["MilvusBackend", "MilvusIndex", "MilvusWriter"]


class MilvusIndex:
    """The index at one Milvus address; it connects on first use and keeps that connection."""

    def __init__(self, address: MilvusAddress):
        self.address = address
        self.names = Collections.of(address.collection)
        self._milvus: Milvus | None = None
        self._lock = threading.Lock()

    @property
    def milvus(self) -> Milvus:
        with self._lock:
            if self._milvus is None:
                milvus = Milvus(self.address)
                self.names.load(milvus)
                self._milvus = milvus
            return self._milvus

    def generation(self) -> int | None:
        manifest = read_manifest(self.milvus, self.names)
        return manifest.generation if manifest else None

    def open(self, expect: IndexConfig | None = None) -> MilvusBackend:
        manifest = read_manifest(self.milvus, self.names)
        if manifest is None:
            raise IndexMissing(f"no index in the Milvus at {self.address.uri} (collections {self.names.prefix}_*); "
                               "build one with `qa index CORPUS`")
        if expect is not None:
            check_compatible(manifest, expect)
        return MilvusBackend(self.milvus, self.names, manifest)

    def writer(self, config: IndexConfig, *, rebuild: bool = False) -> MilvusWriter:
        return MilvusWriter(self.milvus, self.names, config, rebuild=rebuild)
