"""Host hardware inventory: the metadata of LXD's ``GET /1.0/resources``.

Everything is read straight from /proc and /sys (plus two ethtool ioctls and
one block-device ioctl); no subprocesses. Fields LXD marks ``omitempty`` are
left out when empty, values that cannot be read come back as ""/0/False the
way LXD reports them.
"""

import os

from corral.resources.cpu import get_cpu, get_gpu, get_memory
from corral.resources.devices import get_network, get_pci, get_storage, get_system, get_usb


# ------------------------------------------------------------------ API
def host_resources() -> dict:
    """Metadata of LXD's ``GET /1.0/resources`` for this host."""
    return {"cpu": get_cpu(), "memory": get_memory(), "gpu": get_gpu(),
            "network": get_network(), "storage": get_storage(), "usb": get_usb(),
            "pci": get_pci(), "system": get_system()}


def storage_pool_resources(path: str) -> dict:
    """Metadata of ``GET /1.0/storage-pools/NAME/resources`` for a pool mounted at *path*."""
    st = os.statvfs(path)
    return {
        "space": {"used": (st.f_blocks - st.f_bfree) * st.f_frsize,
                  "total": st.f_blocks * st.f_frsize},
        "inodes": {"used": st.f_files - st.f_ffree, "total": st.f_files},
    }
