"""Soak: a real `qa serve` under concurrent asks mixed with writes, for a while.

It samples the server's memory every second, then checks that every acknowledged write is
there (and every acknowledged delete is gone), once on the live server and once more after
a restart on the reopened index. The run fails on any error, lost write or memory growth
beyond a bound.
"""

from __future__ import annotations

import random
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .indexing import print_table, write_json
from .live_server import Client, LiveServer, Samples, describe_latency, document_path, machine_load
from .load import Ask, mix_counts

WRITE_KINDS = ("add", "replace", "delete")
ERRORS_KEPT = 50
ERRORS_PRINTED = 10


@dataclass(frozen=True)
class SoakConfig:
    clients: int = 16
    duration_s: float = 60.0
    write_fraction: float = 0.1
    max_growth_mb: float = 50.0
    seed: int = 0
    warm_up_s: float = 10.0
    progress_every_s: float = 5.0


class Ledger:
    """The last acknowledged write of each soak document: its text, or None when deleted.

    A write that failed leaves its document uncertain: it may or may not have been applied.
    """

    def __init__(self) -> None:
        self.last: dict[str, str | None] = {}
        self.uncertain: set[str] = set()
        self._lock = threading.Lock()

    def acknowledged(self, doc_id: str, text: str | None) -> None:
        with self._lock:
            self.last[doc_id] = text
            self.uncertain.discard(doc_id)

    def failed(self, doc_id: str) -> None:
        with self._lock:
            self.uncertain.add(doc_id)


def soak_text(doc_id: str, version: int) -> str:
    return (f"Soak document {doc_id}, version {version}. This text was written by the soak run so "
            f"that a later read can tell which version the index holds.\n\nVersion {version} of "
            f"{doc_id} replaces every earlier version.")


class Writer:
    """One client's writes: add new documents, replace and delete its own, and log what was acknowledged."""

    def __init__(self, name: str, client: Client, samples: Samples, ledger: Ledger, rng: random.Random):
        self.name, self.client, self.samples, self.ledger, self.rng = name, client, samples, ledger, rng
        self.versions: dict[str, int] = {}  # this writer's live documents
        self.created = 0

    def step(self) -> None:
        roll = self.rng.random()
        if self.versions and roll < 0.25:
            self.delete(self.rng.choice(sorted(self.versions)))
        elif self.versions and roll < 0.6:
            doc_id = self.rng.choice(sorted(self.versions))
            self.post("replace", doc_id, self.versions[doc_id] + 1)
        else:
            self.created += 1
            self.post("add", f"soak-{self.name}-{self.created:05d}", 1)

    def post(self, kind: str, doc_id: str, version: int) -> None:
        text = soak_text(doc_id, version)
        body = {"documents": [{"id": doc_id, "text": text, "title": f"Soak {doc_id}", "source": "soak",
                               "metadata": {"version": version}}]}
        if self.samples.timed(kind, self.client, "POST", "/api/documents", body) is None:
            self.ledger.failed(doc_id)
            return
        self.versions[doc_id] = version
        self.ledger.acknowledged(doc_id, text)

    def delete(self, doc_id: str, kind: str = "delete") -> None:
        if self.samples.timed(kind, self.client, "DELETE", document_path(doc_id)) is None:
            self.ledger.failed(doc_id)
            return
        del self.versions[doc_id]
        self.ledger.acknowledged(doc_id, None)


def _soak_client(n: int, phase: str, server: LiveServer, headers: dict, asks: list[Ask],
                 config: SoakConfig, stop_at: float, samples: Samples, ledger: Ledger) -> None:
    rng = random.Random(f"{config.seed}-{phase}-{n}")
    client = server.client(headers)
    writer = Writer(f"{phase}-c{n:02d}", client, samples, ledger, rng)
    i = n * 7
    while time.monotonic() < stop_at:
        if rng.random() < config.write_fraction:
            writer.step()
        else:
            samples.timed("ask", client, "POST", "/api/ask", {"question": asks[i % len(asks)].question})
            i += 1


def _progress_line(elapsed_s: float, samples: Samples, rss_mb: float) -> str:
    counts = samples.counts()
    kinds = "  ".join(f"{kind} {counts.get(kind, 0)}" for kind in ("ask", *WRITE_KINDS))
    return f"  {elapsed_s:5.0f} s  {kinds}  errors {len(samples.errors)}  rss {rss_mb:.0f} MB"


def drive(server: LiveServer, headers: dict, asks: list[Ask], config: SoakConfig, samples: Samples,
          ledger: Ledger, phase: str, duration_s: float,
          progress: bool = True) -> tuple[float, list[tuple[float, float]]]:
    """Run the clients for ``duration_s``; sample memory every second. (seconds, [(t, MB)])."""
    started = time.monotonic()
    stop_at = started + duration_s
    threads = [threading.Thread(target=_soak_client, args=(n, phase, server, headers, asks, config, stop_at,
                                                           samples, ledger), daemon=True)
               for n in range(config.clients)]
    for thread in threads:
        thread.start()
    memory, next_progress = [], started + config.progress_every_s
    while (now := time.monotonic()) < stop_at and server.running:
        memory.append((round(now - started, 2), server.memory_mb()))
        if progress and now >= next_progress:
            print(_progress_line(now - started, samples, memory[-1][1]), flush=True)
            next_progress += config.progress_every_s
        time.sleep(max(0.0, started + len(memory) - time.monotonic()))  # one sample a second
    for thread in threads:
        thread.join()
    if not server.running:
        raise RuntimeError(f"the server died during the soak; its log ends:\n{server.log_tail()}")
    elapsed = time.monotonic() - started
    memory.append((round(elapsed, 2), server.memory_mb()))
    return elapsed, memory


def memory_summary(samples: list[tuple[float, float]], bound_mb: float) -> dict:
    """Start, end and max RSS, and the growth from the first quarter of the run to the last (means)."""
    values = [mb for _, mb in samples]
    span = samples[-1][0] - samples[0][0]
    first = [mb for t, mb in samples if t - samples[0][0] <= span / 4] or values[:1]
    last = [mb for t, mb in samples if t - samples[0][0] >= span * 3 / 4] or values[-1:]
    growth = sum(last) / len(last) - sum(first) / len(first)
    return {"samples": len(values), "start_mb": round(values[0], 1), "end_mb": round(values[-1], 1),
            "max_mb": round(max(values), 1), "first_quarter_mean_mb": round(sum(first) / len(first), 1),
            "last_quarter_mean_mb": round(sum(last) / len(last), 1), "growth_mb": round(growth, 1),
            "bound_mb": bound_mb, "within_bound": growth <= bound_mb,
            "trace": [[t, round(mb, 1)] for t, mb in samples]}


def verify(client: Client, ledger: Ledger, baseline_documents: int) -> dict:
    """Every acknowledged write is readable as written, every acknowledged delete is gone, counts agree."""
    lost, present, deleted = [], 0, 0
    for doc_id, text in sorted(ledger.last.items()):
        if doc_id in ledger.uncertain:
            continue
        status, body = client.call("GET", document_path(doc_id))
        if text is None:
            deleted += 1
            if status != 404:
                lost.append(f"{doc_id}: deleted, but GET gives HTTP {status}")
        else:
            present += 1
            if status != 200 or (body or {}).get("text") != text:
                lost.append(f"{doc_id}: GET gives HTTP {status}"
                            + (", another text" if status == 200 else ""))
    status, ready = client.call("GET", "/api/ready")
    documents = ready.get("documents") if status == 200 else None
    expected = baseline_documents + present
    # An uncertain document may or may not be there, so it widens the range by one.
    count_ok = documents is not None and expected <= documents <= expected + len(ledger.uncertain)
    if not count_ok:
        lost.append(f"/api/ready counts {documents} documents; expected {expected}"
                    + (f" to {expected + len(ledger.uncertain)}" if ledger.uncertain else ""))
    return {"checked": present + deleted, "present": present, "deleted": deleted,
            "uncertain": len(ledger.uncertain), "documents": documents, "expected_documents": expected,
            "lost": lost, "ok": not lost}


def _scratch_copies(index_dir: Path, corpus: Path, scratch: Path) -> tuple[Path, Path]:
    """The soak writes: it serves copies. Without an index, the server builds one from the copied corpus."""
    corpus_copy = scratch / "corpus"
    if corpus.is_dir():
        shutil.copytree(corpus, corpus_copy)
    else:
        corpus_copy.mkdir()
        shutil.copy2(corpus, corpus_copy / corpus.name)
    index_copy = scratch / "index"
    if index_dir.is_dir():
        shutil.copytree(index_dir, index_copy, ignore=shutil.ignore_patterns(".lock"))
    return index_copy, corpus_copy


def run_soak(index_dir: Path, corpus: Path, asks: list[Ask], out: Path, config: SoakConfig) -> dict:
    key = secrets.token_urlsafe(16)
    headers = {"x-api-key": key}
    warm_up, samples, ledger = Samples(), Samples(("ask", *WRITE_KINDS)), Ledger()
    with tempfile.TemporaryDirectory(prefix="qa-soak-") as scratch:
        index_copy, corpus_copy = _scratch_copies(Path(index_dir), Path(corpus), Path(scratch))
        server = LiveServer(index_copy, corpus_copy, env={"QA_API_KEY": key, "QA_READ_ONLY": "false"},
                            log=Path(scratch) / "server.log")
        with server:
            baseline = server.client().call("GET", "/api/ready")[1]["documents"]
            print(f"soak: server pid {server.pid}; warming up with the same mix for {config.warm_up_s:g} s, "
                  f"so start-up allocations do not count as growth", flush=True)
            drive(server, headers, asks, config, warm_up, ledger, "warmup", config.warm_up_s, progress=False)
            print(f"soak: {config.clients} clients for {config.duration_s:g} s, "
                  f"{config.write_fraction:.0%} writes", flush=True)
            elapsed, memory = drive(server, headers, asks, config, samples, ledger, "soak", config.duration_s)
            machine = machine_load()
            live = verify(server.client(), ledger, baseline)
        with server.start():
            restarted = verify(server.client(), ledger, baseline)
        log_tail = server.log_tail(40)
    report = _report(config, asks, warm_up, samples, elapsed, memory, live, restarted, baseline) | machine
    if not report["passed"]:
        report["server_log_tail"] = log_tail
    _print_report(report)
    write_json(out, report)
    return report


def _report(config: SoakConfig, asks: list[Ask], warm_up: Samples, samples: Samples, elapsed: float,
            memory: list[tuple[float, float]], live: dict, restarted: dict, baseline: int) -> dict:
    kinds = samples.summary(elapsed)
    overall = kinds.pop("all")
    errors = overall["errors"] + len(warm_up.errors)
    mem = memory_summary(memory, config.max_growth_mb)
    failures = ([f"{errors} request errors"] if errors else []) \
        + ([f"{len(live['lost'])} lost writes on the live server"] if live["lost"] else []) \
        + ([f"{len(restarted['lost'])} lost writes after the restart"] if restarted["lost"] else []) \
        + ([f"memory grew {mem['growth_mb']} MB (bound {config.max_growth_mb} MB)"]
           if not mem["within_bound"] else [])
    return {"config": asdict(config), "question_mix": mix_counts(asks), "elapsed_s": round(elapsed, 1),
            "requests": overall["ok"] + overall["errors"], "qps": overall["qps"], "kinds": kinds,
            "warm_up_requests": sum(warm_up.counts().values()),
            "errors": errors, "error_messages": (warm_up.errors + samples.errors)[:ERRORS_KEPT],
            "baseline_documents": baseline, "memory": mem,
            "verification": {"live": live, "after_restart": restarted},
            "failures": failures, "passed": not failures}


def _print_report(r: dict) -> None:
    mem = r["memory"]
    rows = [("requests", f"{r['requests']} in {r['elapsed_s']:.0f} s, {r['qps']:.1f} qps")]
    for kind, k in r["kinds"].items():
        rows.append((f"  {kind}", f"{k['ok']:>5}  {k['qps']:.2f} qps  {describe_latency(k)}  {k['errors']} errors"))
    rows += [
        ("errors", str(r["errors"])),
        ("server RSS start / end / max", f"{mem['start_mb']:.0f} / {mem['end_mb']:.0f} / {mem['max_mb']:.0f} MB"),
        ("RSS growth, first to last quarter", f"{mem['growth_mb']:+.1f} MB (bound {mem['bound_mb']:g} MB)"),
    ]
    for stage, v in r["verification"].items():
        rows.append((f"writes verified ({stage.replace('_', ' ')})",
                     f"{v['present']} present, {v['deleted']} deleted, {len(v['lost'])} lost; "
                     f"{v['documents']} documents (expected {v['expected_documents']})"))
    rows.append(("machine load (1/5/15 min)", " / ".join(f"{x:.1f}" for x in r["load_average"])
                 + f" on {r['cpus']} CPUs ({r['cpu_flags']})"))
    rows.append(("result", "passed" if r["passed"] else "FAILED: " + "; ".join(r["failures"])))
    print_table(f"Soak on 127.0.0.1: {r['config']['clients']} clients, asks mixed with writes", rows)
    for message in r["error_messages"][:ERRORS_PRINTED]:
        print(f"  error: {message}")
    if r["errors"] > ERRORS_PRINTED:
        print(f"  ... {r['errors'] - ERRORS_PRINTED} more errors (up to {ERRORS_KEPT} in the JSON)")
