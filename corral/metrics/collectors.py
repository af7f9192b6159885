"""The exposition: prometheus_client collectors over one scrape's readings (and corrald's own
metrics), rendered in a registry made for the request, in Prometheus text format ending with LXD's
`# EOF` line."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.samples import Sample

from corral.metrics.families import COUNTER, FAMILIES, UNTYPED


class InstanceCollector:
    """LXD's instance metric families over a list of scrape.Reading, in LXD's order; a family
    with no sample is left out, as LXD does."""

    def __init__(self, readings):
        self.readings = sorted(readings, key=lambda r: (r.project, r.name))

    def collect(self):
        for key, name, help_text, kind in FAMILIES:
            cls = CounterMetricFamily if kind == COUNTER else GaugeMetricFamily
            family = None
            for r in self.readings:
                base = {"name": r.name, "project": r.project}
                if key not in UNTYPED:
                    base["type"] = r.type
                for labels, value in r.data.get(key, ()):
                    if family is None:
                        family = cls(name, help_text)
                    family.samples.append(Sample(name, {**labels, **base}, value, None, None, None))
            if family is not None:
                yield family


def exposition(*collectors) -> bytes:
    """The collectors' families in Prometheus text format (prometheus_client's), in a registry of
    this call's own."""
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    return generate_latest(registry)


def render_instances(readings) -> bytes:
    return exposition(InstanceCollector(readings))


def render(*collectors) -> bytes:
    """A whole answer: the collectors' families, then LXD's closing `# EOF` line."""
    return exposition(*collectors) + b"# EOF\n"
