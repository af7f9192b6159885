"""Property-based fuzzing of a real corrald (issue 9, fuzzing point): generated JSON bodies (random
nesting, wrong types, lone surrogates, huge integers, NaN, random unicode, `config` maps with random
key names including newlines) on every POST/PUT/PATCH endpoint, and generated image tarballs
uploaded through the API. Never a 5xx; after a refused request (a 4xx, or an operation that
fails) the state (collections GET with recursion) is unchanged. Accepted requests may change the
state: it becomes the new reference.

Bounded and reproducible: derandomized, no example database, fixed example counts
(CORRAL_FUZZ_EXAMPLES scales them). tests/integration/test_fuzz.py keeps the byte-level garbage,
oversized bodies and certificate cases.
"""
from __future__ import annotations

import json
import os
import tempfile
import re
import time

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import imagegen
from corral.api import ENDPOINT_MODULES
from helpers import unique

# Nothing in the work tree: hypothesis keeps a cache of constants even without an example database.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "corral-hypothesis"))
SCALE = int(os.environ.get("CORRAL_FUZZ_EXAMPLES", "2500")) / 2500
API_EXAMPLES = max(int(1200 * SCALE), 50)
IMAGE_EXAMPLES = max(int(400 * SCALE), 20)
FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))

RAW_BODY = re.compile(r"/files$|/metadata/templates$")
NO_BODY = re.compile(r"/secret$")
# Shutting the daemon down is not a refusal; creating networks or storage pools makes host objects
# (bridges, dnsmasq, mounts) from whatever a generated body happens to get right: those endpoints get
# the byte-level garbage of tests/integration/test_fuzz.py instead.
SKIP = {("PUT", "/internal/shutdown"), ("POST", "/1.0/networks"), ("POST", "/1.0/storage-pools")}


@pytest.fixture(scope="module")
def fz(host):
    name = unique("fz")
    host.lxc("init", "busybox", name)
    host.lxc("snapshot", name, "s0")
    yield name
    host.lxc("delete", "-f", name, check=False)


def routes(params: dict[str, str]) -> list[tuple[str, str]]:
    out = set()
    for module in ENDPOINT_MODULES:
        for route in module.routes:
            if route.method not in ("POST", "PUT", "PATCH") or (route.method, route.path) in SKIP:
                continue
            if RAW_BODY.search(route.path) or NO_BODY.search(route.path):
                continue
            path = re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: params.get(m.group(1), "nothere"), route.path)
            out.add((route.method, path))
    return sorted(out)


def managed_networks(d, names: list[str]) -> list:
    """The managed networks (`names`, known at the start: network creation is not fuzzed here), one by
    one. GET /1.0/networks?recursion=1 can answer 404 when a host interface (another test's veth)
    vanishes between its listing and its rendering: a race reported apart."""
    return [(n, d.get(f"/1.0/networks/{n}").body) for n in names]


def state(d, networks: list[str] | None = None) -> dict:
    def get(path):
        r = d.get(path)
        assert r.status == 200, f"GET {path} -> {r.status} {r.body[:300]!r}"
        return r.metadata
    insts = get("/1.0/instances?recursion=1&all-projects=true")
    for i in insts:
        i.pop("last_used_at", None)
    images = get("/1.0/images?recursion=1")
    for i in images:
        i.pop("last_used_at", None)
    return {"server": get("/1.0")["config"], "instances": insts, "images": images,
            "aliases": get("/1.0/images/aliases?recursion=1"), "profiles": get("/1.0/profiles?recursion=1"),
            "projects": get("/1.0/projects?recursion=1"), "certificates": get("/1.0/certificates?recursion=1"),
            "pools": get("/1.0/storage-pools?recursion=1"),
            "volumes": get("/1.0/storage-pools/default/volumes?recursion=1"),
            "networks": managed_networks(d, networks or []),
            "snapshots": [get(f"/1.0/instances/{i['name']}/snapshots?recursion=1") for i in insts],
            "image_files": sorted(os.listdir(os.path.join(d.dir, "images")))}


# ---- generated JSON ------------------------------------------------------------------------------

FIELDS = ["name", "description", "config", "devices", "source", "type", "profiles", "public",
          "properties", "aliases", "target", "expires_at", "ephemeral", "stateful", "restricted",
          "projects", "certificate", "password", "token", "architecture", "live", "migration",
          "instance_only", "compression_algorithm", "auto_update", "mode", "server", "fingerprint",
          "alias", "action", "timeout", "force", "size", "content_type", "filename", "secret", "path",
          "protocol", "pool", "volume", "nic", "root", "ipv4.address", "limits.cpu", "security.privileged"]
LONE_SURROGATES = ["\ud800", "a\udfffb", "\udc00\ud800", "name\ud83d"]
HUGE_INTS = [2**63, -(2**63) - 1, 2**64, 10**30, -(10**100), "<5000 digits>"]  # the last: see encode()
weird_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(LONE_SURROGATES + ["", " ", "..", "../../etc", "/", "a\nb", "a\x00b", "\u202e", "x" * 5000,
                                       "default", "fz", "s0", "user.x", "limits.memory", "${HOME}", "'; --"]),
)
config_keys = st.one_of(
    st.sampled_from(["user.a", "limits.cpu", "limits.memory", "security.privileged", "raw.lxc",
                     "environment.PATH", "image.os", "core.https_address", "volatile.x", "boot.autostart",
                     "images.max_unpacked_size", "user.a\nraw.lxc", "user.\n", "user.a b", "linux.kernel_modules"]),
    weird_text,
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True), weird_text,
)
config_maps = st.dictionaries(config_keys, st.one_of(weird_text, scalars), max_size=5)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(
        st.one_of(st.sampled_from(FIELDS), weird_text), inner, max_size=4), config_maps),
    max_leaves=12,
)
bodies = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(FIELDS), weird_text), st.one_of(json_values, config_maps),
                    max_size=6),
    json_values,
)


def encode(body) -> bytes:
    """As a client would send it: ASCII JSON, lone surrogates as \\uXXXX escapes, NaN as NaN."""
    # Python will not print a 5000-digit integer itself (int_max_str_digits): splice it in
    return json.dumps(body, ensure_ascii=True, allow_nan=True).replace('"<5000 digits>"', "9" * 5000).encode()


def outcome(d, r) -> tuple[str, int, str]:
    """("ok"|"refused"|"error", status, message) of a response, waiting for an operation it started."""
    if r.status == 501:
        msg = r.json.get("error", "")
        assert msg.startswith("not implemented"), (r.status, r.body[:300])
        return "refused", 501, msg
    if r.status >= 500:
        return "error", r.status, r.body[:500].decode(errors="replace")
    if 400 <= r.status < 500:
        assert r.json["type"] == "error", r.body[:300]
        return "refused", r.status, r.json.get("error", "")
    env = r.json
    if env.get("type") == "async":
        op = d.get(f"{env['operation']}/wait?timeout=60", timeout=70).metadata
        if op["status"] == "Failure":
            code = op.get("status_code", 400)
            return ("error" if code >= 500 else "refused"), code, op.get("err", "")
        if op["status"] == "Running":   # tokens, exec waiting for websockets: cancel, not a change
            d.request("DELETE", env["operation"])
    return "ok", r.status, ""


class Fuzzer:
    def __init__(self, d):
        self.d = d
        self.networks = [u.rsplit("/", 1)[1] for u in d.get("/1.0/networks").metadata
                         if d.get(u).metadata.get("managed")]
        self.reference = state(d, self.networks)
        self.counts: dict[str, int] = {}

    def check(self, method: str, path: str, raw: bytes, content_type: str = "application/json",
              headers: dict | None = None):
        r = self.d.request(method, path, raw=raw, headers={"Content-Type": content_type, **(headers or {})},
                           timeout=90)
        kind, status, msg = outcome(self.d, r)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        event(f"{kind} {status}")
        assert kind != "error", f"{method} {path} {raw[:300]!r} -> {status} {msg}"
        now = state(self.d, self.networks)
        if kind == "refused":
            assert now == self.reference, f"{method} {path} {raw[:300]!r} was refused ({status} {msg}) " \
                                          f"but changed the state"
        else:
            self.reference = now
        return kind


def test_fuzz_json_bodies(host, fz):
    fp = host.get("/1.0/images/aliases/busybox").metadata["target"]
    params = {"name": fz, "snap": "s0", "pool": "default", "type": "custom", "fingerprint": fp,
              "uuid": "nothere", "backup": "nothere"}
    targets = routes(params)
    assert len(targets) > 40
    fuzzer = Fuzzer(host)
    start = time.monotonic()

    @settings(FUZZ, max_examples=API_EXAMPLES)
    @given(target=st.sampled_from(targets), body=bodies)
    def run(target, body):
        fuzzer.check(*target, encode(body))

    run()
    took = time.monotonic() - start
    print(f"\nAPI fuzz: {sum(fuzzer.counts.values())} requests over {len(targets)} endpoints in {took:.1f}s: "
          f"{fuzzer.counts}")
    assert host.get("/1.0").status == 200


# ---- generated image tarballs through the API ---------------------------------------------------

_members = st.lists(st.tuples(
    st.sampled_from(["rootfs/a", "rootfs/bin/sh", "rootfs/b", "rootfs/bin", "rootfs/etc/x", "../x", "/abs",
                     "rootfs/../../x", "templates/t", "metadata.yaml", "rootfs/dev/null", "rootfs", "rootfs/l"]),
    st.sampled_from(["reg", "reg", "reg", "dir", "sym", "lnk", "chr"]),
    st.sampled_from(["/etc/passwd", "../../..", "a", "rootfs/a", ""]),
    st.binary(max_size=200)), max_size=6)
_meta = st.one_of(st.just(imagegen.METADATA), st.just(imagegen.METADATA), st.just(imagegen.METADATA),
                  st.binary(max_size=100),
                  st.sampled_from([b"architecture: amd64\n", b"architecture: x86_64\ncreation_date: 1\n"
                                                             b"expiry_date: 99999999999999999999\n"]))


def _tarball(meta: bytes, members, end: bool, comp: str, cut: int | None) -> bytes:
    import tarfile
    kinds = {"reg": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "lnk": tarfile.LNKTYPE,
             "chr": tarfile.CHRTYPE}
    chunks = [*imagegen.image_head(meta)]
    for name, kind, link, data in members:
        k = kinds[kind]
        data = data if k == tarfile.REGTYPE else b""
        chunks += imagegen.entry(imagegen.info(name, k, size=len(data), linkname=link), data)
    if end:
        chunks += imagegen.end_blocks()
    out = imagegen.compress_bytes(b"".join(chunks), comp)
    return out[:cut] if cut is not None and cut < len(out) else out


def test_fuzz_image_uploads(host):
    fuzzer = Fuzzer(host)
    start = time.monotonic()

    @settings(FUZZ, max_examples=IMAGE_EXAMPLES)
    @given(meta=_meta, members=_members, end=st.sampled_from([True, True, True, False]),
           comp=st.sampled_from(["none", "gz", "xz", "bz2"]),
           cut=st.one_of(st.none(), st.none(), st.none(), st.integers(0, 3000)), split=st.booleans())
    def run(meta, members, end, comp, cut, split):
        data = _tarball(meta, members, end, comp, cut)
        if not split:
            kind = fuzzer.check("POST", "/1.0/images", data, "application/octet-stream")
        else:   # the metadata part alone, and the same archive as rootfs
            boundary = "fuzzboundary"
            meta_tar = imagegen.compress_bytes(imagegen.flat([*imagegen.entry(imagegen.info(
                "metadata.yaml", size=len(meta)), meta), *imagegen.end_blocks()]), comp)
            raw = b"".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"; filename="{n}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n".encode() + part + b"\r\n"
                for n, part in (("metadata", meta_tar), ("rootfs", data))) + f"--{boundary}--\r\n".encode()
            kind = fuzzer.check("POST", "/1.0/images", raw, f"multipart/form-data; boundary={boundary}")
        if kind == "ok":   # accepted: remove it again (and check that leaves nothing either)
            imgs = host.get("/1.0/images").metadata
            for url in imgs:
                fp = url.rsplit("/", 1)[1]
                if fp not in reference_fps:
                    fuzzer.check("DELETE", f"/1.0/images/{fp}", b"")

    reference_fps = {u.rsplit("/", 1)[1] for u in host.get("/1.0/images").metadata}
    run()
    took = time.monotonic() - start
    print(f"\nimage upload fuzz: {sum(fuzzer.counts.values())} requests in {took:.1f}s: {fuzzer.counts}")
    build = [n for n in os.listdir(os.path.join(host.dir, "images")) if n.startswith(".")]
    assert build == [], build


@pytest.mark.parametrize("raw", [
    b'{"config": {"user.a": 18446744073709551616}}',                   # 2**64
    b'{"config": {"user.a": -9223372036854775809}}',                   # below int64
    b'{"config": {"user.a": ' + b"9" * 5000 + b"}}",                   # past Python's digit limit
    b'{"config": {"user.a": NaN}}', b'{"config": {"user.a": -Infinity}}', b'{"config": {"user.a": 1e999}}',
    b'{"config": {"user.a": "\\ud800"}}', b'{"config": {"user.\\udfff": "x"}}', b'{"description": "a\\ud83d"}',
])
def test_json_go_would_refuse(host, raw):
    """The inputs the fuzzer found answering 500 (or that Go's decoder refuses): a clear 400."""
    before = state(host)
    for method, path in (("PATCH", "/1.0"), ("PUT", "/1.0/profiles/default"), ("POST", "/1.0/profiles")):
        r = host.request(method, path, raw=raw, headers={"Content-Type": "application/json"})
        assert r.status == 400 and r.json["error"].startswith("Invalid JSON"), (method, path, r.status, r.body)
    assert state(host) == before
    ok = host.request("PATCH", "/1.0", raw=b'{"config": {"user.fuzz": 9223372036854775807}}',
                      headers={"Content-Type": "application/json"})
    assert ok.status == 200, ok.body
    host.request("PATCH", "/1.0", {"config": {"user.fuzz": None}})
