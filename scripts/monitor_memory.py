"""Memory of liblxc's [lxc monitor] processes (smaps_rollup) under a real corrald: fresh, after a
kill -9 and restart of the daemon, and after the daemon's heap has grown under API load (REQS
requests, default 3000). Run as root from the repository: .venv/bin/python scripts/monitor_memory.py"""
import os, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
from conftest import initialised_corrald
from helpers import unique


def rollup(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:", "Private_Clean:", "Private_Dirty:"):
                out[parts[0][:-1]] = int(parts[1])
    return out


def ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def monitors(d, names):
    res = {}
    for n in names:
        pid = d.get(f"/1.0/instances/{n}/state").metadata["pid"]
        m = ppid(pid)
        with open(f"/proc/{m}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode()
        r = rollup(m)
        res[n] = r
        print(f"  {n}: monitor {m} [{cmd.strip()}] parent {ppid(m)} RSS {r['Rss']/1024:.1f} MiB "
              f"PSS {r['Pss']/1024:.1f} MiB private {(r['Private_Clean']+r['Private_Dirty'])/1024:.1f} MiB")
    return res


def daemon_rss(d):
    r = rollup(d.proc.pid)
    return f"daemon RSS {r['Rss']/1024:.1f} MiB PSS {r['Pss']/1024:.1f} MiB"


with initialised_corrald() as d:
    a = [unique("m") for _ in range(3)]
    for n in a:
        d.lxc("launch", "busybox", n)
    print("fresh daemon:", daemon_rss(d)); monitors(d, a)
    d.kill9(); d.start()
    print("after kill -9 + restart, old monitors:", daemon_rss(d)); monitors(d, a)
    b = [unique("r") for _ in range(2)]
    for n in b:
        d.lxc("launch", "busybox", n)
    print("after restart, new monitors:"); monitors(d, b)
    t0 = time.time()
    for i in range(int(os.environ.get("REQS", "3000"))):
        d.get("/1.0/instances?recursion=2")
    print(f"load: {time.time()-t0:.0f}s;", daemon_rss(d))
    c = [unique("g") for _ in range(2)]
    for n in c:
        d.lxc("launch", "busybox", n)
    print("after load, new monitors:"); monitors(d, c)
    print("after load, old monitors:"); monitors(d, a[:1] + b[:1])
