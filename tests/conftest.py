"""Offline by construction: no sockets except loopback; each real model loads once per test session;
no QA_* variable from the shell reaches a test."""

from __future__ import annotations

import os
import shutil
import socket
import string
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

pytest_plugins = ["pytester"]  # tests/test_environment.py runs a pytest session of its own

ROOT = Path(__file__).resolve().parent.parent
DEMO_CORPUS = ROOT / "corpus"
_LOOPBACK = ("127.", "::1", "localhost")
_real_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (host.startswith(_LOOPBACK) or self.family == socket.AF_UNIX):
        return _real_connect(self, address)
    raise OSError(f"tests are offline: connection to {address!r} blocked")


socket.socket.connect = _loopback_only


def _drop_qa_variables(patch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("QA_")]:
        patch.delenv(name)


@pytest.fixture(scope="session", autouse=True)
def _no_qa_variables_for_the_session():
    """The shared models and index are built from the defaults, whatever QA_* the shell exports
    (they come back when the session ends)."""
    with pytest.MonkeyPatch.context() as patch:
        _drop_qa_variables(patch)
        yield


@pytest.fixture(autouse=True)
def _no_qa_variables(monkeypatch):
    """Each test starts with no QA_* variable, even one an earlier test set without monkeypatch."""
    _drop_qa_variables(monkeypatch)


@pytest.fixture(scope="session")
def embedder():
    from qa.embedding import Embedder

    return Embedder()


@pytest.fixture(scope="session")
def reader():
    """The default shipped reader, shared by the session: its model loads once, on the first read."""
    from qa.reading import ExtractiveReader
    from qa.settings import Settings

    return ExtractiveReader.from_settings(Settings())


@pytest.fixture
def settings(tmp_path):
    from qa.settings import Settings

    return Settings(index_dir=tmp_path / "index")


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory, embedder):
    """The demo corpus indexed once for the whole session (read-only for tests)."""
    from qa.indexing import index_corpus
    from qa.settings import Settings

    settings = Settings(index_dir=tmp_path_factory.mktemp("demo") / "index")
    index_corpus(DEMO_CORPUS, settings, embedder)
    return settings


@pytest.fixture(scope="session")
def demo_pipeline(demo_index, embedder, reader):
    """A pipeline over the demo index with the session's models (read-only for tests)."""
    from qa.pipeline import Pipeline

    return Pipeline(demo_index, embedder=embedder, reader=reader)


@pytest.fixture
def corpus_copy(tmp_path):
    target = tmp_path / "corpus"
    shutil.copytree(DEMO_CORPUS, target)
    return target


TINY_WORDS = ("the a of in and to was who what when where team won super bowl denver broncos game field "
              "year city river").split()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised, tiny BERT extractive-QA model: plumbing, not accuracy."""
    import torch as torch_module
    import transformers as transformers_module

    directory = tmp_path_factory.mktemp("tiny-bert-qa")
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_WORDS + chars + ["##" + c for c in chars]
    (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = transformers_module.BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(directory)
    config = transformers_module.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch_module.manual_seed(0)
    transformers_module.BertForQuestionAnswering(config).save_pretrained(directory)
    return directory


