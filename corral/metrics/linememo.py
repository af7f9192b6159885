"""prometheus_client's text lines of the instance families, remembered from one scrape to the next.

Formatting a sample is most of a scrape's cost in Python (the library escapes and sorts every
label of every sample), and between two scrapes most samples of most containers keep their value
(an idle container's memory, disk sizes and counters). A line is a function of its family, labels
and value: the lines of the samples seen before are reused, only the new ones go through the
library (one generate_latest of just those), and the answer is assembled family by family as the
library would have written it (tests/unit/test_metrics_readings.py compares the two byte for byte).
"""
from __future__ import annotations

import threading

from prometheus_client.core import Metric

from corral.metrics.collectors import InstanceCollector, exposition


class _Families:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


def _key(s) -> tuple:
    return s.name, tuple(s.labels.items()), float(s.value)   # same labels, same order: from one collector


class LineMemo:
    def __init__(self):
        self._lines: dict[tuple, bytes] = {}
        self._headers: dict[tuple, bytes] = {}
        self._lock = threading.Lock()

    def render(self, readings) -> bytes:
        """The instance families of `readings`, as render_instances(readings) writes them."""
        with self._lock:
            return self._render(readings)

    def _render(self, readings) -> bytes:
        families = list(InstanceCollector(readings).collect())
        keyed, partial = [], []
        for fam in families:
            keys = [_key(s) for s in fam.samples]
            keyed.append(keys)
            need = [s for s, k in zip(fam.samples, keys) if k not in self._lines]
            if need or (fam.name, fam.type) not in self._headers:
                part = Metric(fam.name, fam.documentation, fam.type)
                part.samples = need
                partial.append(part)
        if partial:
            lines = exposition(_Families(partial)).split(b"\n")
            i = 0
            for part in partial:
                if not (lines[i].startswith(b"# HELP ") and lines[i + 1].startswith(b"# TYPE ")):
                    raise RuntimeError(f"unexpected exposition of {part.name}: {lines[i][:80]!r}")
                self._headers[(part.name, part.type)] = lines[i] + b"\n" + lines[i + 1] + b"\n"
                i += 2
                for s in part.samples:
                    self._lines[_key(s)] = lines[i] + b"\n"
                    i += 1
        out, used = [], {}
        for fam, keys in zip(families, keyed):
            out.append(self._headers[(fam.name, fam.type)])
            for k in keys:
                line = used[k] = self._lines[k]
                out.append(line)
        if len(self._lines) > 2 * len(used) + 1024:   # lines of values gone: dropped now and then
            self._lines = used
        return b"".join(out)
