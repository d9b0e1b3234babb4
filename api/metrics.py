"""Prometheus metrics, one registry per app so several apps (tests) do not collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("qa_http_requests_total", "HTTP requests", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("qa_http_request_seconds", "HTTP request latency", ["route"],
                                 buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                 registry=self.registry)
        self.answers = Counter("qa_answers_total", "questions answered", ["outcome"], registry=self.registry)
        self.index_documents = Gauge("qa_index_documents", "documents in the index", registry=self.registry)
        self.index_chunks = Gauge("qa_index_chunks", "chunks in the index", registry=self.registry)
