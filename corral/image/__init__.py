"""Image handling: importing, validating and packing LXD-format images (store) and
rendering image templates into instance root filesystems (templates)."""
