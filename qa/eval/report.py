"""Evaluation output: a terminal table, results.json, predictions.jsonl and an HTML report."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

from ..precision import speed_flags
from .runner import REFERENCES, RunResult

# Metrics shown in the table, in order, with how to print them.
_SHOWN = [("questions", "{:.0f}"), ("recall@1", "{:.3f}"), ("recall@5", "{:.3f}"), ("recall@10", "{:.3f}"),
          ("recall@20", "{:.3f}"), ("mrr@10", "{:.3f}"), ("ndcg@10", "{:.3f}"), ("em", "{:.1f}"),
          ("f1", "{:.1f}"), ("f1_with_abstention", "{:.1f}"), ("answered_right", "{:.3f}"),
          ("calibration_error", "{:.3f}"), ("calibration_error_by_chance", "{:.3f}"),
          ("calibration_p_value", "{:.2f}"), ("abstention_precision", "{:.3f}"),
          ("abstention_recall", "{:.3f}"), ("citation_exactness", "{:.3f}"),
          ("news_outlets", "{:.3f}"), ("news_sources", "{:.3f}"), ("news_conflict", "{:.3f}"),
          ("news_day", "{:.3f}"),
          ("retrieve_p50_ms", "{:.1f}"), ("retrieve_p95_ms", "{:.1f}"), ("read_p50_ms", "{:.1f}"),
          ("read_p95_ms", "{:.1f}"), ("total_p50_ms", "{:.1f}"), ("total_p95_ms", "{:.1f}")]


def table(results: list[RunResult], baseline: dict | None = None) -> str:
    names = [r.config.name for r in results]
    base = {run["config"]["name"]: run["metrics"] for run in (baseline or {}).get("runs", [])}
    lines = []
    header = ["metric", *names]
    rows = []
    for metric, fmt in _SHOWN:
        if not any(metric in r.metrics for r in results):
            continue
        cells = []
        for r in results:
            value = r.metrics.get(metric)
            cell = fmt.format(value) if value is not None else "-"
            old = base.get(r.config.name, {}).get(metric)
            if value is not None and old is not None and metric != "questions":
                cell += f" ({value - old:+.3g})"
            cells.append(cell)
        rows.append([metric, *cells])
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join([row[0].ljust(widths[0]), *[c.rjust(w) for c, w in zip(row[1:], widths[1:])]]))
    return "\n".join(lines)


def references_for(dataset: str) -> list[tuple[str, str, float, str]]:
    return next((refs for key, refs in REFERENCES.items() if key in dataset.lower()), [])


def write_outputs(out: Path, dataset: str, results: list[RunResult], baseline: dict | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    payload = {"dataset": dataset, "cpu": {"cpus": os.cpu_count(), "flags": speed_flags()},
               "runs": [{"config": r.config.__dict__, "metrics": r.metrics, "curves": {
                   k: v for k, v in r.curves.items() if not k.endswith("_ms")}} for r in results],
               "references": [dict(zip(("system", "metric", "value", "source"), ref))
                              for ref in references_for(dataset)]}
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    with open(out / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for r in results:
            for row in r.predictions:
                handle.write(json.dumps({"config": r.config.name, **row}, ensure_ascii=False) + "\n")
    (out / "report.html").write_text(_html(dataset, results, baseline), encoding="utf-8")


def _figure(draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=110)
    draw(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _plots(results: list[RunResult]) -> list[tuple[str, str]]:
    plots = []
    with_recall = [r for r in results if "recall" in r.curves]
    if with_recall:
        def recall(ax):
            for r in with_recall:
                ks, values = zip(*r.curves["recall"])
                ax.plot(ks, values, marker="o", label=r.config.name)
            ax.set(xlabel="k", ylabel="recall@k", xscale="log", xticks=[1, 5, 10, 20], xticklabels=["1", "5", "10", "20"])
            ax.legend()
        plots.append(("Recall@k", _figure(recall)))
    with_reliability = [r for r in results if r.curves.get("reliability")]
    if with_reliability:
        def reliability(ax):
            ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect")
            for r in with_reliability:
                conf, right, _ = zip(*r.curves["reliability"])
                ax.plot(conf, right, marker="o", label=r.config.name)
            ax.set(xlabel="confidence", ylabel="share right", xlim=(0, 1), ylim=(0, 1))
            ax.legend()
        plots.append(("Reliability of the confidence", _figure(reliability)))

        def coverage(ax):
            for r in with_reliability:
                cov, acc = zip(*r.curves["coverage"])
                ax.plot(cov, acc, marker="o", label=r.config.name)
            ax.set(xlabel="coverage (most confident first)", ylabel="accuracy", ylim=(0, 1))
            ax.legend()
        plots.append(("Coverage against accuracy", _figure(coverage)))
    with_latency = [r for r in results if r.curves.get("total_ms") or r.curves.get("retrieve_ms")]
    if with_latency:
        def latency(ax):
            for r in with_latency:
                ax.hist(r.curves.get("total_ms") or r.curves["retrieve_ms"], bins=30, alpha=0.6, label=r.config.name)
            ax.set(xlabel="milliseconds per question", ylabel="questions")
            ax.legend()
        plots.append(("Latency", _figure(latency)))
    return plots


def _html(dataset: str, results: list[RunResult], baseline: dict | None) -> str:
    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>Evaluation: {e(dataset)}</title>",
             "<style>body{font:15px system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "pre{background:#f5f5f5;padding:1em;overflow:auto}table{border-collapse:collapse}"
             "td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}"
             ".plots{display:flex;flex-wrap:wrap;gap:1em}</style>",
             f"<h1>Evaluation: {e(dataset)}</h1><pre>{e(table(results, baseline))}</pre>"]
    refs = references_for(dataset)
    if refs:
        parts.append("<h2>Published reference numbers</h2><table><tr><th>system</th><th>value</th><th>source</th></tr>")
        parts += [f"<tr><td>{e(name)}</td><td>{value}</td><td>{e(source)}</td></tr>" for name, _, value, source in refs]
        parts.append("</table>")
    parts.append("<h2>Plots</h2><div class='plots'>")
    parts += [f"<figure>{img}<figcaption>{e(title)}</figcaption></figure>" for title, img in _plots(results)]
    parts.append("</div>")
    for r in results:
        misses = sorted((p for p in r.predictions if p.get("gold") and not p.get("right")),
                        key=lambda p: -p.get("confidence", 0))[:25]
        if misses:
            parts.append(f"<h2>Worst misses: {e(r.config.name)}</h2><table><tr><th>question</th><th>gold</th>"
                         "<th>prediction</th><th>confidence</th></tr>")
            parts += [f"<tr><td>{e(p['question'])}</td><td>{e(' | '.join(p['gold']))}</td>"
                      f"<td>{e(p.get('prediction', ''))}</td><td>{p.get('confidence', 0):.2f}</td></tr>" for p in misses]
            parts.append("</table>")
    return "\n".join(parts)
