"""Changing membership: enable (bootstrap), join and accept, remove, rename, handover at shutdown."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil

from corral import timeutil
from corral.cluster import certificate
from corral.cluster.peer import PeerClient, PeerError
from corral.db.queries import cluster as qc
from corral.errors import BadRequest, CorralError, NotFound
from corral.https import split_address
from corral.pki import certs, tls

log = logging.getLogger(__name__)


def _specific(address: str, what: str) -> str:
    """"IP:PORT" of a listen address (default port 8443); wildcards can't be a member's address."""
    host, port = split_address(address)
    if host in ("", "0.0.0.0", "::"):
        raise BadRequest(f"Cluster address {address!r} must be a specific address, not a wildcard ({what})")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _versions(cluster) -> tuple[int, int]:
    """(schema version, API extension count) of this member: members must agree on both."""
    return cluster.versions()


def _write_cert(cluster, crt_pem: str, key_pem: str) -> None:
    certificate.install(cluster.paths, crt_pem, key_pem)


# ---- bootstrap --------------------------------------------------------------------------------

async def enable(cluster, server_name: str) -> None:
    """A running standalone server becomes the first member of a new cluster, its data kept."""
    async with cluster._lock:
        if cluster.clustered:
            raise BadRequest("This server is already clustered")
        if not server_name:
            raise BadRequest("Server name must not be empty")
        raw = cluster.cluster_address_config()
        if not raw:
            raise BadRequest("No core.https_address or cluster.https_address config key is set on this member")
        address = _specific(raw, "core.https_address")
        local = cluster.state.db.open_local()
        crt, key = certs.ensure_server_cert(cluster.paths.root)
        with open(crt) as c, open(key) as k:
            _write_cert(cluster, c.read(), k.read())
        async with cluster.state.db.transaction() as tx:
            await qc.bootstrap(tx, cluster.member_id, server_name, address)
        async with cluster.state.db.offline() as box:
            local.set_config({"cluster.https_address": address})
            local.set_raft_nodes([{"id": cluster.member_id, "address": address, "role": 0, "name": server_name}])
            cluster.gateway.configure(cluster.member_id, address, cluster.client_context)
            box["recover"] = [(cluster.member_id, address, 0)]
    await cluster.became_member()
    log.info("clustering enabled: member %s at %s", server_name, address)


# ---- join (on the joining server) ----------------------------------------------------------------

async def join(cluster, req: dict, progress=None) -> None:
    name = req.get("server_name") or ""
    target = req.get("cluster_address") or ""
    cert_pem = req.get("cluster_certificate") or ""
    if cluster.clustered:
        raise BadRequest("This server is already clustered")
    if not name:
        raise BadRequest("Server name must not be empty")
    if not cert_pem:
        raise BadRequest("The cluster certificate (cluster_certificate) is required to join a cluster")
    try:
        certs.fingerprint(cert_pem)
    except ValueError:
        raise BadRequest("Invalid cluster certificate: not a PEM certificate") from None
    target = _specific(target, "cluster_address")
    own = req.get("server_address") or cluster.cluster_address_config()
    if not own:
        raise BadRequest("No server_address given and no core.https_address set on this server")
    address = _specific(own, "server_address")
    async with cluster.state.db.session() as tx:
        held = {k: v for k, v in (await qc.local_holdings(tx)).items() if v}
    if held:
        raise BadRequest("The joining server must be empty, it holds: " +
                         ", ".join(f"{n} {k}" for k, n in held.items()))
    schema, api = _versions(cluster)
    crt, key = certs.ensure_server_cert(cluster.paths.root)
    ctx = tls.client_context(crt, key, server_cert_pem=cert_pem)
    client = PeerClient(lambda: ctx)
    # The password is the trust password or a join token's secret (`lxd init` sends a token's secret
    # as the cluster password, and the target takes either, as LXD 5.0's certificatesPost does).
    secret = req.get("cluster_password") or ""
    token = _token(secret)
    if token is not None:
        secret = token["secret"]
    body = {"name": name, "address": address, "schema": schema, "api_extensions": api,
            "architecture": os.uname().machine, "secret": secret}
    try:
        accepted = await client.call(target, "POST", "/internal/cluster/accept", body, timeout=60)
    except PeerError as e:
        text = str(e)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            text = "the cluster certificate does not match the one the target server presents"
        raise BadRequest(f"Failed to join cluster: {text}") from None
    finally:
        await client.close()
    local = cluster.state.db.open_local()
    cfg = local.get_config()
    if not cfg.get("core.https_address"):
        await cluster.state.config.update({"core.https_address": address}, replace=False)
    _write_cert(cluster, accepted["cluster_certificate"], accepted["cluster_key"])
    async with cluster.state.db.offline():
        local.set_config({"cluster.https_address": address})
        local.set_raft_nodes(accepted["raft_nodes"])
        cluster.gateway.configure(int(accepted["id"]), address, cluster.client_context)
        data = cluster.paths.global_db
        for entry in os.listdir(data):   # the cluster's database replaces ours
            path = os.path.join(data, entry)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    async with cluster.state.db.transaction() as tx:
        await qc.joined(tx, cluster.member_id)
    await cluster.became_member()
    await cluster.announce()
    try:
        await cluster.on_leader("POST", "/internal/cluster/rebalance", {})
    except (PeerError, CorralError) as e:
        log.warning("rebalance after join failed: %s", e)


def _token(password: str) -> dict | None:
    """A join token given as the cluster password (`lxd init` sends it so), decoded; else None."""
    from corral.cluster import tokens
    try:
        return tokens.decode(password) if password else None
    except ValueError:
        return None


# ---- accept (on the member the joiner called, then on the leader) --------------------------------

async def accept(cluster, body: dict, *, validated: bool = False) -> dict:
    if not cluster.clustered:
        raise BadRequest("This server is not clustered")
    name, address = body.get("name") or "", body.get("address") or ""
    if not validated:
        if not await _secret_ok(cluster, name, body.get("secret") or ""):
            raise CorralError("not authorized: invalid cluster password or join token (tokens are single use "
                              "and made for one member name)", 403)
    if not await cluster.is_leader():
        return await cluster.on_leader("POST", "/internal/cluster/accept-member", body, timeout=60)
    schema, api = _versions(cluster)
    if (body.get("schema"), body.get("api_extensions")) != (schema, api):
        raise BadRequest(f"The joining server version doesn't match (expected schema {schema} with API "
                         f"count {api}, got schema {body.get('schema')} with API count {body.get('api_extensions')})")
    async with cluster._lock:
        async with cluster.state.db.transaction() as tx:
            if await qc.by_name(tx, name):
                raise BadRequest(f"The cluster already has a member with name: {name}")
            if await qc.by_address(tx, address):
                raise BadRequest(f"The cluster already has a member with address: {address}")
            member_id = await qc.add(tx, name=name, address=address, schema=schema, api_extensions=api,
                                     arch=body.get("architecture") or "", heartbeat=timeutil.now())
        try:
            await cluster.gateway.add(member_id, address)
        except Exception as e:
            async with cluster.state.db.transaction() as tx:
                await qc.delete(tx, member_id)
            raise CorralError(f"Failed to add the member to the raft configuration: {e}") from None
        await cluster._sync_raft_nodes()
    crt, key = cluster.cert_files()
    with open(crt) as c, open(key) as k:
        crt_pem, key_pem = c.read(), k.read()
    nodes = [n.to_dict() for n in cluster.gateway.raft_nodes()]
    return {"id": member_id, "raft_nodes": nodes, "cluster_certificate": crt_pem, "cluster_key": key_pem}


async def _secret_ok(cluster, name: str, secret: str) -> bool:
    """The trust password, or a join token for `name` (made on any member: tokens are operations of
    the member that made them, so the others are asked too)."""
    if not secret:
        return False
    from corral.trust import check_password
    if redeem_local(cluster, name, secret) or \
            check_password(cluster.state.config.get("core.trust_password") or "", secret):
        return True
    answers = await cluster.notify_all("POST", "/internal/cluster/redeem", {"name": name, "secret": secret})
    return any(err is None for err in answers.values())


def redeem_local(cluster, name: str, secret: str) -> bool:
    from corral.cluster import tokens
    return tokens.redeem(cluster.state, name, secret)


# ---- remove, rename -----------------------------------------------------------------------------

async def remove_member(cluster, name: str, force: bool) -> None:
    if not cluster.clustered:
        raise BadRequest("Server isn't part of a cluster")
    async with cluster.state.db.session() as tx:
        member = await qc.by_name(tx, name)
    if member is None:
        raise NotFound("Cluster member not found")
    if member["id"] == cluster.member_id and await cluster.is_leader():
        await handover_leadership(cluster)
    if not await cluster.is_leader():
        await cluster.on_leader("POST", "/internal/cluster/remove", {"name": name, "force": force}, timeout=60)
        return
    async with cluster._lock:
        if not force and member["id"] != cluster.member_id and cluster.online(member):
            try:   # the member forgets the cluster and stops (LXD's clusterNodeDelete on the member)
                await cluster.peer.request(member["address"], "POST", "/internal/cluster/reset", {}, timeout=5)
            except PeerError as e:
                log.warning("member %s did not answer the removal: %s", name, e)
        if member["id"] in {n.id for n in await cluster.gateway.members()}:
            await cluster.gateway.remove(member["id"])
        async with cluster.state.db.transaction() as tx:
            await qc.delete(tx, member["id"])
    await cluster.rebalance()      # at once, not at the next heartbeat
    if cluster.heartbeat is not None:
        cluster.heartbeat.restart_round()


async def rename_member(cluster, old: str, new: str) -> None:
    if not new:
        raise BadRequest("Member name must not be empty")
    async with cluster.state.db.transaction() as tx:
        member = await qc.by_name(tx, old)
        if member is None:
            raise NotFound("Cluster member not found")
        if await qc.by_name(tx, new):
            raise BadRequest(f"The cluster already has a member with name: {new}")
        await qc.rename(tx, member["id"], new)
    if member["id"] == cluster.member_id:
        cluster.server_name = new
    await cluster._sync_raft_nodes_safe()


# ---- handover at shutdown ---------------------------------------------------------------------

async def handover_leadership(cluster) -> bool:
    """The leader gives leadership to another online voter (dqlite TRANSFER) so writes go on."""
    others = [m for m in await cluster._role_members() if m.id != cluster.member_id and m.online]
    targets = [m for m in others if m.role == "voter"]
    if not targets:
        return False
    # The others finish what they run on our node and start nothing new meanwhile, so no
    # transaction is cut off by the transfer (their clients see no error); then they dial the new one.
    await cluster.notify_all("POST", "/internal/cluster/db-pause", {})
    try:
        # raft gives a transfer one election timeout: a voter promoted a moment ago (still
        # catching up) or one whose stream is being redialled can miss it; then the next one is tried.
        for attempt in range(2 * len(targets)):
            target = targets[attempt % len(targets)]
            try:
                await cluster.gateway.transfer(target.id)
            except Exception as e:
                log.info("leadership transfer to member %d failed (%s); trying again", target.id, e)
            for _ in range(50):
                leader = await cluster.gateway.local_leader()
                if leader and leader != cluster.member_id:
                    log.info("leadership handed over to member %d", leader)
                    return True
                await asyncio.sleep(0.02)
        return False
    finally:
        await cluster.notify_all("POST", "/internal/cluster/db-resume", {})


async def handover(cluster) -> None:
    """Before this member stops: leadership away from it, then its raft role to another member."""
    if not cluster.clustered or cluster._wipe_on_stop or len(await cluster.members()) < 2:
        return     # (a removed member has nothing to hand over)
    cluster.leaving = True    # heartbeats now get a 503, and we start no rebalance
    try:
        if await cluster.is_leader():
            async with cluster._lock:      # a rebalance of ours in progress ends first
                await handover_leadership(cluster)
        roles = await cluster.raft_roles()
        log.info("handover: raft roles after the transfer: %s", roles)
        if roles.get(cluster.member_id) in ("voter", "stand-by"):
            await cluster.on_leader("POST", "/internal/cluster/handover", {"id": cluster.member_id}, timeout=10)
    except Exception as e:   # never keep a member from stopping
        log.warning("handover before shutdown failed: %s", e)


async def handover_plan(cluster, member_id: int) -> list:
    from corral.cluster import roles
    async with cluster.state.db.transaction() as tx:   # it stops now: Offline at once, not promoted again
        await qc.set_heartbeat(tx, [member_id], timeutil.ZERO)
    async with cluster._lock:
        plan = roles.handover(await cluster._role_members(), member_id,
                              cluster._max("cluster.max_voters", 3), cluster._max("cluster.max_standby", 2))
        await cluster.apply_roles(plan)
        await cluster._sync_raft_nodes()
        return plan
