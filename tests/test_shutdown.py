"""SIGTERM lets in-flight requests finish and leaves the index consistent.

The requests are provably in flight: the server holds each one inside the reader (tests/held_reads_server.py)
until the test has sent SIGTERM and seen uvicorn start its shutdown; only then are they let go.
"""

import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from qa.bench.live_server import HOST, free_port, wait_ready
from qa.store import IndexReader

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 4
QUESTION = "Who spoke for Global Affairs Canada about the talks?"
WAIT_S = 60


class Lines:
    """Reads a stream's lines in a thread, so a test can wait for one with a deadline."""

    def __init__(self, stream):
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, text: str) -> None:
        """Consume lines until one contains ``text``."""
        while True:
            try:
                line = self._lines.get(timeout=WAIT_S)
            except queue.Empty:
                line = None
            if line is None:
                tail = "\n".join(self.seen[-20:])
                raise AssertionError(f"no line with {text!r}; the last lines were:\n{tail}")
            self.seen.append(line)
            if text in line:
                return


def _command(server: subprocess.Popen, command: str) -> None:
    server.stdin.write(command + "\n")
    server.stdin.flush()


def test_sigterm_finishes_the_requests_inside_the_handler(demo_index, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(demo_index.index_dir, index_dir)
    port = free_port()
    # One reading slot per client, so every request reaches the reader; info level logs the shutdown.
    env = {**os.environ, "QA_CONCURRENT_READS": str(CLIENTS), "QA_LOG_LEVEL": "info"}
    server = subprocess.Popen([sys.executable, "-m", "tests.held_reads_server", "serve", "--index", str(index_dir),
                               "--port", str(port), "--quiet"], cwd=ROOT, env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    gate, log = Lines(server.stdout), Lines(server.stderr)
    statuses = []
    try:
        wait_ready(port, server, timeout_s=180)
        _command(server, "hold")
        gate.wait_for("gate: holding")

        def ask():
            connection = http.client.HTTPConnection(HOST, port, timeout=WAIT_S)
            connection.request("POST", "/api/ask", json.dumps({"question": QUESTION, "top_k": 10}),
                               {"content-type": "application/json"})
            statuses.append(connection.getresponse().status)

        clients = [threading.Thread(target=ask) for _ in range(CLIENTS)]
        for client in clients:
            client.start()
        for _ in clients:
            gate.wait_for("gate: held")
        server.send_signal(signal.SIGTERM)
        log.wait_for("Shutting down")
        assert statuses == [], "a request finished while the reader was held"
        _command(server, "release")
        for client in clients:
            client.join(timeout=WAIT_S)
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why it ended.
        assert server.wait(timeout=WAIT_S) in (0, -signal.SIGTERM), "\n".join(log.seen[-20:])
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert statuses == [200] * CLIENTS
    reader = IndexReader.open(index_dir)
    reader.verify()
    reader.close()
