"""An index kept in Milvus (a server, a cluster, or Milvus Lite): documents, chunks, sentences,
their vectors and BM25, and the manifest, so that any number of stateless processes can serve it.

- ``connection``: the client, its timeouts and errors,
- ``collections``: the collections and their schemas,
- ``expressions``: filters as Milvus boolean expressions,
- ``manifests``: the committed manifest, and which rows its generation sees,
- ``lease``: the one writer's lease,
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
from .manifests import read_commit
from .writer import MilvusWriter

__all__ = ["MilvusBackend", "MilvusIndex", "MilvusWriter"]


class MilvusIndex:
    """The index at one Milvus address; it connects on first use and keeps that connection."""

    def __init__(self, address: MilvusAddress):
        self.address = address
        self.names = Collections.of(address.collection)
        self._milvus: Milvus | None = None
        self._lock = threading.Lock()
        self._served: MilvusBackend | None = None  # the last one opened

    @property
    def milvus(self) -> Milvus:
        with self._lock:
            if self._milvus is None:
                milvus = Milvus(self.address)
                self.names.load(milvus)
                self._milvus = milvus
            return self._milvus

    def generation(self) -> int | None:
        """The committed generation (readers poll it); once that generation's dead rows are
        deleted, the backend serving it stops filtering them out."""
        commit = read_commit(self.milvus, self.names)
        served = self._served
        if (commit is not None and served is not None and served.commit.garbage and not commit.garbage
                and served.commit.generation == commit.generation):
            served.see(commit)
        return commit.generation if commit else None

    def open(self, expect: IndexConfig | None = None) -> MilvusBackend:
        commit = read_commit(self.milvus, self.names)
        if commit is None:
            raise IndexMissing(f"no index in the Milvus at {self.address.uri} (collections {self.names.prefix}_*); "
                               "build one with `qa index CORPUS`")
        if expect is not None:
            check_compatible(commit.manifest, expect)
        self._served = MilvusBackend(self.milvus, self.names, commit)
        return self._served

    def writer(self, config: IndexConfig, *, rebuild: bool = False) -> MilvusWriter:
        return MilvusWriter(self.milvus, self.names, config, rebuild=rebuild)
