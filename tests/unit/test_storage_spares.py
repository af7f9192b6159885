"""Ready copies of image volumes on dir pools (corral/storage/spares.py): an instance volume made
from an image is the copy made in the background after the previous one, with the same content and
mode as a direct copy; deleting the image deletes its copy; the start-up reconciliation keeps only
whole copies of known images."""
import os
import stat

from corral.storage import spares
from corral.storage.drivers.dir import DirDriver
from corral.storage.volume import CONTAINER, IMAGE, Volume

FP = "a" * 64


def make_pool(tmp_path) -> DirDriver:
    drv = DirDriver("p", str(tmp_path / "pool"), {})
    drv.create_pool()
    image = drv.volume_path(Volume("p", FP, IMAGE))
    os.makedirs(os.path.join(image, "rootfs", "bin"))
    with open(os.path.join(image, "rootfs", "bin", "sh"), "w") as f:
        f.write("#!busybox\n")
    os.symlink("sh", os.path.join(image, "rootfs", "bin", "ls"))
    with open(os.path.join(image, "metadata.yaml"), "w") as f:
        f.write("architecture: x86_64\n")
    return drv


def tree(path: str) -> dict:
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                             os.readlink(p) if os.path.islink(p) else None)
    return out


def create(drv: DirDriver, name: str) -> str:
    vol = Volume("p", name, CONTAINER)
    drv.create_volume_from_image(vol, Volume("p", FP, IMAGE))
    return drv.volume_path(vol)


def wait_refills() -> None:
    import threading
    for t in threading.enumerate():
        if t.name.startswith("spare-"):
            t.join(30)


def test_second_instance_takes_the_ready_copy(tmp_path):
    drv = make_pool(tmp_path)
    image = drv.volume_path(Volume("p", FP, IMAGE))
    first = create(drv, "c1")             # no ready copy yet: copied now
    wait_refills()
    spare = spares.spare_path(drv.path, FP)
    assert os.path.isdir(spare) and not os.path.exists(spare + ".partial")
    spare_ino = os.stat(spare).st_ino
    second = create(drv, "c2")
    assert os.stat(second).st_ino == spare_ino          # renamed into place, not copied
    assert tree(first) == tree(second) == tree(image)
    assert stat.S_IMODE(os.stat(second).st_mode) == stat.S_IMODE(os.stat(first).st_mode) == drv.volume_mode
    wait_refills()
    assert os.path.isdir(spare)                         # the next one is ready again
    assert drv.list_volumes(CONTAINER) == ["c1", "c2"]  # the copy is no volume of the pool
    assert drv.list_volumes(IMAGE) == [FP]


def test_deleting_the_image_deletes_its_copy(tmp_path):
    drv = make_pool(tmp_path)
    create(drv, "c1")
    wait_refills()
    drv.delete_volume(Volume("p", FP, IMAGE))
    assert not os.path.exists(spares.spare_path(drv.path, FP))
    spares.refill(drv, FP, drv.volume_path(Volume("p", FP, IMAGE)), delay=0).join(30)
    assert not os.path.exists(spares.spare_path(drv.path, FP))   # no copy of a deleted image


def test_reconcile_keeps_only_whole_copies_of_known_images(tmp_path):
    drv = make_pool(tmp_path)
    create(drv, "c1")
    wait_refills()
    top = spares.spares_dir(drv.path)
    os.mkdir(os.path.join(top, FP + ".partial"))        # a copy a crash interrupted
    os.mkdir(os.path.join(top, "b" * 64))               # the copy of an image deleted meanwhile
    spares.reconcile_spares(drv, {FP})
    assert os.listdir(top) == [FP]
    spares.reconcile_spares(drv, set())
    assert os.listdir(top) == []


def test_deleting_the_pool_removes_the_copies(tmp_path):
    drv = make_pool(tmp_path)
    vol = create(drv, "c1")
    wait_refills()
    drv._delete(vol)
    drv.delete_pool()
    assert not os.path.exists(spares.spares_dir(drv.path))
