"""corrald's own instruments (LXD 5.0.2 has no daemon metrics; these are named corral_*): the API
request latency by endpoint class (the route's pattern, e.g. /1.0/instances/{name}) and method, the
dqlite statement latency by kind (read, write), and what the daemon runs: asyncio tasks, threads,
operations by status and class, uptime. One object per daemon; nothing registers in
prometheus_client's global registry."""
from __future__ import annotations

import asyncio
import threading
import time

from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily

API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DB_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class DaemonMetrics:
    def __init__(self):
        self.started = time.monotonic()
        self.api = Histogram("corral_api_request_duration_seconds",
                             "The time corrald took to answer API requests, by endpoint and method.",
                             ["endpoint", "method"], registry=None, buckets=API_BUCKETS)
        self.db = Histogram("corral_dqlite_query_duration_seconds",
                            "The time statements on the global (dqlite) database took, by kind.",
                            ["kind"], registry=None, buckets=DB_BUCKETS)

    def observe_api(self, endpoint: str, method: str, seconds: float) -> None:
        self.api.labels(endpoint, method).observe(seconds)

    def observe_db(self, kind: str, seconds: float) -> None:
        self.db.labels(kind).observe(seconds)

    def collector(self, operations, scrape_seconds: float):
        return _DaemonCollector(self, operations, scrape_seconds)


class _DaemonCollector:
    def __init__(self, m: DaemonMetrics, operations, scrape_seconds: float):
        self.m, self.operations, self.scrape_seconds = m, operations, scrape_seconds

    def collect(self):
        ops = GaugeMetricFamily("corral_operations", "The operations corrald knows, by status and class.",
                                labels=["status", "type"])
        counts: dict[tuple[str, str], int] = {}
        for op in self.operations.all():
            key = (op.status, op.cls)
            counts[key] = counts.get(key, 0) + 1
        for (status, cls), n in sorted(counts.items()):
            ops.add_metric([status, cls], n)
        yield ops
        yield from self.m.api.collect()
        yield from self.m.db.collect()
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:
            tasks = 0
        yield GaugeMetricFamily("corral_tasks", "The asyncio tasks corrald's event loop runs.", value=tasks)
        yield GaugeMetricFamily("corral_threads", "The threads of the corrald process.", value=threading.active_count())
        yield GaugeMetricFamily("corral_uptime_seconds", "The time since corrald started, in seconds.",
                                value=time.monotonic() - self.m.started)
        yield GaugeMetricFamily("corral_metrics_scrape_seconds",
                                "The time the last read of the instances' metrics took, in seconds.",
                                value=self.scrape_seconds)
