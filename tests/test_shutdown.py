"""SIGTERM lets in-flight requests finish and leaves the index consistent."""

import http.client
import json
import shutil
import signal
import subprocess
import sys
import threading

import pytest

from qa.bench.live_server import free_port, wait_ready
from qa.store import IndexReader

pytestmark = pytest.mark.slow


def test_sigterm_finishes_in_flight_requests(demo_index, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(demo_index.index_dir, index_dir)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--index", str(index_dir),
                               "--port", str(port), "--quiet"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(port, server, timeout_s=180)
        statuses = []

        def ask():
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            body = json.dumps({"question": "Who spoke for Global Affairs Canada about the talks?", "top_k": 10})
            connection.request("POST", "/api/ask", body, {"content-type": "application/json"})
            statuses.append(connection.getresponse().status)

        clients = [threading.Thread(target=ask) for _ in range(4)]
        for client in clients:
            client.start()
        # Stop while the requests are being answered: the server must finish them first.
        signal_sent = threading.Timer(0.15, server.send_signal, args=(signal.SIGTERM,))
        signal_sent.start()
        for client in clients:
            client.join()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why it ended.
        assert server.wait(timeout=60) in (0, -signal.SIGTERM), server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
    assert statuses == [200, 200, 200, 200]
    reader = IndexReader.open(index_dir)
    reader.verify()
    reader.close()
