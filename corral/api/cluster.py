"""/1.0/cluster, /1.0/cluster/members[/NAME], /1.0/cluster/certificate: LXD 5.0's cluster
REST surface, with LXD 5.0.2's answers (a standalone server says it is not clustered).

The membership work is `state.cluster`'s (corral/cluster/membership.py): enable, join_work,
rename_member, remove_member, raft_roles, leader_address, notify_all. Members are read from the
database (corral/cluster/members.py): nothing here makes a member send a heartbeat.
"""
from __future__ import annotations

import dataclasses

from aiohttp import web

from corral.api import decode, response
from corral.api.auth import allowed_projects
from corral.api.request import check_etag, daemon, recursion, requestor
from corral.apitypes import (
    ClusterCertificatePut, ClusterMemberPost, ClusterMemberPut, ClusterMembersPost, ClusterPut,
)
from corral.cluster import certificate, members, render, tokens
from corral.cluster.peer import NOTIFIER
from corral.config.storage import member_keys
from corral.errors import BadRequest, CorralError, NotImplementedFeature
from corral.https import split_address
from corral.operations import Work

routes = web.RouteTableDef()



def _cluster(request: web.Request):
    """The daemon's cluster layer (None while a daemon has none)."""
    return getattr(daemon(request), "cluster", None)


def _clustered(request: web.Request) -> bool:
    c = _cluster(request)
    return c is not None and bool(c.clustered)


def _require_clustered(request: web.Request) -> None:
    if not _clustered(request):
        # LXD 5.0.2's text; LXD answers it with a 500, Corral with a 400 (a request this server
        # can't take is the client's error, never a server fault: bad input never answers 500)
        raise BadRequest("Server is not clustered")


def _is_notification(request: web.Request) -> bool:
    return request.headers.get("User-Agent", "") == NOTIFIER


def _member_url(name: str) -> str:
    return f"/1.0/cluster/members/{name}"


# ---- /1.0/cluster ---------------------------------------------------------------------------------

@routes.get("/1.0/cluster")
async def get_cluster(request: web.Request):
    """This member's name and whether it is clustered; member_config lists what a joining member
    would have to give (LXD's clusterGetMemberConfig: the member-specific storage pool keys)."""
    d = daemon(request)
    member_config = []
    if allowed_projects(request) is None:   # pools are host-wide: not for restricted certificates
        for p in sorted(await d.pools.get_all(), key=lambda p: p["name"]):
            for key in member_keys(p["driver"]):
                member_config.append({"entity": "storage-pool", "name": p["name"], "key": key, "value": "",
                                      "description": f'"{key}" property for storage pool "{p["name"]}"'})
    clustered = _clustered(request)
    body = {"server_name": _cluster(request).server_name if clustered else "", "enabled": clustered,
            "member_config": member_config}
    return response.sync(body, etag=body)


@routes.route("PUT", "/1.0/cluster")
async def put_cluster(request: web.Request):
    """Bootstrap (enable clustering on this server), join a cluster (cluster_address given), or
    disable clustering."""
    req: ClusterPut = await decode.read(request, ClusterPut)
    if req.server_name == "" and req.enabled:
        raise BadRequest("ServerName is required when enabling clustering")
    if req.server_name != "" and not req.enabled:
        raise BadRequest("ServerName must be empty when disabling clustering")
    c = _cluster(request)
    if not req.enabled:
        if not _clustered(request):
            return response.empty()   # nothing to disable (LXD 5.0.2 answers a standalone server so)
        raise NotImplementedFeature("disabling clustering on a cluster member "
                                    "(remove it from the cluster with `lxc cluster remove`)")
    if c is None:
        raise NotImplementedFeature("clustering")
    if req.cluster_address:
        return _join(request, c, req)
    if c.clustered:
        raise BadRequest("This server is already clustered")
    _check_cluster_address(daemon(request).config.all())
    d, name, who = daemon(request), req.server_name, requestor(request)

    async def run(_op):
        await c.enable(name)
        d.events.lifecycle("cluster-enabled", f"/1.0/cluster/{name}", requestor=who)
    return response.operation(request, Work(description="Creating bootstrap node", run=run,
                                            resources={"cluster": None}))


def _join(request: web.Request, c, req: ClusterPut) -> web.Response:
    if not req.cluster_certificate:
        raise BadRequest("No target cluster member certificate provided")
    if c.clustered:
        raise BadRequest("This server is already clustered")
    if not req.server_address:
        raise BadRequest("No server address provided for this member")
    return response.operation(request, c.join_work(dataclasses.asdict(req)))


def _check_cluster_address(config: dict) -> None:
    """Bootstrapping needs a specific cluster address: cluster.https_address, else core.https_address."""
    own = config.get("cluster.https_address", "")
    if own and split_address(own)[0] not in ("", "0.0.0.0", "::"):
        return
    if own:
        raise BadRequest(f'Cannot use wildcard cluster.https_address "{own}": please specify a specific address')
    core = config.get("core.https_address", "")
    host = split_address(core)[0] if core else ""
    if host in ("", "0.0.0.0", "::"):
        raise CorralError(f'Cannot use wildcard core.https_address "{core}" for cluster.https_address. '
                          "Please specify a new cluster.https_address or core.https_address", 500)


# ---- /1.0/cluster/members -------------------------------------------------------------------------

@routes.get("/1.0/cluster/members")
async def list_members(request: web.Request):
    _require_clustered(request)
    out = await members.get_all(daemon(request).state)
    if recursion(request):
        return response.sync(out)
    return response.sync([_member_url(m["server_name"]) for m in out])


@routes.post("/1.0/cluster/members")
async def request_join_token(request: web.Request):
    """A join token for a new member (`lxc cluster add NAME`): a token operation."""
    d = daemon(request)
    req: ClusterMembersPost = await decode.read(request, ClusterMembersPost)
    if not _clustered(request):
        raise BadRequest("This server is not clustered")
    if not req.server_name:
        raise BadRequest("A server name is required to add a cluster member")
    if any(m["server_name"] == req.server_name for m in await members.get_all(d.state)):
        raise BadRequest(f"The cluster already has a member with name: {req.server_name}")
    work = await tokens.create(d.state, req.server_name)
    who = requestor(request)
    work.on_start = lambda _op: d.events.lifecycle("cluster-token-created", "/1.0/cluster/members", requestor=who)
    return response.operation(request, work)


@routes.get("/1.0/cluster/members/{name}")
async def get_member(request: web.Request):
    _require_clustered(request)
    m = await members.get(daemon(request).state, request.match_info["name"])
    return response.sync(m, etag=render.writable(m))


async def _update_member(request: web.Request, patch: bool):
    _require_clustered(request)
    d, name = daemon(request), request.match_info["name"]
    cur = await members.get(d.state, name)
    check_etag(request, render.writable(cur))
    req: ClusterMemberPut = await decode.read(request, ClusterMemberPut)
    await members.update(d.state, name, cur, req, patch=patch)
    d.events.lifecycle("cluster-member-updated", _member_url(name), requestor=requestor(request))
    return response.empty()


@routes.put("/1.0/cluster/members/{name}")
async def put_member(request: web.Request):
    return await _update_member(request, patch=False)


@routes.patch("/1.0/cluster/members/{name}")
async def patch_member(request: web.Request):
    return await _update_member(request, patch=True)


@routes.post("/1.0/cluster/members/{name}")
async def rename_member(request: web.Request):
    d, old = daemon(request), request.match_info["name"]
    req: ClusterMemberPost = await decode.read(request, ClusterMemberPost)
    _require_clustered(request)
    await members.check_rename(d.state, old, req.server_name)
    await _cluster(request).rename_member(old, req.server_name)
    d.events.lifecycle("cluster-member-renamed", _member_url(req.server_name), context={"old_name": old},
                       requestor=requestor(request))
    return response.empty()


@routes.delete("/1.0/cluster/members/{name}")
async def delete_member(request: web.Request):
    """Remove a member (`lxc cluster remove [--force]`: ?force=1)."""
    d, name = daemon(request), request.match_info["name"]
    _require_clustered(request)
    await members.get(d.state, name)
    await _cluster(request).remove_member(name, request.query.get("force") == "1")
    d.events.lifecycle("cluster-member-removed", _member_url(name), requestor=requestor(request))
    return response.empty()


# ---- /1.0/cluster/certificate ---------------------------------------------------------------------

@routes.put("/1.0/cluster/certificate")
async def put_certificate(request: web.Request):
    """Rotate the cluster certificate on every member: checked, sent to every other online member
    (a cluster notification, which only installs it), then installed here. Each member writes
    cluster.crt/cluster.key and reloads its HTTPS listener."""
    d = daemon(request)
    req: ClusterCertificatePut = await decode.read(request, ClusterCertificatePut)
    certificate.check_pair(req.cluster_certificate, req.cluster_certificate_key)
    if not _clustered(request):
        raise BadRequest("This server is not clustered")
    failed = {}
    if not _is_notification(request):
        body = {"cluster_certificate": req.cluster_certificate,
                "cluster_certificate_key": req.cluster_certificate_key}
        failed = {name: err for name, err in
                  (await _cluster(request).notify_all("PUT", "/1.0/cluster/certificate", body)).items() if err}
    certificate.install(d.paths, req.cluster_certificate, req.cluster_certificate_key)
    d.reload_certificate()
    d.events.lifecycle("cluster-certificate-updated", "/1.0/cluster/certificate", requestor=requestor(request))
    if failed:
        raise CorralError("The cluster certificate was updated here but not on: " +
                          "; ".join(f"{n}: {e}" for n, e in sorted(failed.items())), 500)
    return response.empty()
