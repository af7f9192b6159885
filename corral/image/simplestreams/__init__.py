"""Simplestreams, the image index format of LXD's `images:` and `ubuntu:` remotes.

- products.py: the products:1.0 document (streams/v1/images.json) and the index:1.0 one
  (streams/v1/index.json): building them from image files, and reading them as LXD's client does
  (images, fingerprints, files to download, aliases).
- client.py: corrald pulling from a simplestreams server (`source.protocol: simplestreams`).
- serve.py: corrald's public images as a simplestreams tree (the HTTPS listener's /streams/v1/...).
- tree.py: a static tree written from image files (`corral-builder publish DIR`), for any web server.
"""
