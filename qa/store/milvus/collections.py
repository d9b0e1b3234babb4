"""The collections of one index and their schemas.

Milvus has no joins, so each chunk and sentence carries its document's ``doc_id``, ``source``
and ``day``: a question's filters apply in the engine, in the search itself. Document text is
kept in parts, a VARCHAR holding at most 65,535 bytes. Every row but the manifest's carries the
``generation`` that wrote it (see ``manifests.Commit``): a document's rows of two generations
coexist until the older ones are deleted, so Milvus allocates every row's key.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

from pymilvus import DataType, Function, FunctionType, MilvusClient

from ...lexical import english_stemmer, stemmed_words
from .connection import Milvus

# As the local BM25 (qa.lexical): k1 and b chosen on SQuAD train articles.
BM25_K1, BM25_B = 0.9, 0.4
# Milvus reads the words that ``bm25_texts`` gives it, one space apart.
ANALYZER = {"tokenizer": "standard"}
TEXT_PART_CHARS = 16_000  # four UTF-8 bytes a character at most: a part stays under 65,535 bytes
_LONG = 65_535
_ID = 2_048  # a document id has at most 512 characters
# Every collection needs a vector field; documents, text parts and the manifest have no vector
# of their own, so they carry this one, always zero.
NO_VECTOR = "no_vector"
NO_VECTOR_VALUE = [0.0, 0.0]
GENERATION = "generation"


def bm25_texts(texts: Sequence[str]) -> list[str]:
    """What Milvus's BM25 reads of each text: the local BM25's stemmed words, stop words left out.

    Milvus Lite's analyzer has no stemmer, and a server's stemmer and stop words are not bm25s's:
    analysed here, both backends count the same words, and Milvus computes BM25 over them.
    """
    return [" ".join(words) for words in stemmed_words(list(texts), _stemmer())]


@functools.cache
def _stemmer():
    return english_stemmer()


_KINDS = ("manifest", "documents", "texts", "chunks", "sentences")


@dataclass(frozen=True)
class Collections:
    """The names of an index's collections: the prefix, then what each holds."""
    prefix: str
    manifest: str
    documents: str
    texts: str
    chunks: str
    sentences: str

    @classmethod
    def of(cls, prefix: str) -> Collections:
        return cls(prefix, *(f"{prefix}_{kind}" for kind in _KINDS))

    def all(self) -> tuple[str, ...]:
        return tuple(getattr(self, kind) for kind in _KINDS)

    def create(self, milvus: Milvus, dimension: int) -> None:
        """Every collection of the index, empty; those that exist are left as they are."""
        _create(milvus, dimension, (
            (self.manifest, _manifest_schema, _no_vector_index),
            (self.documents, _document_schema, _no_vector_index),
            (self.texts, _text_schema, _no_vector_index),
            (self.chunks, _chunk_schema, _chunk_index),
            (self.sentences, _sentence_schema, _vector_index)))

    def create_manifest(self, milvus: Milvus) -> None:
        """The manifest's collection alone (it has no vectors, so no dimension): the writer's lease lives there."""
        _create(milvus, 0, ((self.manifest, _manifest_schema, _no_vector_index),))

    def load(self, milvus: Milvus) -> None:
        """Load the collections that exist: a restarted Milvus holds them released, unsearchable."""
        for name in self.all():
            if milvus.has_collection(name):
                milvus.load(name)

    def data(self) -> tuple[str, ...]:
        """The collections whose rows carry a generation, in the order readers follow them."""
        return self.documents, self.texts, self.chunks, self.sentences

    def drop_data(self, milvus: Milvus) -> None:
        """Drop every collection but the manifest's (which holds the writer's lease)."""
        for name in self.data():
            if milvus.has_collection(name):
                milvus.drop_collection(name)


def _create(milvus: Milvus, dimension: int, collections) -> None:
    for name, schema, index in collections:
        if not milvus.has_collection(name):
            # Strong: a commit is seen by every API process from its next question on.
            milvus.create_collection(name, schema=schema(dimension), index_params=index(), consistency_level="Strong")


def _schema(*, auto_id: bool):
    return MilvusClient.create_schema(auto_id=auto_id, enable_dynamic_field=False)


def _with_document_fields(schema):
    """The fields a question's filters read (see ``expressions.matching``)."""
    schema.add_field("doc_id", DataType.VARCHAR, max_length=_ID)
    schema.add_field("source", DataType.VARCHAR, max_length=_LONG)
    schema.add_field("day", DataType.INT64)
    schema.add_field(GENERATION, DataType.INT64)
    return schema


def _without_vector(schema):
    schema.add_field(NO_VECTOR, DataType.FLOAT_VECTOR, dim=len(NO_VECTOR_VALUE))
    return schema


def _manifest_schema(dimension: int):
    schema = _schema(auto_id=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("value", DataType.JSON)
    return _without_vector(schema)


def _document_schema(dimension: int):
    schema = _with_document_fields(_schema(auto_id=True))
    schema.add_field("id", DataType.INT64, is_primary=True)
    for name in ("title", "url"):
        schema.add_field(name, DataType.VARCHAR, max_length=_LONG)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("story", DataType.VARCHAR, max_length=_ID)  # metadata's story id, "" when none
    schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
    schema.add_field("indexed_at", DataType.VARCHAR, max_length=32)
    schema.add_field("characters", DataType.INT64)
    schema.add_field("parts", DataType.INT64)
    for name in ("chunks", "sentences"):  # the rows it has there: a commit's counts need no scan
        schema.add_field(name, DataType.INT64)
    return _without_vector(schema)


def _text_schema(dimension: int):
    schema = _schema(auto_id=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=_ID)
    schema.add_field(GENERATION, DataType.INT64)
    schema.add_field("part", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=_LONG)
    return _without_vector(schema)


def _chunk_schema(dimension: int):
    # Milvus allocates the ids: unique across writers, and a chunk's id never changes.
    schema = _with_document_fields(_schema(auto_id=True))
    schema.add_field("id", DataType.INT64, is_primary=True)
    for name in ("ordinal", "start", "end"):
        schema.add_field(name, DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=_LONG)
    # What BM25 reads: ``bm25_texts`` of ``indexed_text`` (the title, then the chunk).
    schema.add_field("indexed", DataType.VARCHAR, max_length=_LONG, enable_analyzer=True, analyzer_params=ANALYZER)
    schema.add_field("words", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                 input_field_names=["indexed"], output_field_names=["words"]))
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    return schema


def _sentence_schema(dimension: int):
    schema = _with_document_fields(_schema(auto_id=True))
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("chunk_id", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    return schema


def _no_vector_index():
    index = MilvusClient.prepare_index_params()
    index.add_index(NO_VECTOR, index_type="FLAT", metric_type="L2")
    return index


def _vector_index():
    # Exact inner products on unit vectors, as the local backend's exact FAISS search.
    index = MilvusClient.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="IP")
    return index


def _chunk_index():
    index = _vector_index()
    tuning = {"bm25_k1": BM25_K1, "bm25_b": BM25_B}
    # pymilvus sends each parameter as its own key, which a server reads; Milvus Lite reads only
    # the one JSON "params" key that earlier clients sent, so it gets that as well.
    index.add_index("words", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                    params={**tuning, "params": tuning})
    return index
