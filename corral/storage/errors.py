"""The storage layer's error (re-exported by corral/storage/drivers/base.py, where callers import it)."""
from corral.errors import CorralError


class StorageError(CorralError):
    pass
