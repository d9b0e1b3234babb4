"""A real `qa serve` on loopback for the load and soak benchmarks: start, stop, memory, clients, timings."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..eval.metrics import percentile
from ..precision import speed_flags

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_ready(port: int, process: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/api/ready")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not become ready in time")


def process_memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure from /proc/PID/status: VmRSS now, or VmHWM (the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def machine_load() -> dict:
    """CPUs, load averages (1, 5, 15 min) and speed-relevant instruction sets: how busy the shared
    machine was while measuring, and what kind it was."""
    return {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "cpu_flags": speed_flags()}


def document_path(doc_id: str) -> str:
    return "/api/documents/" + quote(doc_id, safe="")


class LiveServer:
    """`qa serve` in a subprocess on a free loopback port; `stop` sends SIGTERM (a graceful stop).

    A stopped server can be started again on the same index, which is how restarts are tested.
    """

    def __init__(self, index_dir: Path, corpus: Path, env: dict[str, str] | None = None,
                 ready_timeout_s: float = 300, log: Path | None = None):
        self.index_dir, self.corpus = Path(index_dir), Path(corpus)
        self.env = env or {}
        self.log = log  # the server's stdout and stderr go here (appended) when set
        self.ready_timeout_s = ready_timeout_s
        self.port = 0
        self.process: subprocess.Popen | None = None

    def start(self) -> LiveServer:
        self.port = free_port()
        stderr = open(self.log, "a", encoding="utf-8") if self.log else None
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "qa.cli", "serve", "--index", str(self.index_dir),
                 "--corpus", str(self.corpus), "--port", str(self.port), "--quiet"],
                env={**os.environ, "HF_HUB_OFFLINE": "1", **self.env},
                stdout=stderr or subprocess.DEVNULL, stderr=stderr)
        finally:
            if stderr is not None:
                stderr.close()  # the child holds its own copy
        try:
            wait_ready(self.port, self.process, self.ready_timeout_s)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; its log ends:\n{self.log_tail()}" if self.log else str(exc)) from None
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, lines: int = 20) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def stop(self) -> int | None:
        """Stop the server and return its exit status (None when it was not running)."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> LiveServer:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the server is not running")
        return self.process.pid

    def memory_mb(self, field: str = "VmRSS") -> float:
        return process_memory_mb(self.pid, field)

    def client(self, headers: dict[str, str] | None = None, timeout_s: float = 60) -> Client:
        return Client(self.port, headers, timeout_s)


class Client:
    """One keep-alive connection to the server, JSON in and out; reconnects after a failure."""

    def __init__(self, port: int, headers: dict[str, str] | None = None, timeout_s: float = 60):
        self.port, self.timeout_s = port, timeout_s
        self.headers = {"content-type": "application/json", **(headers or {})}
        self._connection = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(HOST, self.port, timeout=self.timeout_s)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON body or None); network failures raise OSError or HTTPException."""
        payload = None if body is None else json.dumps(body)
        try:
            self._connection.request(method, path, payload, self.headers)
            response = self._connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self._connection.close()
            self._connection = self._connect()
            raise
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, None


def latency_summary(latencies_ms: list[float], elapsed_s: float) -> dict:
    """Count, rate and percentiles of successful requests (None where there were none)."""
    def ms(q: float) -> float | None:
        return round(percentile(latencies_ms, q), 1) if latencies_ms else None

    return {"ok": len(latencies_ms), "qps": round(len(latencies_ms) / elapsed_s, 2) if elapsed_s else None,
            "p50_ms": ms(50), "p95_ms": ms(95), "p99_ms": ms(99)}


def describe_latency(summary: dict) -> str:
    """One table cell: 'p50 117  p95 142  p99 148 ms' ('-' where there were no requests)."""
    def cell(key: str) -> str:
        return "-" if summary[key] is None else f"{summary[key]:.0f}"

    return f"p50 {cell('p50_ms')}  p95 {cell('p95_ms')}  p99 {cell('p99_ms')} ms"


class Samples:
    """Latencies and errors per kind of request, collected from many client threads."""

    def __init__(self, kinds: tuple[str, ...] = ()) -> None:
        self.latencies: dict[str, list[float]] = {kind: [] for kind in kinds}
        self.errors: list[str] = []
        self.errors_by_kind: Counter[str] = Counter()
        self._lock = threading.Lock()

    def timed(self, kind: str, client: Client, method: str, path: str, body: Any = None,
              expect: tuple[int, ...] = (200,)) -> Any:
        """Make one request; record its latency under ``kind``, or an error. The body, or None on error."""
        started = time.perf_counter()
        try:
            status, answer = client.call(method, path, body)
        except (OSError, http.client.HTTPException) as exc:
            self.error(kind, f"{method} {path}: {type(exc).__name__}: {exc}")
            return None
        elapsed_ms = (time.perf_counter() - started) * 1000
        if status not in expect:
            message = (answer or {}).get("error", {}).get("message", "") if isinstance(answer, dict) else ""
            self.error(kind, f"{method} {path}: HTTP {status} {message}".rstrip())
            return None
        with self._lock:
            self.latencies.setdefault(kind, []).append(elapsed_ms)
        return answer

    def error(self, kind: str, what: str) -> None:
        with self._lock:
            self.latencies.setdefault(kind, [])
            self.errors.append(f"{kind}: {what}")
            self.errors_by_kind[kind] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {kind: len(values) for kind, values in self.latencies.items()}

    def summary(self, elapsed_s: float) -> dict[str, dict]:
        """Per kind: successful requests, errors, QPS and percentiles; 'all' for everything together."""
        with self._lock:
            kinds = {kind: list(values) for kind, values in sorted(self.latencies.items())}
            errors = dict(self.errors_by_kind)
        everything = [ms for values in kinds.values() for ms in values]
        result = {kind: latency_summary(values, elapsed_s) | {"errors": errors.get(kind, 0)}
                  for kind, values in kinds.items()}
        result["all"] = latency_summary(everything, elapsed_s) | {"errors": sum(errors.values())}
        return result
