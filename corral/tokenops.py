"""Token operations, as LXD makes them: an operation of class "token" is a grant waiting for whoever
holds its secret. The client is handed (or builds from the operation's metadata) a token string,
base64 of a JSON object carrying the secret; the grant is single use and may expire
(metadata `expiresAt`). Cancelling the operation (DELETE /1.0/operations/ID) revokes it.

Shared by certificate add tokens (corral/trust.py) and cluster join tokens (corral/cluster/tokens.py).
"""
from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from datetime import datetime, timedelta, timezone
from typing import Callable

from corral import timeutil
from corral.errors import Forbidden
from corral.operations import TOKEN, Operation, OperationManager, Work


class TokenExpired(Forbidden):
    def __init__(self):
        super().__init__("Token has expired")


def encode(token: dict) -> str:
    """LXD's token strings: base64 (standard, padded) of the compact JSON."""
    return base64.b64encode(json.dumps(token, separators=(",", ":")).encode()).decode()


def decode(value: str) -> dict | None:
    """The JSON object a token string carries, or None when it is not one."""
    try:
        raw = json.loads(base64.b64decode((value or "").strip(), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return raw if isinstance(raw, dict) else None


def new_secret() -> str:
    """LXD's RandomCryptoString: 32 random bytes, hex."""
    return secrets.token_hex(32)


def expires_at(seconds: int) -> str:
    """The `expiresAt` of a token valid for `seconds` from now."""
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expired(metadata: dict) -> bool:
    when = (metadata or {}).get("expiresAt")
    return bool(when) and timeutil.parse(when) < datetime.now(timezone.utc)


def work(description: str, metadata: dict, resources: dict | None = None) -> Work:
    """A token operation to be (tokens live in the default project, as LXD's)."""
    return Work(project="default", cls=TOKEN, description=description, metadata=metadata, resources=resources)


def same_secret(metadata: dict, secret: str) -> bool:
    return bool(secret) and hmac.compare_digest(str((metadata or {}).get("secret", "")), secret)


def pending(operations: OperationManager, matches: Callable[[Operation], bool]) -> list[Operation]:
    """The running token operations `matches` picks."""
    return [op for op in operations.all("default") if op.cls == TOKEN and op.status == "Running" and matches(op)]


def redeem(operations: OperationManager, matches: Callable[[Operation], bool]) -> Operation | None:
    """Use up the first running token `matches` accepts (tokens are single use) and return it;
    None when there is none. An expired token is used up too, then refused (TokenExpired)."""
    for op in pending(operations, matches):
        op.finish("Cancelled", "Token used")
        if expired(op.metadata or {}):
            raise TokenExpired()
        return op
    return None
