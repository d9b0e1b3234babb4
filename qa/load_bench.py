"""Load benchmark: a real `qa serve` on loopback, 1/4/16 concurrent clients, bounded in time and count."""

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
from pathlib import Path

from .bench import print_table, write_json
from .metrics import percentile


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(port: int, process: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/ready")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not become ready in time")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _client(port: int, questions: list[str], offset: int, stop_at: float, budget: list[int],
            lock: threading.Lock, latencies: list[float], errors: list[str]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = offset
    while time.monotonic() < stop_at:
        with lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        body = json.dumps({"question": questions[i % len(questions)]})
        i += 1
        started = time.perf_counter()
        try:
            connection.request("POST", "/api/ask", body, {"content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors.append(str(response.status))
        except (OSError, http.client.HTTPException) as exc:
            errors.append(type(exc).__name__)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latencies.append((time.perf_counter() - started) * 1000)


def run_level(port: int, questions: list[str], clients: int, duration_s: float, max_requests: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    budget = [max_requests]
    stop_at = time.monotonic() + duration_s
    started = time.perf_counter()
    threads = [threading.Thread(target=_client, args=(port, questions, n * 7, stop_at, budget, lock,
                                                      latencies, errors)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"clients": clients, "requests": len(latencies) + len(errors), "errors": len(errors),
            "qps": round(len(latencies) / elapsed, 1), "p50_ms": round(percentile(latencies, 50), 1),
            "p95_ms": round(percentile(latencies, 95), 1), "p99_ms": round(percentile(latencies, 99), 1)}


def bench_load(index_dir: Path, corpus: Path, questions: list[str], out: Path,
               levels: tuple[int, ...] = (1, 4, 16), duration_s: float = 15.0,
               max_requests: int = 3000) -> dict:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--index", str(index_dir), "--corpus", str(corpus),
         "--port", str(port), "--quiet"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)
    try:
        _wait_ready(port, server)
        run_level(port, questions, 1, 2.0, 20)  # warm-up, not reported
        results = [run_level(port, questions, n, duration_s, max_requests) for n in levels]
        peak = _peak_rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    rows = []
    for r in results:
        rows.append((f"{r['clients']:>2} clients",
                     f"{r['qps']:.1f} qps  p50 {r['p50_ms']:.0f}  p95 {r['p95_ms']:.0f}  "
                     f"p99 {r['p99_ms']:.0f} ms  {r['errors']} errors / {r['requests']}"))
    rows.append(("server peak memory", f"{peak:.0f} MB"))
    print_table("Load on 127.0.0.1 (POST /api/ask)", rows)
    result = {"levels": results, "server_peak_memory_mb": round(peak, 1), "duration_s": duration_s,
              "max_requests_per_level": max_requests, "cpus": os.cpu_count()}
    write_json(out, result)
    return result
