"""Where documents, chunks and their vectors are kept, and where a question's candidates come from.

- ``protocol``: the seam (``SearchBackend``, ``DocumentWriter``, ``Filters``, ``Candidates``),
- ``generations``: the local index on disk and its writer (crash-safe generations),
- ``rows``: its documents, chunks and sentences in SQLite, tagged with generations,
- ``segments``: its vectors and word counts in immutable segments, and how they merge,
- ``reader``: a committed generation opened for questions, the local ``SearchBackend``,
- ``local_search``: how that reader gathers candidates,
- ``segmented_vectors``: a generation's segments searched as one vector index,
- ``vectors``: ``VectorIndex``, the one owner of FAISS.
"""

from .generations import (
                          CURRENT,
                          FORMAT_VERSION,
                          IndexConfig,
                          IndexWriter,
                          Manifest,
                          check_compatible,
                          committed_generation,
)
from .protocol import (
                          Candidates,
                          DocumentWriter,
                          Filters,
                          IndexedDocument,
                          IndexedSentence,
                          SearchBackend,
                          Signal,
                          StoredChunk,
                          indexed_text,
)
from .reader import IndexReader
from .vectors import VectorIndex

__all__ = ["CURRENT", "FORMAT_VERSION", "Candidates", "DocumentWriter", "Filters", "IndexConfig", "IndexReader",
           "IndexWriter", "IndexedDocument", "IndexedSentence", "Manifest", "SearchBackend", "Signal",
           "StoredChunk", "VectorIndex", "check_compatible", "committed_generation", "indexed_text"]
