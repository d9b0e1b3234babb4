"""Split documents into overlapping chunks measured in the embedding model's tokens.

langchain-text-splitters decides where the text breaks (paragraph, line, sentence, word,
character, in that order of preference). It is run without overlap and without stripping, so
its pieces tile the document exactly and their offsets are running sums, never a text search.
Overlap is then added here: each chunk starts with the tail of the piece before it, cut at a
sentence (or else word) boundary, so ``doc.text[chunk.start:chunk.end] == chunk.text`` always.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .documents import Document
from .sentences import next_sentence_start, strip_span

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SEPARATORS = ["\n\n", "\n", ". ", "! ", "? ", "; ", ", ", " ", ""]
_WORD_START = re.compile(r"\s+(?=\S)")


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str


class Chunker:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, chunk_tokens: int, overlap_tokens: int):
        if overlap_tokens >= chunk_tokens // 2:
            raise ValueError("chunk overlap must be under half the chunk size")
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        self.tokenizer = tokenizer
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self._splitter = RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            keep_separator="end",
            chunk_size=chunk_tokens - overlap_tokens,
            chunk_overlap=0,
            strip_whitespace=False,
            # Whitespace counts as one token here: with zero-length pieces langchain's merge
            # carries them into the next chunk, and the pieces would no longer tile the text.
            length_function=lambda piece: max(1, self.count_tokens(piece)) if piece else 0,
        )

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.tokenize(text))

    def split(self, doc: Document) -> list[Chunk]:
        text = doc.text
        spans = [(start, end) for start, end in self._pieces(text)]
        chunks = []
        for i, (start, end) in enumerate(spans):
            if i and self.overlap_tokens:
                start = self._overlap_start(text, *spans[i - 1])
            start, end = strip_span(text, start, end)
            if start < end:
                chunks.append(Chunk(doc.id, len(chunks), start, end, text[start:end]))
        return chunks

    def _pieces(self, text: str) -> list[tuple[int, int]]:
        """Contiguous (start, end) pieces covering ``text``, each within the size budget."""
        if self.count_tokens(text) <= self.chunk_tokens:
            return [(0, len(text))]
        spans, cursor = [], 0
        for piece in self._splitter.split_text(text):
            if not text.startswith(piece, cursor):
                raise AssertionError("text splitter pieces do not tile the document")
            spans.append((cursor, cursor + len(piece)))
            cursor += len(piece)
        if cursor != len(text):
            raise AssertionError("text splitter dropped text")
        return spans

    def _overlap_start(self, text: str, prev_start: int, prev_end: int) -> int:
        """Where the previous piece's last ``overlap_tokens`` tokens begin, moved to a boundary."""
        previous = text[prev_start:prev_end]
        offsets = self.tokenizer(previous, add_special_tokens=False,
                                 return_offsets_mapping=True)["offset_mapping"]
        # Never the whole previous piece, or one chunk would contain the other.
        first = max(1, len(offsets) - self.overlap_tokens)
        if first >= len(offsets):
            return prev_end
        earliest = offsets[first][0]
        start = next_sentence_start(previous, earliest)
        if start is None:
            word = _WORD_START.search(previous, earliest)
            start = word.end() if word else len(previous)
        return prev_start + start

