"""Offline by construction: no sockets except loopback; one real model per test session."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

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


@pytest.fixture(scope="session")
def embedder():
    from qa.embedding import Embedder

    return Embedder()


@pytest.fixture
def settings(tmp_path):
    from qa.settings import Settings

    return Settings(index_dir=tmp_path / "index", corpus_dir=DEMO_CORPUS)


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory, embedder):
    """The demo corpus indexed once for the whole session (read-only for tests)."""
    from qa.indexing import index_corpus
    from qa.settings import Settings

    settings = Settings(index_dir=tmp_path_factory.mktemp("demo") / "index", corpus_dir=DEMO_CORPUS)
    index_corpus(DEMO_CORPUS, settings, embedder)
    return settings


@pytest.fixture
def corpus_copy(tmp_path):
    target = tmp_path / "corpus"
    shutil.copytree(DEMO_CORPUS, target)
    return target
