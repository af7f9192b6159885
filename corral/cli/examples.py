"""An Examples section for every command's help: lxc 5.0.2's own examples where it has them (with
`corral` for `lxc`), ours for the everyday commands, and for the rest one built from the usage."""

from __future__ import annotations

import click

# lxc 5.0.2's examples (`lxc <command> --help`).
LXC = {
    'config device add': "corral config device add [<remote>:]instance1 <device-name> disk source=/share/c1 path=/opt\n    Will mount the host's /share/c1 onto /opt in the instance.\n\ncorral config device add [<remote>:]instance1 <device-name> disk pool=some-pool source=some-volume path=/opt\n    Will mount the some-volume volume on some-pool onto /opt in the instance.",
    'config edit': 'corral config edit <instance> < instance.yaml\n    Update the instance configuration from config.yaml.',
    'config set': 'corral config set [<remote>:]<instance> limits.cpu=2\n    Will set a CPU limit of "2" for the instance.\n\ncorral config set core.https_address=[::]:8443\n    Will have LXD listen on IPv4 and IPv6 port 8443.\n\ncorral config set core.trust_password=blah\n    Will set the server\'s trust password to blah.',
    'file pull': 'corral file pull foo/etc/hosts .\n   To pull /etc/hosts from the instance and write it to the current directory.',
    'file push': 'corral file push /etc/hosts foo/etc/hosts\n   To push /etc/hosts into the instance "foo".',
    'image edit': 'corral image edit <image>\n    Launch a text editor to edit the properties\n\ncorral image edit <image> < image.yaml\n    Load the image properties from a YAML file',
    'info': 'corral info [<remote>:]<instance> [--show-log]\n    For instance information.\n\ncorral info [<remote>:] [--resources]\n    For LXD server information.',
    'init': 'corral init ubuntu:22.04 u1\n\ncorral init ubuntu:22.04 u1 < config.yaml\n    Create the instance with configuration from config.yaml',
    'launch': 'corral launch ubuntu:22.04 u1\n\ncorral launch ubuntu:22.04 u1 < config.yaml\n    Create and start a container with configuration from config.yaml\n\ncorral launch ubuntu:22.04 v1 --vm\n    Create and start a virtual machine',
    'list': 'corral list -c nFs46,volatile.eth0.hwaddr:MAC,config:image.os,devices:eth0.parent:ETHP\n  Show instances using the "NAME", "BASE IMAGE", "STATE", "IPV4", "IPV6" and "MAC" columns.\n  "BASE IMAGE", "MAC" and "IMAGE OS" are custom columns generated from instance configuration keys.\n  "ETHP" is a custom column generated from a device key.\n\ncorral list -c ns,user.comment:comment\n  List instances with their running state and user comment.',
    'monitor': 'corral monitor --type=logging\n    Only show log messages.\n\ncorral monitor --pretty --type=logging --loglevel=info\n    Show a pretty log of messages with info level or higher.\n\ncorral monitor --type=lifecycle\n    Only show lifecycle events.',
    'operation show': 'corral operation show 344a79e4-d88a-45bf-9c39-c72c26f6ab8a\n    Show details on that operation UUID',
    'profile assign': 'corral profile assign foo default,bar\n    Set the profiles for "foo" to "default" and "bar".\n\ncorral profile assign foo default\n    Reset "foo" to only using the "default" profile.\n\ncorral profile assign foo \'\'\n    Remove all profile from "foo"',
    'profile device add': "corral profile device add [<remote>:]profile1 <device-name> disk source=/share/c1 path=/opt\n    Will mount the host's /share/c1 onto /opt in the instance.\n\ncorral profile device add [<remote>:]profile1 <device-name> disk pool=some-pool source=some-volume path=/opt\n    Will mount the some-volume volume on some-pool onto /opt in the instance.",
    'profile edit': 'corral profile edit <profile> < profile.yaml\n    Update a profile using the content of profile.yaml',
    'project edit': 'corral project edit <project> < project.yaml\n    Update a project using the content of project.yaml',
    'query': 'corral query -X DELETE --wait /1.0/instances/c1\n    Delete local instance "c1".',
    'restore': 'corral snapshot u1 snap0\n    Create the snapshot.\n\ncorral restore u1 snap0\n    Restore the snapshot.',
    'snapshot': 'corral snapshot u1 snap0\n    Create a snapshot of "u1" called "snap0".',
    'storage edit': 'corral storage edit [<remote>:]<pool> < pool.yaml\n    Update a storage pool using the content of pool.yaml.',
    'storage volume edit': 'corral storage volume edit [<remote>:]<pool> <volume> < volume.yaml\n    Update a storage volume using the content of pool.yaml.',
    'storage volume show': 'corral storage volume show default data\n    Will show the properties of a custom volume called "data" in the "default" pool.\n\ncorral storage volume show default container/data\n    Will show the properties of the filesystem for a container called "data" in the "default" pool.',
}

OURS = {
    "start": "corral start c1\n    Start the instance c1.\n\ncorral start --all\n    Start every instance of the project.",
    "stop": "corral stop c1\n    Stop c1 cleanly.\n\ncorral stop c1 --force\n    Kill it.\n\ncorral stop c1 --console\n    Watch it shut down on its console.",
    "restart": "corral restart c1\n    Restart c1.",
    "pause": "corral pause c1\n    Freeze c1's processes (corral start c1 thaws them).",
    "delete": "corral delete c1\n    Delete the stopped instance c1.\n\ncorral delete -f c1\n    Stop and delete it.\n\ncorral delete c1/snap0\n    Delete one of its snapshots.",
    "exec": "corral exec c1 -- ls -l /\n    Run a command in c1.\n\ncorral exec c1 -- sh\n    An interactive shell (typeahead is kept).\n\ncorral exec c1 --env FOO=bar -- env\n    With an extra environment variable.",
    "console": "corral console c1\n    Attach to c1's console (detach with <ctrl>+a q).\n\ncorral console c1 --show-log\n    Print its console log.",
    "copy": "corral copy c1 c2\n    Copy the instance c1 to c2.\n\ncorral copy c1/snap0 c3\n    Make c3 from a snapshot.",
    "rename": "corral rename c1 c2\n    Rename the instance c1 to c2.",
    "publish": "corral publish c1 --alias my-image\n    Make an image of the stopped instance c1.",
    "file": "corral file push hosts c1/etc/hosts\n    Copy a local file into c1.\n\ncorral file pull c1/etc/hostname .\n    Copy one out.",
    "file delete": "corral file delete c1/tmp/junk\n    Delete a file in c1.",
    "file edit": "corral file edit c1/etc/hosts\n    Edit a file of c1 in $EDITOR.",
    "file mount": "corral file mount c1/root ./c1-root\n    Not available: Corral ships no SFTP server or sshfs (see the error).",
    "config show": "corral config show c1\n    Show c1's configuration.\n\ncorral config show\n    Show the server's.",
    "config get": "corral config get c1 limits.cpu\n    Print one key of c1.\n\ncorral config get core.https_address\n    Print a server key.",
    "config unset": "corral config unset c1 limits.cpu\n    Remove the key from c1.",
    "image list": "corral image list\n    List the images.\n\ncorral image list os=busybox -c lfs\n    Filter and pick columns.",
    "image import": "corral image import busybox.tar.gz --alias busybox\n    Import a unified image tarball.\n\ncorral image import meta.tar.xz rootfs.squashfs --alias my\n    Import a split image.",
    "image export": "corral image export busybox .\n    Download the image busybox into the current directory.",
    "image delete": "corral image delete busybox\n    Delete the image.",
    "image show": "corral image show busybox\n    Show the image's properties as YAML.",
    "image info": "corral image info busybox\n    Show what the server knows about the image.",
    "image alias create": "corral image alias create my 941de769fc6c\n    Name an image.",
    "remote add": "corral remote add other 10.0.0.2\n    Add a server (asks for its fingerprint and a password or token).\n\ncorral remote add other <token>\n    Add a server with a trust token from `corral config trust add`.\n\ncorral remote add imgs https://images.example.org --protocol simplestreams\n    Add a public image server.",
    "remote list": "corral remote list\n    List the remotes.",
    "remote switch": "corral remote switch other\n    Make other the default remote.",
    "profile create": "corral profile create web\n    Create the profile web.",
    "profile add": "corral profile add c1 web\n    Apply the profile web to c1.",
    "profile show": "corral profile show default\n    Show the default profile.",
    "profile set": "corral profile set web limits.memory=1GiB\n    Set a key of the profile web.",
    "network create": "corral network create br1\n    Create a managed bridge with addresses chosen for you.\n\ncorral network create br1 ipv4.address=10.9.0.1/24 ipv6.address=none\n    With your own.",
    "network list": "corral network list\n    List the networks.",
    "network list-leases": "corral network list-leases corralbr0\n    List the DHCP leases of a managed bridge.",
    "network attach": "corral network attach br1 c1 eth1\n    Give c1 an interface on br1.",
    "storage create": "corral storage create pool1 dir\n    Create a dir storage pool.\n\ncorral storage create pool2 btrfs size=10GiB\n    A loop-backed btrfs pool.",
    "storage list": "corral storage list\n    List the storage pools.",
    "storage info": "corral storage info default\n    Show a pool's usage and what uses it.",
    "storage volume create": "corral storage volume create default data\n    Create the custom volume data.",
    "storage volume attach": "corral storage volume attach default data c1 /mnt/data\n    Mount it in c1.",
    "storage volume snapshot": "corral storage volume snapshot default data snap0\n    Snapshot the volume.",
    "operation list": "corral operation list\n    List the running operations.",
    "operation delete": "corral operation delete <uuid>\n    Cancel an operation.",
    "remote get-default": "corral remote get-default\n    Print the default remote.",
}


def _fallback(path: str, cmd: click.Command) -> str:
    if isinstance(cmd, click.Group):
        subs = sorted(n for n, c in cmd.commands.items() if c.name == n)
        if not subs:
            return ""
        return f"corral {path} {subs[0]} --help\n    Help on one of its commands ({', '.join(subs)})."
    usage = getattr(cmd, "lxc_usage", "") or " ".join(
        p.human_readable_name for p in cmd.params if isinstance(p, click.Argument))
    short = (cmd.help or "").split("\n", 1)[0].rstrip(".")
    return f"corral {path} {usage}".rstrip() + (f"\n    {short}." if short else "")


def add_examples(cmd: click.Command, path: str) -> None:
    """Give ``cmd`` and its sub-commands an Examples epilog where they have none."""
    if not (cmd.epilog and "Examples:" in cmd.epilog):
        text = LXC.get(path) or OURS.get(path) or _fallback(path, cmd)
        if text:
            from corral.cli.base import examples_text
            cmd.epilog = examples_text(text)
    if isinstance(cmd, click.Group):
        for name, sub in list(cmd.commands.items()):
            if sub.name == name:
                add_examples(sub, f"{path} {name}")
