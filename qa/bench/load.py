"""Load benchmark: a real `qa serve` on loopback, 1/4/16 concurrent clients, bounded in time and count.

The questions are a mix: the demo question files plus a fixed-seed sample of SQuAD dev questions.
Asked against the demo corpus, SQuAD questions are mostly ones it cannot answer, which is what
a public service gets too; the report shows how often each origin abstained.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput
from ..eval.questions import load_squad
from .indexing import print_table, write_json
from .live_server import LiveServer, Samples, describe_latency, machine_load

DEFAULT_SQUAD = Path("../shared/data/squad-v1.1/dev-v1.1-public.json")
SQUAD_ORIGIN = "squad-sample"


@dataclass(frozen=True)
class Ask:
    question: str
    origin: str  # the question file's name, or SQUAD_ORIGIN


def question_mix(files: list[Path], squad: Path | None = None, squad_sample: int = 0,
                 seed: int = 0) -> list[Ask]:
    """Every question of ``files`` plus ``squad_sample`` SQuAD questions, shuffled with ``seed``."""
    from ..eval.runner import load_question_set  # here: it imports the models, which the client side rarely needs

    asks = [Ask(q.question, Path(f).name) for f in files
            for q in load_question_set(Path(f), "all").questions]
    if squad is not None and squad_sample > 0:
        if not Path(squad).is_file():
            raise InvalidInput(f"no SQuAD file at {squad}")
        pool = load_squad(Path(squad)).questions
        chosen = random.Random(seed).sample(pool, min(squad_sample, len(pool)))
        asks += [Ask(q.question, SQUAD_ORIGIN) for q in chosen]
    if not asks:
        raise InvalidInput("no questions to ask")
    random.Random(seed).shuffle(asks)  # every client sees a mix, not one origin after the other
    return asks


def mix_counts(asks: list[Ask]) -> dict[str, int]:
    return dict(sorted(Counter(a.origin for a in asks).items()))


class _Budget:
    """At most ``n`` requests shared by all clients of a level."""

    def __init__(self, n: int):
        self._left = n
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            self._left -= 1
            return self._left >= 0


def _client(server: LiveServer, asks: list[Ask], offset: int, stop_at: float, budget: _Budget,
            samples: Samples, abstained: Counter) -> None:
    client = server.client(timeout_s=30)
    i = offset
    while time.monotonic() < stop_at and budget.take():
        ask = asks[i % len(asks)]
        i += 1
        answer = samples.timed(ask.origin, client, "POST", "/api/ask", {"question": ask.question})
        if answer is not None and answer.get("abstained"):
            abstained[ask.origin] += 1


def run_level(server: LiveServer, asks: list[Ask], clients: int, duration_s: float, max_requests: int) -> dict:
    samples, budget = Samples(), _Budget(max_requests)
    abstained = [Counter() for _ in range(clients)]  # one per thread: no lock needed
    stop_at = time.monotonic() + duration_s
    started = time.perf_counter()
    threads = [threading.Thread(target=_client, args=(server, asks, n * 7, stop_at, budget, samples,
                                                      abstained[n])) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary = samples.summary(time.perf_counter() - started)
    overall = summary.pop("all")
    total_abstained = sum(abstained, Counter())
    for origin, row in summary.items():
        row["abstained"] = total_abstained[origin]
    return {"clients": clients, "requests": overall["ok"] + overall["errors"], "errors": overall["errors"],
            "qps": overall["qps"], "p50_ms": overall["p50_ms"], "p95_ms": overall["p95_ms"],
            "p99_ms": overall["p99_ms"], "by_origin": summary, "error_messages": samples.errors[:20]}


def _table_rows(results: list[dict]) -> list[tuple[str, str]]:
    rows = []
    for r in results:
        rows.append((f"{r['clients']:>2} clients", f"{r['qps']:.1f} qps  {describe_latency(r)}  "
                                                   f"{r['errors']} errors / {r['requests']}"))
        for origin, o in r["by_origin"].items():
            share = f"{o['abstained'] / o['ok']:.0%}" if o["ok"] else "-"
            rows.append((f"   {origin}", f"{o['ok']:>4} asked  {describe_latency(o)}  {share} abstained"))
    return rows


def bench_load(index_dir: Path, corpus: Path, asks: list[Ask], out: Path,
               levels: tuple[int, ...] = (1, 4, 16), duration_s: float = 15.0,
               max_requests: int = 3000) -> dict:
    with LiveServer(index_dir, corpus) as server:
        run_level(server, asks, 1, 2.0, 20)  # warm-up, not reported
        results = [run_level(server, asks, n, duration_s, max_requests) for n in levels]
        peak = server.memory_mb("VmHWM")
    machine = machine_load()
    mix = mix_counts(asks)
    print_table("Load on 127.0.0.1 (POST /api/ask)", [
        ("questions", "  +  ".join(f"{n} {origin}" for origin, n in mix.items())),
        *_table_rows(results),
        ("server peak memory", f"{peak:.0f} MB"),
        ("machine load (1/5/15 min)", " / ".join(f"{x:.1f}" for x in machine["load_average"])
         + f" on {machine['cpus']} CPUs ({machine['cpu_flags']})"),
    ])
    result = {"levels": results, "question_mix": mix, "server_peak_memory_mb": round(peak, 1),
              "duration_s": duration_s, "max_requests_per_level": max_requests, **machine}
    write_json(out, result)
    return result
