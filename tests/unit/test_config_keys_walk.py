"""Issue 10, acceptance 8: every key of LXD 5.0.2's documentation (config-keys.tsv) in a scope Corral
has is declared in Corral's key registry: accepted with a validator, or refused with the reason.

Scopes Corral does not have (device types, nictypes, storage drivers and network types it does not
run) must be refused as a whole, with a reason. A few documentation tables are not config scopes
Corral could have (listed in OUT_OF_SCOPE with why). The counts are printed (pytest -s).
"""
from __future__ import annotations

import csv
import os
import re
from collections import Counter

import pytest

import corral.config  # noqa: F401  (registers every declaration)
from corral.config import devices as dev
from corral.config import network as netcfg
from corral.config.keys import INSTANCE, PROJECT, SERVER, ConfigError, KeyRefused, check_value, lookup
from corral.config.storage import pool_scope, volume_scope
from corral.errors import BadRequest, CorralError, NotImplementedFeature

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TSV = os.path.join(os.path.dirname(ROOT), "shared", "lxd-5.0.2", "config-keys.tsv")

# LXD 5.0.2's devices_nic.md tables, in the order of the document (each sorted by key).
NIC_TABLES = ("bridged", "macvlan", "sriov", "ovn", "physical", "ipvlan", "p2p", "routed")
OUT_OF_SCOPE = {
    "howto/network_zones.md": "network zones have no API in Corral (/1.0/network-zones answers 404)",
    "image-handling.md": "image properties, not configuration keys (no requirements are checked)",
}
# Defaults LXD's documentation misspells; the value LXD itself acts on is the one here.
DOC_TYPOS = {("project", "restricted.containers.privilege"): "unprivileged"}
REFUSAL = re.compile(r"^(Device \"[^\"]+\": )?(not implemented: |not supported on this host: )")
BAD_VALUES = ("\x01 not valid *", "#cloud-config\n: [", "\x00", "-1", "101%", "256")


def _rows() -> list[dict]:
    with open(TSV, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _concrete(key: str) -> str:
    """A real key name for a documented pattern: volatile.<name>.hwaddr -> volatile.eth0.hwaddr."""
    if key == "limits.kernel.*":   # only getrlimit(2)'s resource names are keys
        return "limits.kernel.nofile"
    return key.replace("<name>", "eth0").replace("NAME", "t1").replace("*", "example")


def _nic_table(rows: list[dict]) -> list[str]:
    """The nictype of each devices_nic.md row: a new table starts where the key order restarts."""
    out, table, prev = [], 0, ""
    for r in rows:
        if prev and r["key"] < prev:
            table += 1
        out.append(NIC_TABLES[table])
        prev = r["key"]
    assert table == len(NIC_TABLES) - 1, "devices_nic.md tables not found as expected"
    return out


def _classify(rows: list[dict]):
    """(scope, key, row) for rows of scopes Corral has; ("refused-scope", what, row) for scopes it refuses."""
    nic_rows = [r for r in rows if r["doc"] == "reference/devices_nic.md"]
    nictypes = dict(zip(map(id, nic_rows), _nic_table(nic_rows)))
    for r in rows:
        doc, key = r["doc"], r["key"]
        if doc in OUT_OF_SCOPE:
            yield "out-of-scope", doc, r
        elif doc == "server.md":
            yield SERVER, key, r
        elif doc == "reference/instance_options.md":
            yield INSTANCE, key, r
        elif doc == "projects.md":
            yield PROJECT, key, r
        elif doc == "explanation/security.md":
            yield dev.nic_scope("bridged"), key, r
        elif doc == "reference/devices_disk.md":
            yield dev.DISK, key, r
        elif doc == "reference/devices_proxy.md":
            yield dev.PROXY, key, r
        elif doc == "reference/devices_nic.md":
            nictype = nictypes[id(r)]
            if nictype in dev.NIC_TYPES:
                yield dev.nic_scope(nictype), key, r
            else:
                yield "refused-scope", f"nictype:{nictype}", r
        elif doc.startswith("reference/devices_"):
            yield "refused-scope", "device:" + doc[len("reference/devices_"):-3].replace("_", "-"), r
        elif doc.startswith("reference/storage_"):
            driver = doc[len("reference/storage_"):-3]
            if driver in ("dir", "btrfs"):
                scope = pool_scope(driver) if r["section"].startswith("Storage pool") else volume_scope(driver)
                yield scope, key, r
            else:
                yield "refused-scope", f"storage:{driver}", r
        elif doc.startswith("reference/network_"):
            ntype = doc[len("reference/network_"):-3]
            if ntype in netcfg.SCOPES:
                yield netcfg.SCOPES[ntype], key, r
            else:
                yield "refused-scope", f"network:{ntype}", r
        else:
            raise AssertionError(f"config-keys.tsv row of an unknown document: {doc} {key}")


def _refuses_scope(what: str) -> str:
    """The error Corral gives for a whole scope it does not run."""
    kind, name = what.split(":", 1)
    try:
        if kind == "device":
            from corral.instance.devices import device_class
            device_class(name)
        elif kind == "nictype":
            from corral.instance.devices.nic import Nic
            Nic(None, None, "eth0", {"type": "nic", "nictype": name, "parent": "eth0"}).validate()
        elif kind == "storage":
            from corral.storage import driver_class
            driver_class(name)
        elif kind == "network":
            from corral.network import driver_class as net_driver
            net_driver(name)
    except (NotImplementedFeature, BadRequest) as e:
        return e.message
    raise AssertionError(f"{what} is accepted")


def _check_one(scope: str, key: str, row: dict) -> str:
    """'working' or 'refused' for one declared key; assertion errors for what is wrong."""
    name = _concrete(key)
    k = lookup(scope, name)
    assert k is not None, f"{scope}: {key} ({row['doc']}) is not declared"
    default = DOC_TYPOS.get((scope, key), row["default"].strip("`"))
    if k.refused:
        assert REFUSAL.match(k.refused), f"{scope}: {key}: refusal without a reason: {k.refused!r}"
        some = "1" if k.parse is not str else "x"
        candidates = [v for v in ("true", "1", "x", "10", "1MB", "auto", "allow", "::1", "stop", "ipip",
                                  "10.0.0.0/8", "eth0", "1d") if v != k.default]
        for v in candidates:
            try:
                check_value(k, name, v)
            except KeyRefused as e:
                assert REFUSAL.match(e.message) and name in e.message, e.message
                return "refused"
            except ConfigError:
                continue
        raise AssertionError(f"{scope}: {key}: no value is refused ({some})")
    # A working key: a wrong value is refused with the key's name, when it has a validator.
    if k.parse is not str and not k.name.startswith("volatile.*"):
        errors = []
        for bad in BAD_VALUES:
            try:
                check_value(k, name, bad)
            except ConfigError as e:
                errors.append(e.message)
        assert errors, f"{scope}: {key}: no invalid value is refused"
        assert all(name in m for m in errors), errors
    # The documented default, where it is a literal value, is the declared one.
    if re.fullmatch(r"[\w.%:/,-]+", default) and default != "-" and not k.is_pattern:
        assert k.default == default, f"{scope}: {key}: default {k.default!r}, LXD documents {default!r}"
    return "working"


def test_every_documented_key_is_declared():
    _walk(lambda scope: scope != PROJECT)


def test_every_documented_project_key_is_declared():
    """Project keys (restricted.*, features.*, limits.*) come from the projects work (issue 10)."""
    _walk(lambda scope: scope == PROJECT)


def _walk(wanted) -> None:
    rows = _rows()
    assert len(rows) == 614
    total = 0
    counts: Counter = Counter()
    refused_scopes: dict[str, str] = {}
    problems = []
    for scope, key, row in _classify(rows):
        if not wanted(scope):
            continue
        total += 1
        if scope == "out-of-scope":
            counts[("out-of-scope", "listed")] += 1
            continue
        if scope == "refused-scope":
            if key not in refused_scopes:
                refused_scopes[key] = _refuses_scope(key)
            counts[(key, "scope refused")] += 1
            continue
        try:
            counts[(scope, _check_one(scope, key, row))] += 1
        except AssertionError as e:
            problems.append(str(e).splitlines()[0])
    print("\nconfig-keys.tsv: keys per scope (working / refused with a reason)")
    for scope in sorted({s for s, _ in counts}):
        print(f"  {scope:26} " + ", ".join(f"{n} {kind}" for (s, kind), n in sorted(counts.items()) if s == scope))
    declared = sum(n for (s, kind), n in counts.items() if kind in ("working", "refused"))
    print(f"  declared: {declared} (working {sum(n for (_, k), n in counts.items() if k == 'working')}, "
          f"refused {sum(n for (_, k), n in counts.items() if k == 'refused')}); whole scopes refused: "
          f"{sum(n for (_, k), n in counts.items() if k == 'scope refused')} keys in {len(refused_scopes)} scopes")
    for what, msg in sorted(refused_scopes.items()):
        print(f"    {what}: {msg}")
    assert not problems, f"{len(problems)} keys not declared as LXD documents them:\n" + "\n".join(problems)
    assert sum(counts.values()) == total


@pytest.mark.parametrize("what", ["device:unix-char", "device:gpu", "device:usb", "device:infiniband",
                                  "device:tpm", "device:pci", "device:unix-block", "device:unix-hotplug",
                                  "nictype:sriov", "nictype:routed", "storage:zfs", "network:ovn"])
def test_scopes_corral_does_not_run_are_refused_with_a_reason(what):
    msg = _refuses_scope(what)
    assert "not implemented" in msg or "not available on this host" in msg, msg


def test_refused_instance_key_message_and_status():
    from corral.config.keys import validate
    with pytest.raises(KeyRefused) as e:
        validate(INSTANCE, {"security.syscalls.intercept.mknod": "true"})
    assert e.value.status == 501 and "security.syscalls.intercept.mknod" in e.value.message
    # The default is what Corral does: setting it is accepted.
    assert validate(INSTANCE, {"security.syscalls.intercept.mknod": "false"})
    with pytest.raises(KeyRefused) as e:
        validate(INSTANCE, {"raw.qemu.conf": "[device]"})
    assert e.value.status == 501 and e.value.message.startswith("not implemented: raw.qemu.conf")
    assert validate(INSTANCE, {"raw.qemu": "-m 1G"}) == {"raw.qemu": "-m 1G"}   # virtual machines take it


def test_device_keys_through_the_device_classes():
    from corral.instance.devices.disk import Disk
    from corral.instance.devices.proxy import Proxy
    with pytest.raises(KeyRefused) as e:
        Disk(None, None, "d", {"type": "disk", "source": "/srv", "path": "/mnt", "limits.read": "10MB"}).validate()
    assert e.value.message.startswith('Device "d": not implemented: limits.read')
    with pytest.raises(CorralError) as e:
        Disk(None, None, "d", {"type": "disk", "source": "/srv", "path": "/mnt", "readonly": "maybe"}).validate()
    assert e.value.message == ('Device validation failed for "d": Invalid value for device option "readonly": '
                               'Invalid value for a boolean "maybe"')
    with pytest.raises(CorralError) as e:
        Disk(None, None, "d", {"type": "disk", "source": "/srv", "path": "/mnt", "nope": "1"}).validate()
    assert e.value.message == 'Device validation failed for "d": Invalid device option "nope"'
    # A relative path is taken from "/" (LXD).
    d = Disk(None, None, "d", {"type": "disk", "source": "/srv", "path": "mnt/data"})
    d.validate()
    assert d.config["path"] == "/mnt/data"
    with pytest.raises(KeyRefused):
        Proxy(None, None, "p", {"type": "proxy", "listen": "tcp:127.0.0.1:1", "connect": "tcp:127.0.0.1:2",
                                "nat": "true"}).validate()
