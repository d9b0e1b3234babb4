"""bfloat16 is chosen only on CPUs with native instructions, and gives the same results as float32."""

import numpy as np
import pytest

from qa.embedding import Embedder
from qa.precision import cpu_has_native_bf16, resolve_precision
from qa.reading import ExtractiveReader
from qa.settings import Settings


def _cpuinfo(tmp_path, name: str, flags: str):
    path = tmp_path / name
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return path


def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path):
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, "zen4", "fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni"))
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, "sapphire-rapids", "fpu avx2 amx_bf16 amx_tile"))
    # AVX-512 alone only emulates bfloat16, which is slower than float32.
    assert not cpu_has_native_bf16(_cpuinfo(tmp_path, "skylake", "fpu sse2 avx2 avx512f avx512bw"))
    assert not cpu_has_native_bf16(tmp_path / "no-such-file")


def test_the_speed_flags_recorded_beside_timings(tmp_path, monkeypatch):
    from qa import precision

    zen4 = precision.cpu_flags(_cpuinfo(tmp_path, "zen4-flags", "fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni"))
    monkeypatch.setattr(precision, "cpu_flags", lambda: zen4)
    assert precision.speed_flags() == "avx2 avx512f avx512_vnni avx512_bf16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"fpu", "sse2"}))
    assert precision.speed_flags().startswith("none of avx2")


def test_auto_follows_the_cpu_and_explicit_choices_are_kept(monkeypatch):
    import qa.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto") == "bfloat16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto") == "float32"
    assert resolve_precision("bfloat16") == "bfloat16" and resolve_precision("float32") == "float32"


def test_precision_is_a_setting(monkeypatch):
    monkeypatch.setenv("QA_PRECISION", "float32")
    assert Settings().precision == "float32"
    monkeypatch.setenv("QA_PRECISION", "float16")
    with pytest.raises(ValueError):
        Settings()


@pytest.mark.slow
def test_bfloat16_embeddings_match_float32():
    texts = ["The Broncos won the game in Santa Clara.", "A river runs through the old city."]
    reference = Embedder(precision="float32").encode(texts)
    fast = Embedder(precision="bfloat16").encode(texts)
    assert fast.dtype == np.float32
    assert np.all(np.sum(reference * fast, axis=1) > 0.99)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_question_is_encoded_as_a_batch_of_one_would_be(precision):
    embedder = Embedder(precision=precision, query_int8=False)
    questions = ["Who won the game in Santa Clara?", "river", "Wie heißt die Stadt am Fluss?"]
    batch = embedder.encode(questions)
    single = np.stack([embedder.encode_query(q) for q in questions])
    assert single.dtype == batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(single, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1, atol=1e-5)
    assert np.all(np.sum(single * batch, axis=1) > 0.999)


@pytest.mark.slow
def test_int8_question_vectors_find_the_same_texts_and_leave_the_indexing_model_alone():
    texts = ["The Broncos beat the Panthers in the final at Levi's Stadium in Santa Clara.",
             "Norway pledged 7.5 billion kroner of military and civilian aid for 2023.",
             "Eight pilots began training on F-16 fighter jets at an air base in Denmark."]
    questions = ["Where was the final played?", "How much aid did Norway pledge?", "Where do the pilots train?"]
    embedder = Embedder(precision="float32")
    assert embedder.query_int8 and not Embedder(precision="bfloat16").query_int8  # the defaults
    indexed = embedder.encode(texts)
    exact = Embedder(precision="float32", query_int8=False)
    for number, question in enumerate(questions):
        vector = embedder.encode_query(question)
        assert float(vector @ exact.encode_query(question)) > 0.9
        assert int(np.argmax(indexed @ vector)) == number
    assert np.array_equal(embedder.encode(texts), indexed)  # texts are still embedded in float32


@pytest.mark.slow
def test_bfloat16_reader_picks_the_same_answer():
    passage = ("The final was played on 7 February 2016 at Levi's Stadium in Santa Clara. "
               "Denver beat Carolina 24 to 10 and Von Miller was named the most valuable player.")
    question = "Who was named the most valuable player?"
    answers = []
    for precision in ("float32", "bfloat16"):
        guess = ExtractiveReader(precision=precision).read(question, [passage], top_n=1)[0]
        answers.append((passage[guess.start:guess.end], guess.confidence))
    assert answers[0][0] == answers[1][0] == "Von Miller"
    assert answers[0][1] == pytest.approx(answers[1][1], abs=0.05)


@pytest.mark.slow
def test_an_int8_reader_is_traced_and_reads_as_it_would_untraced():
    passages = ["Denver beat Carolina 24 to 10 and Von Miller was named the most valuable player.",
                "The final was played on 7 February 2016 at Levi's Stadium in Santa Clara."]
    question = "Where was the final played?"
    traced, plain = ExtractiveReader(quantize=True), ExtractiveReader(quantize=True, traced=False)
    guesses = traced.read(question, passages, top_n=3)
    assert traced.extractor._forward is not traced.extractor.model
    assert guesses == plain.read(question, passages, top_n=3)
    assert passages[guesses[0].passage_index][guesses[0].start:guesses[0].end] == "Levi's Stadium"
