"""Acceptance: kill -9 during a burst of writes loses no acknowledged write; shutdown waits."""
import threading
import time

import pytest

from helpers import Corrald, unique

pytestmark = pytest.mark.integration


def test_kill9_during_profile_burst_keeps_acknowledged_writes():
    d = Corrald()
    try:
        d.start()
        prefix = unique("burst")
        acked: list[str] = []
        stop = threading.Event()

        def writer(n: int):
            i = 0
            while not stop.is_set():
                name = f"{prefix}-{n}-{i}"
                try:
                    r = d.request("POST", "/1.0/profiles", {"name": name, "config": {"user.i": str(i)}}, timeout=5)
                except OSError:
                    return
                if r.status == 201:
                    acked.append(name)
                i += 1

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        d.kill9()
        stop.set()
        for t in threads:
            t.join(10)
        assert len(acked) > 20, f"only {len(acked)} writes acknowledged"
        d.start()
        present = {p.rsplit("/", 1)[1] for p in d.get("/1.0/profiles").metadata}
        missing = [n for n in acked if n not in present]
        assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:5]}"
        out = d.run("corrald", "sql", "global", "PRAGMA integrity_check", check=True).stdout
        assert "ok" in out
        print(f"{len(acked)} acknowledged writes survived kill -9")
    finally:
        d.cleanup()
