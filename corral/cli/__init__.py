"""Corral's command line client (`corral`), mirroring LXD's `lxc`."""
