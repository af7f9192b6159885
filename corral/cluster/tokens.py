"""Cluster join tokens (LXD 5.0's clustering_join_token, cluster_join_token_expiry).

`lxc cluster add NAME` POSTs /1.0/cluster/members and gets a token operation; lxc builds the token
string from the operation's metadata (`serverName`, `secret`, `fingerprint`, `addresses`,
`expiresAt`) as base64 JSON {"server_name", "fingerprint", "addresses", "secret", "expires_at"}
(LXD's api.ClusterMemberJoinToken). `lxc cluster list-tokens` lists the running token operations,
`lxc cluster revoke-token NAME` deletes the operation. A token is single use and expires after
`cluster.join_token_expiry`; the member accepting a join calls `redeem`.
"""
from __future__ import annotations

from datetime import datetime, timezone

from corral import tokenops
from corral.cluster import render
from corral.db.queries import nodes as qnodes
from corral.errors import CorralError
from corral.operations import Operation, Work
from corral.pki import certs

# LXD 5.0.2 gives its join token operations no description of their own: they list as this.
DESCRIPTION = "Executing operation"
TokenExpired = tokenops.TokenExpired


def _is_join_token(op: Operation) -> bool:
    meta = op.metadata or {}
    return isinstance(meta, dict) and "serverName" in meta and "secret" in meta


def token_string(metadata: dict) -> str:
    """The token a client prints for a join token operation's metadata (as lxc builds it)."""
    return tokenops.encode({"server_name": metadata.get("serverName", ""),
                            "fingerprint": metadata.get("fingerprint", ""),
                            "addresses": list(metadata.get("addresses") or []),
                            "secret": metadata.get("secret", ""),
                            "expires_at": metadata.get("expiresAt") or "0001-01-01T00:00:00Z"})


def decode(value: str) -> dict:
    """A join token's fields, checked as LXD's clusterMemberJoinTokenDecode does (ValueError with
    LXD's texts when a field is missing or the string is no token)."""
    raw = tokenops.decode(value)
    if raw is None:
        raise ValueError(_base64_error(value))
    if not raw.get("server_name"):
        raise ValueError("No server name in join token")
    if not isinstance(raw.get("addresses"), list) or not raw["addresses"]:
        raise ValueError("No cluster member addresses in join token")
    if not raw.get("secret"):
        raise ValueError("No secret in join token")
    if not raw.get("fingerprint"):
        raise ValueError("No certificate fingerprint in join token")
    return raw


_B64 = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _base64_error(value: str) -> str:
    """Go's base64 error text ("illegal base64 data at input byte N") or its JSON one."""
    text = (value or "").strip()
    body = text.rstrip("=")
    for i, ch in enumerate(body):
        if ch not in _B64:
            return f"illegal base64 data at input byte {i}"
    if len(text) % 4 or len(text) - len(body) > 2:
        return f"illegal base64 data at input byte {len(text) - (len(text) % 4 or 4)}"
    return "invalid character in join token: not a JSON object"


def pending(state) -> list[Operation]:
    """The running join token operations."""
    return tokenops.pending(state.operations, _is_join_token)


def list_tokens(state) -> list[dict]:
    """What `lxc cluster list-tokens` shows: name, token, expiry of each running join token."""
    return [{"server_name": op.metadata["serverName"], "token": token_string(op.metadata),
             "expires_at": op.metadata.get("expiresAt", "")} for op in pending(state)]


def revoke(state, server_name: str) -> bool:
    """Cancel the running join tokens of `server_name` (what `lxc cluster revoke-token` does through
    DELETE /1.0/operations/ID); whether there was one."""
    ops = [op for op in pending(state) if op.metadata.get("serverName") == server_name]
    for op in ops:
        op.cancel()
    return bool(ops)


async def online_addresses(state) -> list[str]:
    """The addresses of the members a joiner can use: neither offline nor evacuated (this member is
    online: it is answering)."""
    threshold = float(state.config.get("cluster.offline_threshold") or 20)
    now = datetime.now(timezone.utc)
    async with state.db.session() as tx:
        rows = await qnodes.members(tx)
    me = getattr(getattr(state, "cluster", None), "member_id", None)
    return [r["address"] for r in rows if r["state"] != qnodes.EVACUATED
            and (r["id"] == me or render.online(r["heartbeat"], threshold, now))]


async def create(state, server_name: str) -> Work:
    """A join token for `server_name`: a token operation whose metadata carries the secret, this
    cluster's certificate fingerprint and the online members' addresses. An earlier running token
    for the same name is cancelled first (LXD keeps one per name, with the freshest addresses)."""
    addresses = await online_addresses(state)
    if not addresses:
        raise CorralError("There are no online cluster members", 500)
    revoke(state, server_name)
    with open(state.paths.join("cluster.crt")) as f:
        fingerprint = certs.fingerprint(f.read())
    meta = {"serverName": server_name, "secret": tokenops.new_secret(), "fingerprint": fingerprint,
            "addresses": addresses}
    expiry = state.config.get("cluster.join_token_expiry")
    if expiry:
        meta["expiresAt"] = tokenops.expires_at(expiry)
    # In the order LXD (a Go map) sends them: addresses, expiresAt, fingerprint, secret, serverName.
    return tokenops.work(DESCRIPTION, dict(sorted(meta.items())), resources={"cluster": None})


def redeem(state, server_name: str, secret: str) -> bool:
    """Use up the join token of `server_name` with this secret (single use): True if there was one.
    An expired one is used up too and refused with TokenExpired ("Token has expired")."""
    op = tokenops.redeem(state.operations, lambda o: _is_join_token(o)
                         and o.metadata.get("serverName") == server_name
                         and tokenops.same_secret(o.metadata, secret))
    return op is not None
