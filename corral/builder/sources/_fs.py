"""Small file-system helpers of the image sources."""
from __future__ import annotations

import os
import shutil


def empty_dir(d: str) -> None:
    """Remove what a failed run left in `d` (the directory itself stays, as the builder made it)."""
    if not os.path.isdir(d):
        return
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            os.unlink(p)
