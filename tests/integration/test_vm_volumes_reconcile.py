"""VM volumes at daemon start (issue 14): what the start-up reconciliation does with the pool's
virtual-machines/ and virtual-machines-snapshots/ (unrecorded volumes and snapshots removed and
reported, a volume whose backup.yaml names it kept for `corrald recover`, an interrupted restore put
back), and the root-only modes it restores. The volumes are made with the Pool API of the daemon's
own dir pool, the daemon restarted over them."""
import os

from corral.storage.drivers.dir import DirDriver
from corral.storage.pool import Pool
from helpers import unique

VM = "virtual-machine"


def warnings(d) -> list[str]:
    return [w["last_message"] for w in d.get("/1.0/warnings?recursion=1").metadata]


def test_vm_volumes_reconciled_at_start(fresh_host):
    d = fresh_host
    root = os.path.join(d.dir, "storage-pools", "default")
    pool = Pool("default", DirDriver("default", root, {}))
    gone, kept, restored = unique("vm"), unique("vm"), unique("vm")
    pool.create_instance_empty(gone, vtype=VM, size="64MiB")
    pool.create_instance_snapshot(gone, "s0", vtype=VM)
    path = pool.create_instance_empty(kept, vtype=VM, size="64MiB")
    with open(os.path.join(path, "backup.yaml"), "w") as f:
        f.write(f"container:\n  name: {kept}\n  type: virtual-machine\n  config: {{}}\n  devices: {{}}\n")
    # a restore interrupted after the live volume was moved aside
    pool.create_instance_empty(restored, vtype=VM, size="64MiB")
    live = pool.instance_path(restored, vtype=VM)
    os.rename(live, live + ".restore-old")
    os.chmod(os.path.join(root, "virtual-machines"), 0o755)
    d.stop()
    d.start()
    msgs = warnings(d)
    vms = os.path.join(root, "virtual-machines")
    assert not os.path.exists(os.path.join(vms, gone))
    assert not os.path.exists(os.path.join(root, "virtual-machines-snapshots", gone))
    assert any(f'Removed unrecorded virtual-machine volume "{gone}"' in m for m in msgs), msgs
    assert any(f'unrecorded snapshot "{gone}/s0"' in m for m in msgs), msgs
    assert os.path.isfile(os.path.join(vms, kept, "root.img"))
    assert any(f'Kept the unrecorded virtual-machine volume "{kept}"' in m for m in msgs), msgs
    # put back, then (no instance records it, no backup.yaml of its own) removed as unrecorded
    assert not os.path.exists(live + ".restore-old")
    assert any(f'Removed unrecorded virtual-machine volume "{restored}"' in m for m in msgs), msgs
    assert os.stat(vms).st_mode & 0o777 == 0o700
    pool.delete_instance(kept, vtype=VM)
