"""The traced models answer exactly as the eager ones, for any length and number of passages."""

import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qa.embedding import Embedder  # noqa: E402
from qa.reading import ExtractiveReader  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.traced import frozen_trace  # noqa: E402

QUESTIONS = [
    "Who?",
    "When did the Canada-Ukraine security talks open?",
    "Which of the donor countries that met in Reykjavik in August pledged the most money for "
    "rebuilding the power grid, and how much of it had been paid out by the end of the year?",
]
SHORT = "The talks opened in Ottawa on Aug. 25, with both delegations present."
MEDIUM = ("Norway pledged 7.5 billion kroner for 2023. The Nansen programme, named after the explorer, "
          "funds military and civilian aid alike. ") * 3
# Longer than one window of the reader, so that it is read as several overlapping windows.
LONG = " ".join(f"In {1990 + i} the city of Lviv opened school number {i} near the river." for i in range(40))


# Both weight types, whatever this CPU's default is (int8 where the models run in float32).
@pytest.mark.parametrize("int8", [False, True])
def test_a_traced_question_encoder_gives_the_eager_vectors(int8):
    traced, eager = Embedder(query_int8=int8), Embedder(traced=False, query_int8=int8)
    assert isinstance(traced.query_forward, torch.jit.ScriptModule)  # traced, not the fallback
    assert not isinstance(eager.query_forward, torch.jit.ScriptModule)
    for question in QUESTIONS:
        assert np.allclose(traced.encode_query(question), eager.encode_query(question), atol=1e-6)


def test_a_traced_reader_reads_as_the_eager_one(reader):
    eager = ExtractiveReader.from_settings(Settings(traced_models=False))
    assert reader.extractor._forward is not reader.extractor.model
    assert eager.extractor._forward is eager.extractor.model
    for question in QUESTIONS:
        for passages in ([SHORT], [MEDIUM, SHORT], [SHORT, LONG, MEDIUM]):
            traced, plain = reader.read(question, passages, top_n=5), eager.read(question, passages, top_n=5)
            assert [(g.passage_index, g.start, g.end) for g in traced] == [(g.passage_index, g.start, g.end) for g in plain]
            assert [g.confidence for g in traced] == pytest.approx([g.confidence for g in plain], abs=1e-6)


class _Untraceable(torch.nn.Module):
    def forward(self, x):
        return "not a tensor"


def test_a_module_that_cannot_be_traced_runs_eagerly_with_a_warning(caplog):
    module = _Untraceable()
    with caplog.at_level(logging.WARNING, logger="qa.traced"):
        assert frozen_trace(module, args=(torch.ones(2),)) is module
    assert "_Untraceable runs untraced" in caplog.text

