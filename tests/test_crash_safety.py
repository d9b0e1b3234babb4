"""kill -9 of an indexing run at any moment leaves the last committed index intact."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from qa.indexing import index_corpus
from qa.loaders import load_corpus

from .helpers import committed_state

pytestmark = pytest.mark.slow

# The child indexes CORPUS into INDEX and SIGKILLs itself on the N-th call of TARGET.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    target, nth, corpus, index = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    import faiss, shutil
    import qa.store.generations as store, qa.word_counts as word_counts, qa.embedding as embedding
    owners = {"encode": (embedding.Embedder, "encode"), "upsert": (store.IndexWriter, "upsert"),
              "write_index": (faiss, "write_index"), "save_words": (word_counts.WordCounts, "save"),
              "rows_committed": (store, "asdict"),
              "fsync_tree": (store, "_fsync_tree"), "rename": (store.os, "rename"),
              "replace": (store.os, "replace"), "rmtree": (store.shutil, "rmtree"),
              "after_replace": (store.os, "replace")}
    owner, name = owners[target]
    original = getattr(owner, name)
    calls = [0]
    def dying(*args, **kwargs):
        calls[0] += 1
        if target == "after_replace":
            result = original(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        if calls[0] >= nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    setattr(owner, name, dying)
    from qa.settings import Settings
    from qa.indexing import index_corpus
    index_corpus(Path(corpus), Settings(index_dir=Path(index), chunk_tokens=48, chunk_overlap=8),
                 embedding.Embedder())
    print("finished without being killed")
""")

# "rows_committed": after the SQLite commit of the new generation's rows, before its manifest.
KILL_POINTS = [("encode", 1), ("upsert", 1), ("upsert", 2), ("write_index", 1), ("save_words", 1),
               ("fsync_tree", 1), ("rename", 1), ("rows_committed", 1), ("replace", 1), ("after_replace", 1),
               ("rmtree", 1)]


def _version(corpus, n):
    corpus.mkdir(exist_ok=True)
    for path in corpus.iterdir():
        path.unlink()
    for i in range(8):
        if n == 2 and i == 0:
            continue  # deleted in version 2
        body = f"Document {i} reports that the talks in city {i} covered item {i}. " * (6 + i)
        if n == 2 and i == 1:
            body = "This document changed in version two. " * 8
        (corpus / f"d{i}.txt").write_text(f"Title: Doc {i}\n\n{body}")
    if n == 2:
        (corpus / "new.txt").write_text("Title: New\n\n" + "A newly added document. " * 10)
    return {d.id: d.content_hash for d in load_corpus(corpus).documents}


@pytest.fixture
def two_versions(tmp_path, embedder):
    from qa.settings import Settings

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    settings = Settings(index_dir=index, chunk_tokens=48, chunk_overlap=8)
    _version(corpus, 1)
    (corpus / "d7.txt").write_text("Title: Doc 7\n\nA draft that was replaced. " * 3)
    index_corpus(corpus, settings, embedder)
    old = _version(corpus, 1)
    index_corpus(corpus, settings, embedder)  # two generations: the next commit retires one
    new = _version(corpus, 2)
    return corpus, index, settings, old, new


def _assert_old_or_new(index, old, new):
    state = committed_state(index)
    assert state in (old, new), "index holds a mix of two versions"
    return "new" if state == new else "old"


def _run_child(args, timeout=120):
    return subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("target,nth", KILL_POINTS)
def test_kill_at_each_stage_of_a_commit(two_versions, embedder, target, nth):
    corpus, index, settings, old, new = two_versions
    child = _run_child([target, str(nth), str(corpus), str(index)])
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    state = _assert_old_or_new(index, old, new)
    assert state == ("new" if target in ("after_replace", "rmtree") else "old")
    # The next run repairs nothing by hand and reaches the new version.
    index_corpus(corpus, settings, embedder)
    assert _assert_old_or_new(index, old, new) == "new"
    assert not list(index.glob("*.tmp"))


def test_kill_at_random_moments(two_versions, embedder):
    corpus, index, settings, old, new = two_versions
    rng = random.Random(1234)
    for delay in sorted(rng.uniform(0.5, 9.0) for _ in range(4)):
        process = subprocess.Popen([sys.executable, "-c", CHILD, "encode", "999", str(corpus), str(index)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        _assert_old_or_new(index, old, new)
    index_corpus(corpus, settings, embedder)
    assert _assert_old_or_new(index, old, new) == "new"


def test_readers_never_see_a_mix_while_a_writer_commits(two_versions, embedder):
    corpus, index, settings, old, new = two_versions
    seen, errors = set(), []
    stop = threading.Event()

    def read_repeatedly():
        while not stop.is_set():
            try:
                seen.add(_assert_old_or_new(index, old, new))
            except Exception as exc:  # collected and reported below
                errors.append(exc)

    thread = threading.Thread(target=read_repeatedly)
    thread.start()
    try:
        for version in (2, 1, 2):
            _version(corpus, version)
            writer = subprocess.run([sys.executable, "-m", "qa.cli", "index", str(corpus), "--index",
                                     str(index), "--quiet"], capture_output=True, text=True, timeout=180,
                                    env={**os.environ, "QA_CHUNK_TOKENS": "48", "QA_CHUNK_OVERLAP": "8"})
            assert writer.returncode == 0, writer.stderr
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert seen == {"old", "new"}
