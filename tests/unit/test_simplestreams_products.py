"""Simplestreams documents (corral/image/simplestreams/products.py): what we write reads back as LXD's
client reads it (fingerprints from the combined_* keys, types, files, aliases, newest first), bad
entries are skipped, and the static tree writer (tree.py) lays out and extends a tree."""
import json
import os

import pytest

from corral.errors import BadRequest
from corral.image.remote import check_source
from corral.image.simplestreams import products, tree
from corral.image.unpack import ImageError

import streamsimg

FP = {n: (c * 64) for n, c in (("a", "a"), ("b", "b"), ("c", "c"), ("d", "d"))}


def pub(fp, files, created=1_700_000_000, aliases=(), arch="x86_64", **props):
    props = {"os": "Debian", "release": "bookworm", "variant": "default", **props}
    return products.Published(fingerprint=fp, architecture=arch, created_at=created, properties=props,
                              files=files, aliases=list(aliases))


def unified(fp, path="u/x.tar.gz", size=10):
    return [products.File("unified", path, fp, size)]


def split(ftype, meta_sha="1" * 64, root_sha="2" * 64):
    return [products.File("meta", "s/lxd.tar.xz", meta_sha, 3), products.File("root", "s/root", root_sha, 7, ftype)]


def test_unified_and_split_images_read_back_as_lxd_reads_them():
    prods = {}
    products.add(prods, pub(FP["a"], unified(FP["a"]), aliases=["deb"]))
    products.add(prods, pub(FP["b"], split("squashfs"), created=1_700_100_000), "20231116_02:13")
    products.add(prods, pub(FP["c"], split("root.tar.xz"), variant="cloud"))
    products.add(prods, pub(FP["d"], split("disk-kvm.img"), variant="vm"))
    doc = json.loads(json.dumps(products.products_doc(prods)))
    assert doc["format"] == "products:1.0" and doc["datatype"] == "image-downloads"
    item = doc["products"]["debian:bookworm:amd64:default"]["versions"]["20231116_02:13"]["items"]
    assert item["lxd.tar.xz"]["combined_squashfs_sha256"] == FP["b"] and item["squashfs"]["sha256"] == "2" * 64
    imgs = {i.fingerprint: i for i in products.images(doc)}
    assert set(imgs) == set(FP.values())
    a, b, c, d = (imgs[FP[k]] for k in "abcd")
    assert a.type == "container" and [f.kind for f in a.files] == ["meta"] and a.properties["type"] == "tar.gz"
    assert a.aliases == ["deb"] and a.architecture == "x86_64" and a.arch_name == "amd64"
    assert [f.kind for f in b.files] == ["meta", "root"] and b.size == 10 and b.properties["type"] == "squashfs"
    assert c.properties["variant"] == "cloud" and c.properties["type"] == "root.tar.xz"
    assert d.type == "virtual-machine"
    assert b.created_at == "2023-11-16T00:00:00Z" and b.properties["serial"] == "20231116_02:13"
    assert b.properties["description"] == "Debian bookworm amd64 (20231116_02:13)"
    assert products.images(doc)[0].fingerprint == FP["b"]   # newest serial first
    index = products.index_doc(prods)
    assert index["format"] == "index:1.0"
    assert index["index"]["images"]["path"] == "streams/v1/images.json"
    assert index["index"]["images"]["products"] == sorted(prods)


def test_aliases_resolve_newest_first_with_arch_suffix_and_fingerprint_prefixes():
    prods = {}
    products.add(prods, pub(FP["a"], unified(FP["a"]), created=1_700_000_000, aliases=["deb"]))
    products.add(prods, pub(FP["b"], unified(FP["b"]), created=1_700_000_000 + 86400, aliases=["deb"]))
    products.add(prods, pub(FP["c"], unified(FP["c"]), aliases=["arm"], arch="aarch64"))
    imgs = products.images(products.products_doc(prods))
    assert products.resolve(imgs, "deb").fingerprint == FP["b"]
    assert products.resolve(imgs, "deb/amd64").fingerprint == FP["b"]
    assert products.resolve(imgs, "arm/arm64").fingerprint == FP["c"]
    assert products.resolve(imgs, "aaaa").fingerprint == FP["a"]
    with pytest.raises(BadRequest, match="couldn't be found"):
        products.resolve(imgs, "nope")
    with pytest.raises(BadRequest, match="couldn't be found"):
        products.resolve(imgs, "deb", image_type="virtual-machine")
    doubled = products.images(products.products_doc({"p": prods["debian:bookworm:amd64:default"],
                                                     "q": {**prods["debian:bookworm:arm64:default"],
                                                           "versions": {"20240101": {"items": {
                                                               "lxd_combined.tar.gz": {
                                                                   "ftype": "lxd_combined.tar.gz", "path": "p",
                                                                   "sha256": "a" * 63 + "f", "size": 1}}}}}}))
    with pytest.raises(BadRequest, match="More than one match"):
        products.resolve(doubled, "aaa")


@pytest.mark.parametrize("mutate", [
    lambda p: p.update(arch="pdp11"),                                            # unknown architecture
    lambda p: p["versions"].update({"notadate": p["versions"].pop(next(iter(p["versions"])))}),
    lambda p: _item(p).pop("sha256"),                                            # nothing to check against
    lambda p: _item(p).update(path="../../etc/passwd"),
    lambda p: _item(p).update(size=-1),
    lambda p: _item(p).update(sha256="xyz"),
])
def test_unusable_entries_are_skipped(mutate):
    prods = {}
    pid = products.add(prods, pub(FP["a"], unified(FP["a"])))
    assert len(products.images(products.products_doc(prods))) == 1
    mutate(prods[pid])
    assert products.images(products.products_doc(prods)) == []


def _item(prod):
    return next(iter(next(iter(prod["versions"].values()))["items"].values()))


def test_split_without_root_and_garbage_documents_give_nothing():
    prods = {}
    pid = products.add(prods, pub(FP["b"], split("squashfs")))
    del _version(prods[pid])["items"]["squashfs"]
    assert products.images(products.products_doc(prods)) == []
    for doc in ({}, {"products": []}, {"products": {"x": 5}}, {"products": {"x": {"versions": 5}}}, []):
        assert products.images(doc) == []


def _version(prod):
    return next(iter(prod["versions"].values()))


def test_check_source_protocols_and_urls():
    ok = check_source({"server": "https://h:8443/some/tree", "protocol": "simplestreams", "alias": "x"})
    assert ok.server == "https://h:8443/some/tree" and ok.protocol == "simplestreams"
    assert check_source({"server": "http://h:8000/", "protocol": "simplestreams", "alias": "x"}).server == \
        "http://h:8000"
    src = {"server": "https://h", "protocol": "simplestreams", "alias": "x"}
    assert check_source(src, "virtual-machine").image_type == "virtual-machine"
    assert check_source(src, "bogus").image_type == "" and check_source(src).image_type == ""
    for bad in ({"server": "http://h:8443", "alias": "x"}, {"server": "https://h:8443/p", "alias": "x"},
                {"server": "ftp://h", "protocol": "simplestreams", "alias": "x"},
                {"server": "https://h/p?q=1", "protocol": "simplestreams", "alias": "x"},
                {"server": "https://h", "protocol": "oci", "alias": "x"}):
        with pytest.raises(BadRequest):
            check_source(bad)


# ---- the static tree -------------------------------------------------------------------------------

def test_tree_publish_lays_out_unified_and_split_images_and_extends_the_index(tmp_path):
    u1 = streamsimg.unified(str(tmp_path / "u1"), "rev one")
    u2 = streamsimg.unified(str(tmp_path / "u2"), "rev two")
    meta, root = streamsimg.split(str(tmp_path / "s"), "split one", squashfs=False)
    out = str(tmp_path / "tree")
    first = tree.publish(out, [u1], aliases=["bb"])
    assert len(first) == 1
    second = tree.publish(out, [u2, f"{meta},{root}"])
    index = json.load(open(os.path.join(out, "streams/v1/index.json")))
    doc = json.load(open(os.path.join(out, "streams/v1/images.json")))
    assert index["index"]["images"]["products"] == sorted(doc["products"])
    imgs = {i.fingerprint: i for i in products.images(doc)}
    assert set(imgs) == {first[0].fingerprint, second[0].fingerprint, second[1].fingerprint}
    for img in imgs.values():
        for f in img.files:
            assert os.path.isfile(os.path.join(out, f.path)), f.path
    # Three builds in the same minute: distinct versions, the last one published sorting first.
    assert products.resolve(list(imgs.values()), "busybox/1.35").fingerprint == second[1].fingerprint
    prod = doc["products"]["busybox:1.35:amd64:default"]
    assert len(prod["versions"]) == 3
    assert "bb" in prod["aliases"].split(",") and "busybox/1.35/default" in prod["aliases"].split(",")
    newest = products.resolve(products.images(doc), "bb")
    assert newest.serial == max(prod["versions"])
    sp = imgs[second[1].fingerprint]
    assert sp.properties["type"] == "root.tar.xz" and [f.kind for f in sp.files] == ["meta", "root"]
    # Publishing the same image again changes nothing but the dates.
    tree.publish(out, [u2])
    assert len(json.load(open(os.path.join(out, "streams/v1/images.json")))["products"]
               ["busybox:1.35:amd64:default"]["versions"]) == 3


def test_tree_publish_refuses_what_it_cannot_publish(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        tree.publish(str(tmp_path / "t"), [str(tmp_path / "missing.tar")])
    d = tmp_path / "empty"
    d.mkdir()
    with pytest.raises(ImageError, match="expected lxd.tar.xz"):
        tree.publish(str(tmp_path / "t"), [str(d)])
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\0" * 10240)
    with pytest.raises(ImageError):
        tree.publish(str(tmp_path / "t"), [str(junk)])
    assert not os.path.exists(tmp_path / "t" / "streams")
