"""Checks shared by the crash and write-fault tests (what a committed index holds, what a writer left),
and the `qa` command run in process."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from click.testing import CliRunner, Result

from qa.store import IndexReader, Manifest, committed_generation
from qa.store.rows import STORE


def run_qa(*args: str, **env: str) -> Result:
    """`qa ARGS` in this process, with ``env`` as extra environment variables; stdout and stderr apart."""
    from qa.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], env=env or None, prog_name="qa")


def committed_state(index_dir: Path) -> dict[str, str]:
    """{document id: content hash} of the committed index, after checking that it is whole.

    Beyond ``verify`` (vectors, chunk rows, BM25 rows, manifest agree), every chunk must cut its
    document's stored text exactly: chunks left from another version of a document would not.
    """
    reader = IndexReader.open(Path(index_dir))
    try:
        reader.verify()
        hashes = reader.document_hashes()
        chunks = reader.chunks(reader.chunk_ids_matching().tolist())
        texts = {doc_id: doc.text for doc_id, doc in reader.documents(list(hashes)).items()}
    finally:
        reader.close()
    torn = [c.id for c in chunks if texts[c.doc_id][c.start:c.end] != c.text]
    assert not torn, f"chunks {torn[:5]} do not match their document's text"
    return hashes


def leftovers(index_dir: Path) -> list[str]:
    """What a finished writer must not leave: staging folders, generations CURRENT does not name
    (beyond the one spare kept for readers), CURRENT.tmp, segments neither of those names."""
    index_dir = Path(index_dir)
    current = committed_generation(index_dir)
    generations = [index_dir / f"gen-{g:06d}" for g in (current, current - 1)]
    keep = {"CURRENT", ".lock", "segments", *(f"{STORE}{end}" for end in ("", "-wal", "-shm"))}
    left = sorted(p.name for p in index_dir.iterdir() if p.name not in keep | {g.name for g in generations})
    named = {name for g in generations if (g / "manifest.json").is_file()
             for name, _ in Manifest.read(g / "manifest.json").segments}
    if (index_dir / "segments").is_dir():
        left += sorted(f"segments/{p.name}" for p in (index_dir / "segments").iterdir() if p.name not in named)
    return left


def lock_is_free(index_dir: Path) -> bool:
    with open(Path(index_dir) / ".lock", "rb") as handle:  # read-only: works on a read-only mount too
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return True


def open_files(under: Path) -> list[str]:
    """Files under ``under`` that this process still has open."""
    root = Path(under).resolve()
    paths = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = Path(os.readlink(fd))
        except OSError:  # closed while listing
            continue
        if target.is_relative_to(root):
            paths.append(str(target))
    return paths
