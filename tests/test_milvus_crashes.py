"""kill -9 of the API server, and of the Milvus Lite server, while documents are written to Milvus.

A `milvus-lite server` runs as its own process on a temporary data folder; the API runs with
QA_BACKEND=milvus in processes forked from one that loaded the models once (tests/forked_server.py),
so every write goes over HTTP through the real MilvusWriter. Writes are seeded random adds,
replaces and deletes; kills come at seeded moments.

After every kill (and, for Milvus, its restart on the same data): the committed index holds every
acknowledged write and the write in flight wholly or not at all; no document has two rows, parts
of another version's text, or chunks and sentences without its rows or of another version; the
API answers. While Milvus is down, a question and a write are a 503 at once. After every
acknowledged write Milvus holds no row that the committed generation does not see.

Now and then kill -9 cuts one of Milvus Lite's own segment files short and the restarted server
cannot load that collection: the API must then say its index is corrupt, and the rig starts
Milvus again on a fresh folder (a few such kills in a run are allowed, not more).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from qa.bench.live_server import Client, free_port, wait_ready
from qa.documents import Document
from qa.errors import BackendUnavailable
from qa.indexing import write_documents
from qa.loaders import document_from_record
from qa.settings import Settings
from qa.store.backends import MilvusAddress
from qa.store.milvus import MilvusIndex

from .milvus_lite import LiteServer, cut_vector_files_short
from .test_kill_api_writes import QUESTION, Write, Writes, _Forked, _record, _reply

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SEED = 9157
TRIALS = 20  # of each kind
EXTRA_AIMED = 20  # API kills at most added while none has left rows for the next writer
MAX_KILL_DELAY_S = 3.0  # after the first write of a trial is sent; a write takes 1-2.5 s here
# Half the kills aim at the end of the first write (its commit point and clean-up come last): at
# this share of the median write (the first write of a fresh process or Milvus takes longer).
AIMED = (0.85, 1.6)
TIMEOUT_S = 3  # QA_MILVUS_TIMEOUT_S
COLLECTION = "crashes"


@dataclass
class Trial:
    kind: str  # "api" or "milvus": which process was killed
    delay_s: float
    acknowledged: int = 0
    in_flight: Write | None = None
    # old: the write in flight was lost; new: it was applied; idle: none in flight;
    # engine-lost: the restarted Milvus Lite could not load its own files
    outcome: str = ""
    cleaning: bool = False  # killed after the commit point, before its clean-up was done
    left_rows: int = 0  # rows no reader sees, left for the next writer to delete
    recovered_s: float = 0.0  # from the restart to the first answer


@dataclass
class Rig:
    lite: LiteServer
    helper: subprocess.Popen
    log: Path
    writes: Writes
    index: MilvusIndex
    settings: Settings
    embedder: object
    durations: list[float] = field(default_factory=lambda: [2.0])  # of acknowledged writes
    fresh_starts: int = 0

    def start_afresh(self) -> None:
        """Milvus Lite again on a new, empty data folder (same port), holding the first documents."""
        self.lite.kill()
        self.fresh_starts += 1
        self.lite.data_dir = self.lite.data_dir.with_name(f"data-{self.fresh_starts}")
        self.lite.start()
        self.index = _first_documents(self.settings, self.embedder)
        self.writes.state = committed_state(self.index)

    def delay(self, moment: tuple[bool, float]) -> float:
        aimed, u = moment
        if not aimed:
            return u * MAX_KILL_DELAY_S
        return sorted(self.durations)[len(self.durations) // 2] * (AIMED[0] + u * (AIMED[1] - AIMED[0]))

    def serve(self) -> tuple[int, Client]:
        """A forked API server, ready; its pid and a client."""
        port = free_port()
        self.helper.stdin.write(f"serve {port}\n")
        self.helper.stdin.flush()
        pid = int(_reply(self.helper, "pid ", self.log))
        wait_ready(port, _Forked(pid), timeout_s=120)
        return pid, Client(port, timeout_s=60)

    def reaped(self) -> int:
        return int(_reply(self.helper, "exit ", self.log))


def _env(lite: LiteServer) -> dict[str, str]:
    return {"QA_BACKEND": "milvus", "QA_MILVUS_URI": lite.uri, "QA_MILVUS_COLLECTION": COLLECTION,
            "QA_MILVUS_TIMEOUT_S": str(TIMEOUT_S), "QA_CHUNK_TOKENS": "48", "QA_CHUNK_OVERLAP": "8",
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def rig(tmp_path_factory, embedder):
    folder = tmp_path_factory.mktemp("milvus-crashes")
    lite = LiteServer(folder / "data").start()
    settings = Settings(backend="milvus", milvus_uri=lite.uri, milvus_collection=COLLECTION,
                        milvus_timeout_s=TIMEOUT_S, chunk_tokens=48, chunk_overlap=8)
    log = folder / "forked.log"
    with open(log, "w") as stderr:  # it loads its models while this process writes the first documents
        helper = subprocess.Popen([sys.executable, "-m", "tests.forked_server"], cwd=ROOT, text=True,
                                  env={**os.environ, **_env(lite)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=stderr)
    try:
        index = _first_documents(settings, embedder)
        _reply(helper, "loaded", log)
        yield Rig(lite, helper, log, Writes(random.Random(SEED), committed_state(index)), index, settings, embedder)
    finally:
        helper.stdin.close()
        helper.wait(timeout=60)
        lite.stop()


def _first_documents(settings: Settings, embedder) -> MilvusIndex:
    """Six documents written to the rig's Milvus; its index, with a client of this process."""
    rng = random.Random(SEED)
    write_documents([document_from_record(_record(f"d{i}", 0, rng)) for i in range(6)], settings, embedder)
    return MilvusIndex(MilvusAddress(settings.milvus_uri, COLLECTION, None, TIMEOUT_S))


def _rows(index: MilvusIndex, collection: str, where: str, fields: list[str]) -> list[dict]:
    return list(index.milvus.rows(collection, where, fields))


def committed_state(index: MilvusIndex) -> dict[str, str]:
    """{document id: content hash} of the committed generation, after checking that it is whole:
    one document row each, its text parts all of its version, every chunk and sentence of the
    same version as its document and cutting the document's text exactly."""
    backend = index.open()
    names, visible = index.names, backend.visible
    rows = _rows(index, names.documents, visible, ["doc_id", "generation", "content_hash", "parts"])
    versions = {row["doc_id"]: row["generation"] for row in rows}
    assert len(versions) == len(rows), f"documents seen twice: {Counter(r['doc_id'] for r in rows).most_common(3)}"
    documents = backend.documents(sorted(versions))
    for row in rows:
        doc = documents[row["doc_id"]]
        assert doc.content_hash == row["content_hash"], f"{doc.id}: its text is not that of its version"
    parts = Counter((r["doc_id"], r["generation"]) for r in _rows(index, names.texts, visible, ["doc_id", "generation"]))
    assert parts == Counter({(r["doc_id"], r["generation"]): r["parts"] for r in rows if r["parts"]})
    chunks = {r["id"]: r for r in _rows(index, names.chunks, visible, ["id", "doc_id", "generation", "start", "end",
                                                                        "text"])}
    for chunk in chunks.values():
        assert versions.get(chunk["doc_id"]) == chunk["generation"], f"chunk {chunk} has no document of its version"
        assert documents[chunk["doc_id"]].text[chunk["start"]:chunk["end"]] == chunk["text"]
    assert {r["doc_id"] for r in chunks.values()} == set(versions)
    for sentence in _rows(index, names.sentences, visible, ["chunk_id", "doc_id", "generation"]):
        chunk = chunks.get(sentence["chunk_id"])
        assert chunk and (chunk["doc_id"], chunk["generation"]) == (sentence["doc_id"], sentence["generation"])
    manifest = backend.manifest
    assert (manifest.documents, manifest.chunks) == (len(rows), len(chunks))
    return {row["doc_id"]: row["content_hash"] for row in rows}


def invisible_rows(index: MilvusIndex) -> int:
    """Rows that the committed generation does not see: a writer's leftovers, or garbage."""
    visible = index.open().visible
    count = 0
    for name in index.names.data():
        every, seen = (index.milvus.query(name, filter=where, output_fields=["count(*)"])[0]["count(*)"]
                       for where in ("", visible))
        count += every - seen
    return count


def _write_until_killed(client: Client, kill, rig: Rig, trial: Trial) -> None:
    """Write until a write fails, ``kill`` called ``trial.delay_s`` after the first write is sent."""
    killed = threading.Event()

    def fire() -> None:
        killed.set()
        kill()

    killer = threading.Timer(trial.delay_s, fire)
    killer.start()
    try:
        while True:
            trial.in_flight = rig.writes.next()
            started = time.monotonic()
            try:
                status, body = client.call(trial.in_flight.method, trial.in_flight.path, trial.in_flight.body)
            except (OSError, http.client.HTTPException):
                return  # the API server died
            if status == 503:  # Milvus died
                assert body["error"]["code"] == "backend_unavailable", body
                return
            assert status == 200, body
            rig.durations.append(time.monotonic() - started)
            rig.writes.state, trial.in_flight = trial.in_flight.after, None
            trial.acknowledged += 1
            # The writer is done until the next request: nothing may stay that readers do not see.
            try:
                assert invisible_rows(rig.index) == 0
            except BackendUnavailable:
                if not killed.is_set():  # not killed yet: Milvus must answer
                    raise
                return  # killed between writes: nothing in flight
    finally:
        killer.join()


def _check_after_kill(rig: Rig, trial: Trial) -> None:
    trial.left_rows = invisible_rows(rig.index)
    trial.cleaning = rig.index.open().commit.garbage
    state = committed_state(rig.index)
    if state == rig.writes.state:
        trial.outcome = "old" if trial.in_flight else "idle"
    else:
        assert trial.in_flight is not None and state == trial.in_flight.after, (
            "the index lost an acknowledged write or holds part of one")
        trial.outcome = "new"
        rig.writes.state = state


def _answers(client: Client) -> None:
    assert client.call("GET", "/api/ready")[0] == 200
    status, answer = client.call("POST", "/api/ask", QUESTION)
    assert status == 200 and "abstained" in answer, answer


def _unavailable_at_once(client: Client, method: str, path: str, body: dict) -> float:
    started = time.monotonic()
    status, answer = client.call(method, path, body)
    took = time.monotonic() - started
    assert status == 503 and answer["error"]["code"] == "backend_unavailable", answer
    assert took < 3 * TIMEOUT_S, f"{method} {path} took {took:.1f} s to fail"
    return took


def _moments(seed: int) -> list[tuple[bool, float]]:
    """When each trial kills: (aimed at the end of the first write, a uniform draw)."""
    rng = random.Random(seed)
    return [(rng.random() < 0.5, rng.random()) for _ in range(TRIALS)]


def _summary(trials: list[Trial]) -> str:
    outcomes = [t.outcome for t in trials]
    return (f"{len(trials)} kills of the {trials[0].kind} server: {outcomes.count('old')} lost the write in flight, "
            f"{outcomes.count('new')} had applied it, {outcomes.count('idle')} between writes; "
            f"{sum(t.cleaning for t in trials)} after a commit point, before its clean-up ended; "
            f"{sum(t.acknowledged for t in trials)} writes acknowledged; {sum(t.left_rows > 0 for t in trials)} "
            f"kills left rows for the next writer ({sum(t.left_rows for t in trials)} in all)"
            + (f"; answering again {max(t.recovered_s for t in trials):.1f} s after a restart at most; "
               f"{outcomes.count('engine-lost')} left Milvus Lite unable to load its own files"
               if trials[0].kind == "milvus" else ""))


def _assert_kills_hit_writes(trials: list[Trial]) -> None:
    summary = _summary(trials)
    print(summary)
    assert sum(t.outcome in ("old", "new") for t in trials) >= len(trials) // 2, summary
    if trials[0].kind == "api":
        # A killed writer's rows stay in Milvus for the next writer to delete. (When Milvus itself
        # dies, the rows it had not flushed die with it: leftovers then depend on its buffering.)
        assert any(t.left_rows for t in trials), summary
    # Milvus Lite losing its files is rare (one kill in dozens); more would leave too little tested.
    assert sum(t.outcome == "engine-lost" for t in trials) <= len(trials) // 4, summary


def _api_kill_moments(trials: list[Trial]):
    """The seeded moments, then, while no kill has left rows for the next writer, up to
    ``EXTRA_AIMED`` more aimed at the end of a write: its rows are written just before its commit
    point, a window that twenty kills can miss on a fast machine."""
    yield from _moments(SEED)
    rng = random.Random(SEED + 2)
    for _ in range(EXTRA_AIMED):
        if any(t.left_rows for t in trials):
            return
        yield True, rng.random()


def test_kill_api_servers_writing_to_milvus(rig):
    trials = []
    pid = None
    try:
        for moment in _api_kill_moments(trials):
            pid, client = rig.serve()
            _answers(client)
            trial = Trial("api", rig.delay(moment))
            _write_until_killed(client, functools.partial(os.kill, pid, signal.SIGKILL), rig, trial)
            status = rig.reaped()
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
            pid = None
            _check_after_kill(rig, trial)
            trials.append(trial)
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            rig.reaped()
    _assert_kills_hit_writes(trials)


def test_kill_milvus_during_writes(rig):
    """One API server lives through every kill and restart of Milvus."""
    pid, client = rig.serve()
    trials, down = [], []
    try:
        _answers(client)
        for moment in _moments(SEED + 1):
            trial = Trial("milvus", rig.delay(moment))
            _write_until_killed(client, rig.lite.kill, rig, trial)
            down.append(_unavailable_at_once(client, "POST", "/api/ask", QUESTION))
            record = _record("while-down", 0, random.Random(0))
            down.append(_unavailable_at_once(client, "POST", "/api/documents", {"documents": [record]}))
            rig.lite.start()
            restarted = time.monotonic()
            if not _answers_again(client):
                # kill -9 cut one of Milvus Lite's own files short: its durability, below what any
                # commit protocol over it can promise. This trial proves nothing; go on afresh.
                trial.outcome = "engine-lost"
                trials.append(trial)
                client = _afresh(rig, client)
                continue
            trial.recovered_s = time.monotonic() - restarted
            _once_reachable(functools.partial(_check_after_kill, rig, trial))
            trials.append(trial)
        # The API's writer goes on after all those deaths: a write, then nothing left behind.
        write = rig.writes.next()
        assert client.call(write.method, write.path, write.body)[0] == 200
        assert committed_state(rig.index) == write.after and invisible_rows(rig.index) == 0
    finally:
        os.kill(pid, signal.SIGKILL)
        rig.reaped()
    _assert_kills_hit_writes(trials)
    print(f"while Milvus was down: {len(down)} questions and writes, a 503 within {max(down):.2f} s at most")


def test_milvus_losing_its_files_is_a_corrupt_index_until_started_afresh(rig):
    """What the kill trials do when Milvus Lite cannot load its own files after a kill, done on purpose:
    the API says its index is corrupt, and answers again once Milvus runs on a fresh folder."""
    pid, client = rig.serve()
    try:
        _answers(client)
        rig.lite.kill()
        cut_vector_files_short(rig.lite.data_dir, f"{COLLECTION}_chunks")
        rig.lite.start()
        assert not _answers_again(client)
        client = _afresh(rig, client)
        assert committed_state(rig.index) == rig.writes.state and len(rig.writes.state) == 6
    finally:
        os.kill(pid, signal.SIGKILL)
        rig.reaped()


def _afresh(rig: Rig, client: Client) -> Client:
    """Milvus started afresh, and the API answering from it; a new client, for the API server has
    closed the old one's idle keep-alive connection meanwhile."""
    rig.start_afresh()
    client = Client(client.port, timeout_s=60)
    assert _answers_again(client)
    return client


def _answers_again(client: Client, timeout_s: float = 60) -> bool:
    """Whether the API answers a question once Milvus is back (its client reconnects and loads the
    collections again on its own); False when Milvus cannot load its own files, which the API
    reports as a corrupt index."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, answer = client.call("POST", "/api/ask", QUESTION)
        if status == 200:
            return True
        assert status == 503 and time.monotonic() < deadline, answer
        if answer["error"]["code"] == "index_corrupt":
            assert "cannot load the collection" in answer["error"]["message"], answer
            return False
        time.sleep(0.2)


def _once_reachable(check, timeout_s: float = 30) -> None:
    """``check()``, tried again while this process's own Milvus client has not reconnected: after
    a restart gRPC backs off between its tries, so a call can fail although the server is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_second_writer_waits_for_the_lease(rig, embedder):
    """Only one writer at a time: another process's live writer holds the lease off; a dead one's lease is free."""
    from qa.errors import IndexBusy
    from qa.indexing import index_config
    from qa.store.milvus import lease

    config = index_config(rig.settings, embedder)
    holder = subprocess.Popen([sys.executable, "-m", "tests.milvus_lease_holder", rig.lite.uri, COLLECTION],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        writer = rig.index.writer(config)
        writer.lease.wait_s = 1.0
        started = time.monotonic()
        with pytest.raises(IndexBusy, match="another process is writing"):
            writer.__enter__()
        assert time.monotonic() - started < 1.0 + 2 * lease.SETTLE_S + TIMEOUT_S
    finally:
        holder.kill()
        holder.wait()
    started = time.monotonic()
    with rig.index.writer(config):  # the holder is gone: its lease is free at once
        assert time.monotonic() - started < 1.0 + 2 * lease.SETTLE_S + TIMEOUT_S
    doc = Document(id="after-lease", title="after", text="The lease was taken over after its holder died.")
    write_documents([doc], rig.settings, embedder)
    assert committed_state(rig.index)["after-lease"] == doc.content_hash
    rig.writes.state = committed_state(rig.index)
