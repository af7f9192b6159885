"""Standalone answers of the cross-member requests (LXD 5.0.2 standalone gave the same): `?target=`
on /1.0 and /1.0/resources names this server ("none") or nothing else, /1.0/warnings ignores it;
this server's events are located "none"; an open event stream does not hold up a shutdown."""
import json
import subprocess
import time

from helpers import Corrald, unique


def test_target_on_a_standalone_server(daemon):
    assert daemon.get("/1.0/resources?target=none").status == 200
    assert daemon.get("/1.0?target=none").metadata["environment"]["server_name"]
    for path in ("/1.0/resources?target=nope", "/1.0?target=nope"):
        r = daemon.get(path)
        assert (r.status, r.json["error"]) == (404, "Cluster member not found"), path
    assert daemon.get("/1.0/warnings?target=nope").status == 200


def test_standalone_events_are_located_none_and_end_at_shutdown():
    d = Corrald()
    mon = None
    try:
        d.start()
        mon = subprocess.Popen(["lxc", "monitor", "--type=lifecycle", "--format=json"], env=d.env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(1)
        name = unique("p")
        d.lxc("profile", "create", name)
        t0 = time.monotonic()
        d.run("corrald", "shutdown", check=True, timeout=60)
        took = time.monotonic() - t0
        out, _ = mon.communicate(timeout=10)   # the stream ended with the daemon
        assert took < 10, f"corrald shutdown took {took:.1f}s with an event stream open"
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        mine = [e for e in events if e["metadata"].get("source") == f"/1.0/profiles/{name}"]
        assert len(mine) == 1 and mine[0]["location"] == "none", out
    finally:
        if mon is not None and mon.poll() is None:
            mon.kill()
            mon.wait()
        d.cleanup()
