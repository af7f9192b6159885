"""Rate-limited logging of repeated messages.

A flood of connections must not become a flood of log lines (one per refused connection or failed
accept fills the disk). Every handler of the daemon carries one shared filter: a message template
(logger, level and the first line of its format string) passes at most BURST times per WINDOW
seconds; the rest are counted, and the first one let through after the window says how many
similar messages were suppressed. Debug and info messages pass untouched.
"""
from __future__ import annotations

import logging
import time

BURST = 5
WINDOW = 60.0
MAX_KEYS = 4096


class RepeatFilter(logging.Filter):
    def __init__(self, burst: int = BURST, window: float = WINDOW, min_level: int = logging.WARNING):
        super().__init__()
        self.burst = burst
        self.window = window
        self.min_level = min_level
        self._seen: dict[tuple, list] = {}   # key -> [window start, passed, suppressed]

    def filter(self, record: logging.LogRecord) -> bool:
        # One decision per record, however many handlers ask.
        decided = getattr(record, "_corral_throttled", None)
        if decided is None:
            decided = self._decide(record)
            record._corral_throttled = decided
        return decided

    def _key(self, record: logging.LogRecord) -> tuple:
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        # asyncio's exception handler puts per-connection details after the first line.
        return record.name, record.levelno, template.split("\n", 1)[0][:120]

    def _decide(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        now = time.monotonic()
        key = self._key(record)
        state = self._seen.get(key)
        if state is None or now - state[0] >= self.window:
            suppressed = state[2] if state else 0
            if state is None and len(self._seen) >= MAX_KEYS:
                self._prune(now)
            self._seen[key] = [now, 1, 0]
            if suppressed:
                record.msg = f"{record.getMessage()} (suppressed {suppressed} similar messages " \
                             f"in the last {self.window:.0f}s)"
                record.args = ()
            return True
        if state[1] < self.burst:
            state[1] += 1
            return True
        state[2] += 1
        return False

    def _prune(self, now: float) -> None:
        for k in [k for k, v in self._seen.items() if now - v[0] >= self.window]:
            del self._seen[k]
        if len(self._seen) >= MAX_KEYS:   # still full of live keys: forget the oldest half
            for k in sorted(self._seen, key=lambda k: self._seen[k][0])[:MAX_KEYS // 2]:
                del self._seen[k]


FILTER = RepeatFilter()


def install(handler: logging.Handler) -> logging.Handler:
    handler.addFilter(FILTER)
    return handler
