"""GET /1.0/metrics: LXD 5.0's instance metrics (Prometheus text) and corrald's own.

- `families`: LXD's metric names, HELP texts and types, in LXD's order;
- `container`: one running container's readings, from its cgroups (v1 or cgroup2), its netns's
  /proc/<pid>/net/dev and a statfs of its root filesystem (no LXCFS);
- `scrape`: which instances, read in worker threads, cached per project for 8 s as LXD does;
- `collectors`: prometheus_client collectors over a scrape and over the daemon (a registry per
  daemon, never the library's global one);
- `daemon_metrics`: corrald's own instruments (API latency, dqlite latency).
"""
