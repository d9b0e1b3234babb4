"""Where an index lives, local or in Milvus: how to tell its committed generation, open it for
questions and write to it. The pipeline and ``indexing`` ask this module, never a backend."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, Sequence

from ..documents import Document
from .generations import IndexConfig, IndexWriter, Manifest, committed_generation
from .protocol import DocumentWriter, SearchBackend
from .reader import IndexReader

Backend = Literal["local", "milvus"]
_SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://", "unix:")


class ServedIndex(SearchBackend, Protocol):
    """A SearchBackend with what the pipeline reads besides candidates."""
    manifest: Manifest

    def document(self, doc_id: str) -> Document: ...

    def list_documents(self, *, offset: int = 0, limit: int = 50, sources: Sequence[str] = (),
                       since: str | None = None, until: str | None = None) -> tuple[int, list[dict]]: ...


class WritableIndex(DocumentWriter, AbstractContextManager, Protocol):
    previous: int | None  # the generation committed when the writer started; None: none yet


class IndexLocation(Protocol):
    def generation(self) -> int | None:
        """The committed generation; None when nothing has been committed."""

    def open(self, expect: IndexConfig | None = None) -> ServedIndex:
        """The committed index; IndexMissing when there is none, IndexMismatch when it was built otherwise."""

    def writer(self, config: IndexConfig, *, rebuild: bool = False) -> WritableIndex: ...


@dataclass(frozen=True)
class MilvusAddress:
    """Where an index's collections are: ``uri`` is a server, or a Milvus Lite path."""
    uri: str
    collection: str = "qa"
    token: str | None = None
    timeout_s: float = 10.0

    @property
    def is_lite_path(self) -> bool:
        return not self.uri.startswith(_SERVER_SCHEMES)


@dataclass(frozen=True)
class LocalIndex:
    """The index in one folder (``generations``); it reads its pointer file on every call."""
    index_dir: Path
    # The reader opened last: the next one borrows the segments the two generations share.
    _opened: list = field(default_factory=list, compare=False, repr=False)

    def generation(self) -> int | None:
        return committed_generation(self.index_dir)

    def open(self, expect: IndexConfig | None = None) -> IndexReader:
        reader = IndexReader.open(self.index_dir, expect, self._opened[0] if self._opened else None)
        self._opened[:] = [reader]
        return reader

    def writer(self, config: IndexConfig, *, rebuild: bool = False) -> IndexWriter:
        return IndexWriter(self.index_dir, config, rebuild=rebuild)


def index_location(backend: Backend, *, index_dir: Path, milvus: MilvusAddress) -> IndexLocation:
    if backend == "milvus":
        from .milvus import MilvusIndex  # pymilvus only loads when it is used

        return MilvusIndex(milvus)
    return LocalIndex(Path(index_dir))
