"""A full disk or a read-only index directory: a clear error, and the previous index stays intact.

Faults are injected at each step of a write (always run); a real full tmpfs and a real read-only
bind mount are used where this process may mount (root with CAP_SYS_ADMIN), else skipped.
"""

import errno
import os
import shutil
import subprocess
from pathlib import Path

import faiss
import pytest
from fastapi.testclient import TestClient

import qa.embedding
import qa.store.generations as store
from api import create_app
from qa.errors import IndexFull, IndexReadOnly, IndexWriteFailed
from qa.indexing import index_corpus, write_documents
from qa.loaders import load_corpus
from qa.pipeline import Pipeline
from qa.settings import Settings
from qa.word_counts import WordCounts

from .helpers import committed_state, leftovers, lock_is_free, open_files, run_qa

pytestmark = pytest.mark.slow

CHUNKING = {"chunk_tokens": 48, "chunk_overlap": 8}
V1 = {f"d{i}.txt": f"Title: Doc {i}\n\n" + f"Report {i} says the talks in city {i} covered item {i}. " * (5 + i)
      for i in range(5)}
V2 = {**V1, "d1.txt": "Title: Doc 1\n\n" + "The second version of report one. " * 9,
      "new.txt": "Title: New\n\n" + "A report added later about the river. " * 8}
# The same change as V2, as API records.
RECORDS = [{"id": "d1.txt", "title": "Doc 1", "text": "The second version of report one. " * 9},
           {"id": "new.txt", "title": "New", "text": "A report added later about the river. " * 8}]
QUESTION = {"question": "What did the talks in city 3 cover?"}


def _write_corpus(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        path.unlink()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="module")
def base(tmp_path_factory, embedder):
    """An index of V1 built once, with the state before and after the V2 change."""
    root = tmp_path_factory.mktemp("faults")
    index_dir = root / "index"
    old_corpus = _write_corpus(root / "v1", V1)
    index_corpus(old_corpus, Settings(index_dir=index_dir, **CHUNKING), embedder)
    new_corpus = _write_corpus(root / "v2", V2)
    old = committed_state(index_dir)
    new = {d.id: d.content_hash for d in load_corpus(new_corpus).documents}
    return index_dir, new_corpus, old, new


def _copy_index(base, target: Path) -> Settings:
    shutil.copytree(base[0], target)
    return Settings(index_dir=target, **CHUNKING)


def _assert_untouched(index_dir: Path, old: dict[str, str]) -> None:
    assert committed_state(index_dir) == old
    assert leftovers(index_dir) == [], "a failed write left files behind"
    assert lock_is_free(index_dir)


def _assert_one_clear_line(message: str, index_dir: Path, problem: str) -> None:
    assert "\n" not in message
    assert problem in message and str(index_dir) in message
    assert message.endswith("the previous index is intact")


def _fails_with(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def _vectors_fill_the_disk(monkeypatch, index_dir):
    """The vectors file gets its first 4 KiB written, then the device is full."""
    real_writer = faiss.PyCallbackIOWriter

    def writer(write, *args):
        written = [0]

        def filling(data):
            written[0] += len(data)
            if written[0] > 4096:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write(data)
        return real_writer(filling, *args)
    monkeypatch.setattr(faiss, "PyCallbackIOWriter", writer)


def _in_index(call, code):
    """Fail ``call`` (os.rename / os.replace) with ``code`` only for paths in the index."""
    def patch(monkeypatch, index_dir):
        real = getattr(os, call)

        def failing(source, target, *args, **kwargs):
            if Path(target).parent == index_dir:
                raise OSError(code, os.strerror(code))
            return real(source, target, *args, **kwargs)
        monkeypatch.setattr(os, call, failing)
    return patch


FAULTS = {
    "words-no-space": (lambda mp, _: mp.setattr(WordCounts, "save", _fails_with(errno.ENOSPC)),
                       IndexFull, "no space left on device"),
    "vectors-disk-fills": (_vectors_fill_the_disk, IndexFull, "no space left on device"),
    "fsync-io-error": (lambda mp, _: mp.setattr(os, "fsync", _fails_with(errno.EIO)),
                       IndexWriteFailed, "input/output error"),
    "rename-read-only": (_in_index("rename", errno.EROFS), IndexReadOnly, "read-only file system"),
    # The generation is already renamed into place; only CURRENT does not name it yet.
    "commit-point-no-space": (_in_index("replace", errno.ENOSPC), IndexFull, "no space left on device"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failed_write_leaves_the_previous_index(fault, base, embedder, tmp_path, monkeypatch):
    _, new_corpus, old, new = base
    settings = _copy_index(base, tmp_path / "index")
    inject, expected, problem = FAULTS[fault]
    inject(monkeypatch, settings.index_dir)
    documents = load_corpus(new_corpus).documents
    with pytest.raises(expected) as failure:
        write_documents(documents, settings, embedder, remove_missing=True)
    _assert_one_clear_line(str(failure.value), settings.index_dir, problem)
    _assert_untouched(settings.index_dir, old)
    assert open_files(settings.index_dir) == []

    monkeypatch.undo()  # the disk is fine again: the next write needs no repair
    write_documents(documents, settings, embedder, remove_missing=True)
    assert committed_state(settings.index_dir) == new
    assert leftovers(settings.index_dir) == []


@pytest.mark.parametrize("code,status,error_code", [
    (errno.ENOSPC, 507, "insufficient_storage"),
    (errno.EROFS, 503, "index_read_only"),
    (errno.EIO, 500, "index_write_failed"),
])
def test_api_write_errors_have_the_one_error_shape(code, status, error_code, base, embedder, reader,
                                                    tmp_path, monkeypatch):
    old = base[2]
    settings = _copy_index(base, tmp_path / "index")
    # Every commit fsyncs its generation's folder, after its rows are committed: those are taken back.
    monkeypatch.setattr(store, "_fsync_tree", _fails_with(code))
    with TestClient(create_app(settings, Pipeline(settings, embedder=embedder, reader=reader))) as client:
        for response in (client.post("/api/documents", json={"documents": RECORDS}),
                         client.delete("/api/documents/d2.txt")):
            assert response.status_code == status, response.text
            body = response.json()
            assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
            assert body["error"]["code"] == error_code
            _assert_one_clear_line(body["error"]["message"], settings.index_dir, os.strerror(code).lower())
        _assert_untouched(settings.index_dir, old)
        assert client.post("/api/ask", json=QUESTION).status_code == 200
        assert client.get("/api/ready").json()["generation"] == store.committed_generation(settings.index_dir)


# Real devices --------------------------------------------------------------------------------------

@pytest.fixture
def mount(tmp_path):
    """mount(*args, target): a real mount, undone after the test; skips where mounting is not allowed."""
    mounted = []

    def do_mount(*args, target: Path):
        target.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting needs root")
        result = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount here: {result.stderr.strip()}")
        if target not in mounted:
            mounted.append(target)

    yield do_mount
    for target in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(target)], check=True)


def _fill(disk: Path, leave_bytes: int) -> None:
    """Write to ``disk`` until it is full, then give back ``leave_bytes``."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave_bytes))


def _run_cli(argv):
    result = run_qa(*argv)
    return result.exit_code, result.stderr.strip()


@pytest.fixture
def cli_env(monkeypatch, embedder):
    """The CLI in process, with this session's embedder (loading the model again proves nothing)."""
    for key, value in CHUNKING.items():
        monkeypatch.setenv(f"QA_{key.upper()}", str(value))
    monkeypatch.setattr(qa.embedding.Embedder, "from_settings", classmethod(lambda cls, settings: embedder))


def _room(kind: str) -> int:
    """Free bytes to leave: none (SQLite cannot open its shared memory), room for part of the new
    segment, or for the segment and not the rows' commit (measured on tmpfs with these documents)."""
    return {"none": 0, "segment": 32 * 1024, "rows": 64 * 1024}[kind]


# Where the disk runs out varies with the room left: opening the database, the segment, the rows.
@pytest.mark.parametrize("room", ["none", "segment", "rows"])
def test_full_disk(room, mount, base, embedder, reader, tmp_path, cli_env):
    _, new_corpus, old, new = base
    disk = tmp_path / "disk"
    mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", target=disk)
    settings = _copy_index(base, disk / "index")
    _fill(disk, _room(room))

    status, stderr = _run_cli(["index", str(new_corpus), "--index", str(settings.index_dir), "--quiet"])
    assert status == 2
    assert stderr.startswith("Error: ")
    _assert_one_clear_line(stderr, settings.index_dir, "no space left on device")
    _assert_untouched(settings.index_dir, old)

    with TestClient(create_app(settings, Pipeline(settings, embedder=embedder, reader=reader))) as client:
        response = client.post("/api/documents", json={"documents": RECORDS})
        assert response.status_code == 507, response.text
        assert response.json()["error"]["code"] == "insufficient_storage"
        _assert_untouched(settings.index_dir, old)
        assert client.post("/api/ask", json=QUESTION).status_code == 200

    (disk / "filler").unlink()  # space again: the same command succeeds without any repair
    status, stderr = _run_cli(["index", str(new_corpus), "--index", str(settings.index_dir), "--quiet"])
    assert status == 0, stderr
    assert committed_state(settings.index_dir) == new


def test_read_only_index_directory(mount, base, embedder, reader, tmp_path, cli_env):
    _, new_corpus, old, new = base
    settings = _copy_index(base, tmp_path / "index")
    mount("--bind", str(settings.index_dir), target=settings.index_dir)
    mount("-o", "remount,bind,ro", target=settings.index_dir)

    status, stderr = _run_cli(["index", str(new_corpus), "--index", str(settings.index_dir), "--quiet"])
    assert status == 2
    _assert_one_clear_line(stderr, settings.index_dir, "not writable (read-only file system)")
    _assert_untouched(settings.index_dir, old)

    with TestClient(create_app(settings, Pipeline(settings, embedder=embedder, reader=reader))) as client:
        for response in (client.post("/api/documents", json={"documents": RECORDS}),
                         client.delete("/api/documents/d2.txt")):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "index_read_only"
        assert client.post("/api/ask", json=QUESTION).status_code == 200
    _assert_untouched(settings.index_dir, old)

    subprocess.run(["mount", "-o", "remount,bind,rw", str(settings.index_dir)], check=True)
    status, stderr = _run_cli(["index", str(new_corpus), "--index", str(settings.index_dir), "--quiet"])
    assert status == 0, stderr
    assert committed_state(settings.index_dir) == new
