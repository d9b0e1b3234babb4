"""`milvus-lite server` as a process of its own, bound to loopback only, for the Milvus tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from qa.bench.live_server import free_port

MILVUS_LITE = Path(sys.executable).with_name("milvus-lite")


class LiteServer:
    """One data folder served on one port; ``start`` again after ``kill`` serves the same data."""

    def __init__(self, data_dir: Path):
        self.data_dir, self.port = data_dir, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> LiteServer:
        line = ""
        for _ in range(20):  # the port of a killed server may take a moment to be free again
            self.process = subprocess.Popen(
                [str(MILVUS_LITE), "server", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
                 "--port", str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            # It prints this line once the port is bound and serving.
            line = self.process.stdout.readline()
            if "listening on" in line:
                return self
            self.stop()
            time.sleep(0.25)
        raise RuntimeError(f"milvus-lite server did not start: {line!r}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.stop()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.process = None


def cut_vector_files_short(data_dir: Path, collection: str) -> None:
    """Truncate ``collection``'s vector index files in a stopped server's data folder, as a kill
    can leave one: the restarted server then cannot load that collection."""
    files = list(data_dir.glob(f"collections/{collection}/**/*.idx"))
    assert files, sorted(data_dir.rglob("*"))
    for path in files:
        os.truncate(path, 10)
