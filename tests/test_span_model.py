"""Fast tests of the span reader on a tiny randomly initialised BERT (no training, no downloads)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from qa.sentences import sentence_spans  # noqa: E402
from qa.span_model import (  # noqa: E402
    SpanExtractor,
    _trim_span,
    inject_lora,
    keep_layers,
    load_qa_model,
    read_adapter_metadata,
    save_adapter,
)

QUESTION = "Who won the Super Bowl?"
PASSAGES = [
    "The Denver Broncos won the Super Bowl in 2016, beating the Carolina Panthers.",
    "The game was played in Santa Clara, California (near the river).",
]
LONG_PASSAGE = " ".join(f"The team of city {i} won a game in the year {1900 + i}." for i in range(40))


@pytest.fixture(scope="module")
def extractor(tiny_model_dir) -> SpanExtractor:
    tokenizer, model = load_qa_model(str(tiny_model_dir), None)
    return SpanExtractor(tokenizer, model, max_length=64, stride=16, max_answer_tokens=8)


def _token_boundaries(tokenizer, passage):
    offsets = tokenizer(passage, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
    return {s for s, _ in offsets}, {e for _, e in offsets}


def test_import_does_not_load_torch():
    code = "import sys, qa.span_model; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_candidates_are_token_aligned_sorted_and_unique(extractor):
    candidates = extractor.extract(QUESTION, PASSAGES, top_n=10)
    assert len(candidates) == 10
    scores = [c.score for c in candidates]
    assert scores == sorted(scores, reverse=True)
    assert len({(c.passage_index, c.start, c.end) for c in candidates}) == len(candidates)
    for c in candidates:
        passage = PASSAGES[c.passage_index]
        assert 0 <= c.start < c.end <= len(passage)
        starts, ends = _token_boundaries(extractor.tokenizer, passage)
        assert c.start in starts and c.end in ends
        assert passage[c.start : c.end] == passage[c.start : c.end].strip()
        assert np.isfinite(c.null_score)


def test_top_n_is_honoured(extractor):
    assert len(extractor.extract(QUESTION, PASSAGES, top_n=1)) == 1
    assert len(extractor.extract(QUESTION, PASSAGES, top_n=3)) == 3
    assert extractor.extract(QUESTION, PASSAGES, top_n=0) == []
    assert extractor.extract(QUESTION, [], top_n=3) == []


def _sentence_of(passage: str, position: int) -> int:
    return next(k for k, (_, end) in enumerate(sentence_spans(passage)) if position < end)


@pytest.mark.parametrize("passages", [PASSAGES, [LONG_PASSAGE]])
def test_best_span_matches_brute_force(extractor, passages):
    """The best score over every span of at most max_answer_tokens tokens inside one sentence."""
    encoding, start, end = extractor.logits(QUESTION, passages)
    best = -np.inf
    for w in range(start.shape[0]):
        passage = passages[encoding["overflow_to_sample_mapping"][w]]
        context = [k for k, sid in enumerate(encoding.sequence_ids(w)) if sid == 1]
        sentence = {k: _sentence_of(passage, encoding["offset_mapping"][w][k][0]) for k in context}
        for i in context:
            for j in context:
                if i <= j < i + extractor.max_answer_tokens and sentence[i] == sentence[j]:
                    best = max(best, start[w, i] + end[w, j])
    assert extractor.extract(QUESTION, passages, top_n=1)[0].score == pytest.approx(best, abs=1e-5)


def test_no_span_crosses_a_sentence_end(extractor):
    """Of thousands of spans over 40 short sentences (an untrained model scores spans at random), none
    runs from one sentence into the next."""
    candidates = extractor.extract(QUESTION, [LONG_PASSAGE], top_n=2000)
    assert len(candidates) > 1000
    sentences = sentence_spans(LONG_PASSAGE)
    assert all(any(s <= c.start and c.end <= e for s, e in sentences) for c in candidates)


def test_long_passage_uses_overflow_windows(extractor):
    encoding, _, _ = extractor.logits(QUESTION, [LONG_PASSAGE, PASSAGES[0]])
    windows = list(encoding["overflow_to_sample_mapping"])
    assert windows.count(0) > 3 and windows.count(1) == 1
    candidates, nulls = extractor.extract_with_nulls(QUESTION, [LONG_PASSAGE, PASSAGES[0]], top_n=5000)
    assert len(nulls) == 2 and all(np.isfinite(nulls))
    long_spans = [c for c in candidates if c.passage_index == 0]
    # spans from late windows are found, and every span stays inside the passage
    assert max(c.end for c in long_spans) > 0.9 * len(LONG_PASSAGE)
    assert all(0 <= c.start < c.end <= len(LONG_PASSAGE) for c in long_spans)
    assert {c.passage_index for c in candidates} == {0, 1}


def test_trim_span():
    text = 'He said "(Denver Broncos)." then, left'
    assert text[slice(*_trim_span(text, 8, 26))] == "(Denver Broncos)"
    assert text[slice(*_trim_span(text, 9, 24))] == "Denver Broncos"
    assert text[slice(*_trim_span(text, 27, 33))] == "then"
    assert _trim_span("U.S.", 0, 4) == (0, 4)
    assert _trim_span("a , b", 2, 3) == (2, 3)  # punctuation-only spans are left alone


def test_lora_save_and_merge_round_trip(tiny_model_dir, tmp_path):
    tokenizer, model = load_qa_model(str(tiny_model_dir), None)
    adapted = inject_lora(model, rank=4, alpha=8.0)
    assert len(adapted) == 2 * 6
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:  # pretend training moved every trainable parameter
                param.add_(0.1 * torch.randn_like(param))
    path = tmp_path / "adapter.safetensors"
    saved = save_adapter(model, str(path), base_model="tiny-test")
    assert any(k.endswith(".lora_A") for k in saved) and "qa_outputs.weight" in saved
    assert any("LayerNorm" in k for k in saved)
    metadata = read_adapter_metadata(str(path))
    assert (metadata["rank"], metadata["alpha"], metadata["base_model"]) == ("4", "8.0", "tiny-test")

    with torch.no_grad():  # the file is fp16: compare against the same rounded values
        for param in model.parameters():
            if param.requires_grad:
                param.copy_(param.half().float())
    model.eval()
    inputs = tokenizer([QUESTION] * 2, PASSAGES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs)
    _, merged = load_qa_model(str(tiny_model_dir), str(path))
    assert not any(hasattr(m, "lora_A") for m in merged.modules())
    with torch.no_grad():
        got = merged(**inputs)
    torch.testing.assert_close(got.start_logits, expected.start_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.end_logits, expected.end_logits, atol=1e-4, rtol=1e-4)


def test_an_adapter_trained_on_fewer_layers_loads_as_that_shallower_model(tiny_model_dir, tmp_path):
    tokenizer, model = load_qa_model(str(tiny_model_dir), None)
    with pytest.raises(ValueError, match="cannot keep 3"):
        keep_layers(model, 3)
    keep_layers(model, 1)
    inject_lora(model, rank=4, alpha=8.0)
    path = tmp_path / "adapter.safetensors"
    save_adapter(model, str(path), base_model="tiny-test", extra={"layers": 1})
    model.eval()
    inputs = tokenizer([QUESTION], PASSAGES[:1], return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs)
    _, loaded = load_qa_model(str(tiny_model_dir), str(path))
    assert len(loaded.base_model.encoder.layer) == loaded.config.num_hidden_layers == 1
    with torch.no_grad():
        got = loaded(**inputs)
    torch.testing.assert_close(got.start_logits, expected.start_logits, atol=1e-4, rtol=1e-4)
