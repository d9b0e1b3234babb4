"""kill -9 of the API server while it writes, at moments drawn with a fixed seed.

After every kill: the index opens and verifies, it holds exactly the acknowledged writes plus,
at most, the one write in flight (whole, never part of it), and a restarted server answers
/api/ready and /api/ask without any repair. After every acknowledged write the writer has left
no staging folder, uncommitted generation or CURRENT.tmp, including those of a killed writer.

Most kills hit servers forked from one process that loaded the models once (tests/forked_server.py:
the same app under uvicorn); a few hit real `qa serve` processes.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from qa.bench.live_server import Client, LiveServer, document_path, free_port, wait_ready
from qa.indexing import write_documents
from qa.loaders import document_from_record
from qa.settings import Settings

from .helpers import committed_state, leftovers

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SEED = 7321
FORKED_TRIALS = 24
QA_SERVE_TRIALS = 3
MAX_KILL_DELAY_S = 2.0  # after the first write of a trial is sent; a write takes 0.3-1.5 s here
ENV = {"QA_CHUNK_TOKENS": "48", "QA_CHUNK_OVERLAP": "8", "HF_HUB_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}
QUESTION = {"question": "What did the talks in city 2 cover?"}


def _record(doc_id: str, version: int, rng: random.Random) -> dict:
    sentence = f"Report {doc_id}, version {version}: the talks in city {version % 7} covered item {version}. "
    return {"id": doc_id, "title": f"Report {doc_id}", "text": sentence * rng.randint(2, 12)}


@dataclass
class Write:
    method: str
    path: str
    body: dict | None
    after: dict[str, str]  # the index's documents once this write is applied


@dataclass
class Writes:
    """A random sequence of adds, replaces and deletes, and the documents acknowledged so far."""
    rng: random.Random
    state: dict[str, str]
    version: int = 0

    def next(self) -> Write:
        self.version += 1
        after = dict(self.state)
        if len(self.state) > 4 and self.rng.random() < 0.3:
            doc_id = self.rng.choice(sorted(self.state))
            del after[doc_id]
            return Write("DELETE", document_path(doc_id), None, after)
        records = []
        for _ in range(self.rng.randint(1, 3)):  # replaces and adds in one request
            replace = self.state and self.rng.random() < 0.5
            doc_id = self.rng.choice(sorted(self.state)) if replace else f"w{self.version}-{len(records)}"
            if doc_id not in {r["id"] for r in records}:
                records.append(_record(doc_id, self.version, self.rng))
                after[doc_id] = document_from_record(records[-1]).content_hash
        return Write("POST", "/api/documents", {"documents": records}, after)


@dataclass
class Trial:
    delay_s: float
    acknowledged: int = 0
    in_flight: Write | None = None
    outcome: str = ""  # old: the write in flight was lost; new: it was applied; idle: none in flight
    left_by_kill: list[str] = field(default_factory=list)


def _kill_during_writes(client: Client, pid: int, writes: Writes, trial: Trial, index_dir: Path) -> None:
    """Write until the server dies, SIGKILLed ``trial.delay_s`` after the first write is sent."""
    killer = threading.Timer(trial.delay_s, os.kill, args=(pid, signal.SIGKILL))
    killer.start()
    try:
        while True:
            trial.in_flight = writes.next()
            try:
                status, body = client.call(trial.in_flight.method, trial.in_flight.path, trial.in_flight.body)
            except (OSError, http.client.HTTPException):
                return
            assert status == 200, body
            writes.state, trial.in_flight = trial.in_flight.after, None
            trial.acknowledged += 1
            # The server is idle until the next request: whatever is left now stays behind.
            assert leftovers(index_dir) == []
    finally:
        killer.join()


def _check_after_kill(writes: Writes, trial: Trial, index_dir: Path) -> None:
    trial.left_by_kill = leftovers(index_dir)
    state = committed_state(index_dir)
    if state == writes.state:
        trial.outcome = "old" if trial.in_flight else "idle"
    else:
        assert trial.in_flight is not None and state == trial.in_flight.after, (
            "the index lost an acknowledged write or holds part of one")
        trial.outcome = "new"
        writes.state = state


def _check_serves(client: Client) -> None:
    assert client.call("GET", "/api/ready")[0] == 200
    status, answer = client.call("POST", "/api/ask", QUESTION)
    assert status == 200 and "abstained" in answer, answer


def _summary(trials: list[Trial]) -> str:
    outcomes = [t.outcome for t in trials]
    left = Counter(re.sub(r"\d+", "N", name) for t in trials for name in t.left_by_kill)
    return (f"{len(trials)} kills: {outcomes.count('old')} lost the write in flight, "
            f"{outcomes.count('new')} had applied it, {outcomes.count('idle')} between writes; "
            f"{sum(t.acknowledged for t in trials)} writes acknowledged; "
            f"{sum(bool(t.left_by_kill) for t in trials)} kills left files for the next writer {dict(left)}")


def _assert_kills_hit_writes(trials: list[Trial]) -> None:
    summary = _summary(trials)
    print(summary)
    assert sum(t.outcome != "idle" for t in trials) >= len(trials) // 2, summary
    assert any(t.left_by_kill for t in trials), summary


@pytest.fixture
def index_dir(tmp_path, embedder):
    settings = Settings(index_dir=tmp_path / "index", chunk_tokens=48, chunk_overlap=8)
    rng = random.Random(SEED)
    write_documents([document_from_record(_record(f"d{i}", 0, rng)) for i in range(6)], settings, embedder)
    return settings.index_dir


class _Forked:
    """What wait_ready needs of a forked server: poll() is None while it runs."""

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self):
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            self.returncode = "(gone)"
        return self.returncode


def _reply(helper: subprocess.Popen, expect: str, log: Path) -> str:
    """The helper's next line, which must start with ``expect``; its value."""
    line = helper.stdout.readline()
    assert line.startswith(expect), f"forked_server said {line!r}; its log ends:\n{log.read_text()[-3000:]}"
    return line[len(expect):].strip()


def _kill_delays(seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0, MAX_KILL_DELAY_S) for _ in range(n)]


def test_kill_forked_api_servers_during_writes(index_dir, tmp_path):
    writes = Writes(random.Random(SEED), committed_state(index_dir))
    log = tmp_path / "forked.log"
    with open(log, "w") as stderr:
        helper = subprocess.Popen([sys.executable, "-m", "tests.forked_server"], cwd=ROOT, text=True,
                                  env={**os.environ, **ENV, "QA_INDEX_DIR": str(index_dir)},
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
    trials, pid = [], None
    try:
        _reply(helper, "loaded", log)
        for delay_s in _kill_delays(SEED, FORKED_TRIALS):
            port = free_port()
            helper.stdin.write(f"serve {port}\n")
            helper.stdin.flush()
            pid = int(_reply(helper, "pid ", log))
            wait_ready(port, _Forked(pid), timeout_s=120)
            client = Client(port)
            _check_serves(client)
            trial = Trial(delay_s)
            _kill_during_writes(client, pid, writes, trial, index_dir)
            status = int(_reply(helper, "exit ", log))
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
            pid = None
            _check_after_kill(writes, trial, index_dir)
            trials.append(trial)
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        helper.stdin.close()
        helper.wait(timeout=60)
    _assert_kills_hit_writes(trials)


def test_kill_qa_serve_during_writes(index_dir, tmp_path):
    writes = Writes(random.Random(SEED + 1), committed_state(index_dir))
    server = LiveServer(index_dir, ROOT / "corpus", env=ENV, ready_timeout_s=180, log=tmp_path / "serve.log")
    trials = []
    try:
        for delay_s in _kill_delays(SEED + 1, QA_SERVE_TRIALS):
            server.start()
            client = server.client()
            _check_serves(client)
            trial = Trial(delay_s)
            _kill_during_writes(client, server.pid, writes, trial, index_dir)
            assert server.process.wait(timeout=60) == -signal.SIGKILL, server.log_tail()
            server.stop()
            _check_after_kill(writes, trial, index_dir)
            trials.append(trial)

        # The last restart: it answers, and its first write leaves the index clean and complete.
        server.start()
        client = server.client()
        _check_serves(client)
        write = writes.next()
        assert client.call(write.method, write.path, write.body)[0] == 200
        assert leftovers(index_dir) == []
        assert committed_state(index_dir) == write.after
    finally:
        server.stop()
    print(_summary(trials))
