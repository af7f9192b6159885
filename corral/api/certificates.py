"""/1.0/certificates: the trust store, trust password and certificate add tokens (LXD 5.0)."""
from __future__ import annotations

from aiohttp import web

from corral import trust as trustmod
from corral.api import decode, response
from corral.api.auth import allowed_projects, is_admin, is_unix, trusted
from corral.api.request import check_etag, daemon, recursion, requestor
from corral.apitypes import CertificatePut, CertificatesPost
from corral.errors import BadRequest, Forbidden

routes = web.RouteTableDef()


def _url(fp: str) -> str:
    return f"/1.0/certificates/{fp}"


@routes.get("/1.0/certificates")
async def list_certificates(request: web.Request):
    certs = await daemon(request).trust.get_all()
    if allowed_projects(request) is not None:   # a restricted client sees its own certificate only
        certs = [c for c in certs if c["fingerprint"] == request.get("client_fingerprint")]
    if recursion(request):
        return response.sync(certs)
    return response.sync([_url(c["fingerprint"]) for c in certs])


@routes.post("/1.0/certificates")
async def add_certificate(request: web.Request):
    d = daemon(request)
    req: CertificatePut = await decode.read(request, CertificatesPost)
    token, cert_b64, password = req.token, req.certificate, req.password
    if token and cert_b64:
        raise BadRequest("Can't use certificate if token is requested")
    if token and (req.type or "client") != "client":
        raise BadRequest("Tokens can only be issued for client certificates")

    if not is_admin(request):
        if trusted(request):
            if password:
                raise BadRequest("Client is already trusted")
            raise Forbidden("not authorized")
        if not password:
            raise Forbidden("not authorized")
        # Untrusted: a token (base64 JSON, its secret) or the trust password.
        decoded = trustmod.decode_token(password)
        granted = d.trust.redeem_token(decoded["secret"]) if decoded else None
        if granted is not None:
            req = CertificatePut(name=granted.get("name") or "", type=granted.get("type") or "client",
                                 restricted=bool(granted.get("restricted")), projects=granted.get("projects") or [])
            cert_b64 = ""
        elif decoded is not None:
            raise Forbidden("No matching certificate add operation found")
        elif not trustmod.check_password(d.config.all().get("core.trust_password", ""), password):
            raise Forbidden("not authorized")

    name, ctype, restricted, projects = d.trust.check_fields(req, d.projects.known)

    if token:
        addresses = d.https_addresses()
        grant = {"name": name, "type": ctype, "restricted": restricted, "projects": projects,
               "certificate": "", "password": "", "token": True}
        work = d.trust.create_token(grant, fingerprint=d.fingerprint, addresses=addresses,
                                    expiry=d.config.all().get("core.remote_token_expiry", ""))
        return response.operation(request, work)

    if cert_b64:
        fp, pem, cn = trustmod.parse_certificate(cert_b64)
    elif not is_unix(request):
        der = request.get("client_der")
        if not der:
            raise BadRequest("No client certificate provided")
        fp = trustmod.der_fingerprint(der)
        pem, cn = trustmod.der_to_pem(der)
    else:
        raise BadRequest("Can't use TLS data on non-TLS link")
    if not name:
        name = cn or (request.transport.get_extra_info("peername") or ("",))[0]
    await d.trust.add(fp, pem, name=name, ctype=ctype, restricted=restricted, projects=projects)
    await d.restrictions.warn_certificate(await d.trust.get(fp))
    d.events.lifecycle("certificate-created", _url(fp), requestor=requestor(request))
    return response.created(_url(fp))


@routes.get("/1.0/certificates/{fingerprint}")
async def get_certificate(request: web.Request):
    c = await daemon(request).trust.get(request.match_info["fingerprint"])
    if allowed_projects(request) is not None and c["fingerprint"] != request.get("client_fingerprint"):
        raise Forbidden("not authorized: a restricted certificate can only read its own certificate")
    return response.sync(c, etag=c)


async def _update(request: web.Request, replace: bool):
    d = daemon(request)
    cur = await d.trust.get(request.match_info["fingerprint"])
    check_etag(request, cur)
    req = await decode.read(request, CertificatePut)
    if req.certificate not in ("", cur["certificate"]):
        raise BadRequest("The certificate itself can't be changed")
    if not replace:   # PATCH: what the client did not send stays
        for k in ("name", "type", "restricted", "projects"):
            if not req.given(k):
                setattr(req, k, cur[k])
    name, ctype, restricted, projects = d.trust.check_fields(req, d.projects.known)
    await d.trust.update(cur["fingerprint"], {"name": name, "type": ctype, "restricted": restricted,
                                              "projects": projects})
    await d.restrictions.warn_certificate(await d.trust.get(cur["fingerprint"]))
    d.events.lifecycle("certificate-updated", _url(cur["fingerprint"]), requestor=requestor(request))
    return response.empty()


@routes.put("/1.0/certificates/{fingerprint}")
async def put_certificate(request: web.Request):
    return await _update(request, True)


@routes.patch("/1.0/certificates/{fingerprint}")
async def patch_certificate(request: web.Request):
    return await _update(request, False)


@routes.delete("/1.0/certificates/{fingerprint}")
async def delete_certificate(request: web.Request):
    d = daemon(request)
    cur = await d.trust.get(request.match_info["fingerprint"])
    await d.trust.delete(cur["fingerprint"])
    d.events.lifecycle("certificate-deleted", _url(cur["fingerprint"]), requestor=requestor(request))
    return response.empty()
