"""corrald's simplestreams documents and files (/streams/v1/...) against a real corrald: public images
only, unified and split items with sha256s that match the files served, 404 for anything else."""
import hashlib
import io
import os
import uuid

import streamsimg
from corral.image.simplestreams import products


def _upload(daemon, body: bytes, headers: dict) -> str:
    r = daemon.request("POST", "/1.0/images", raw=body, headers=headers, timeout=120)
    assert r.status == 202, r.body
    op = daemon.wait_op(r)
    assert op["status"] == "Success", op
    return op["metadata"]["fingerprint"]


def _multipart(parts):
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, data in parts:
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n"
                  f"Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def test_streams_serve_public_images_with_checkable_files(daemon, tmp_path):
    r = daemon.get("/1.0/storage-pools/default")
    if r.status == 404:
        assert daemon.request("POST", "/1.0/storage-pools", {"name": "default", "driver": "dir"}).status in (200, 201)
    uni = open(streamsimg.unified(str(tmp_path / "u"), "streams api unified"), "rb").read()
    fp_u = _upload(daemon, uni, {"Content-Type": "application/octet-stream", "X-LXD-public": "true"})
    meta, root = streamsimg.split(str(tmp_path / "s"), "streams api split")
    body, ctype = _multipart([("metadata", open(meta, "rb").read()), ("rootfs", open(root, "rb").read())])
    fp_s = _upload(daemon, body, {"Content-Type": ctype, "X-LXD-public": "true"})
    priv = open(streamsimg.unified(str(tmp_path / "p"), "streams api private"), "rb").read()
    fp_p = _upload(daemon, priv, {"Content-Type": "application/octet-stream"})
    assert daemon.request("POST", "/1.0/images/aliases", {"name": "ss-api", "target": fp_s}).status in (200, 201)

    index = daemon.get("/streams/v1/index.json").json
    entry = index["index"]["images"]
    assert entry["datatype"] == "image-downloads" and entry["path"] == "streams/v1/images.json"
    doc = daemon.get("/streams/v1/images.json").json
    assert sorted(doc["products"]) == entry["products"]
    imgs = {i.fingerprint: i for i in products.images(doc)}
    assert fp_u in imgs and fp_s in imgs and fp_p not in imgs
    assert imgs[fp_s].aliases == ["ss-api"] and imgs[fp_u].aliases == []
    assert products.resolve(list(imgs.values()), "ss-api").fingerprint == fp_s
    assert imgs[fp_s].properties["type"] == "squashfs"
    whole = hashlib.sha256()
    for f in imgs[fp_s].files:
        r = daemon.get("/" + f.path)
        assert r.status == 200 and len(r.body) == f.size and hashlib.sha256(r.body).hexdigest() == f.sha256
        whole.update(r.body)
    assert whole.hexdigest() == fp_s
    [f] = imgs[fp_u].files
    assert hashlib.sha256(daemon.get("/" + f.path).body).hexdigest() == fp_u
    for bad in (f"/streams/v1/images/{fp_p}/{fp_p}.tar", f"/streams/v1/images/{fp_u}/other.tar",
                "/streams/v1/images/zzz/x", f"/streams/v1/images/{fp_u}/..%2F..%2Fserver.key"):
        assert daemon.get(bad).status == 404, bad
    for fp in (fp_u, fp_s, fp_p):
        daemon.wait_op(daemon.request("DELETE", f"/1.0/images/{fp}"))
    assert not os.path.exists(os.path.join(daemon.dir, "images", fp_u))
