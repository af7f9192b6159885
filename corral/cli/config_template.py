"""`corral config template` and `corral config metadata`: an instance's file templates and its
metadata.yaml (lxc's config_template.go and config_metadata.go)."""

from __future__ import annotations

import sys

import click

from corral.cli.base import client_of, format_opt, lxc_command, name_of, q
from corral.cli.edit import edit_loop, run_editor, stdin_is_tty
from corral.cli.main import CONTEXT_SETTINGS, Ctx, group
from corral.cli.output import print_list, to_yaml

METADATA_HELP = """### This is a YAML representation of the instance metadata.
### Any line starting with a '# will be ignored.
###
### A sample configuration looks like:
###
### architecture: x86_64
### creation_date: 1477146654
### expiry_date: 0
### properties:
###   architecture: x86_64
###   description: Busybox x86_64
###   name: busybox-x86_64
###   os: Busybox
### templates:
###   /template:
###     when:
###     - ""
###     create_only: false
###     template: template.tpl
###     properties: {}"""


@group("template", context_settings=CONTEXT_SETTINGS)
def template() -> None:
    """Manage instance file templates."""


def _path(arg: str) -> str:
    return f"/1.0/instances/{q(name_of(arg))}/metadata/templates"


def _stdin_or_empty() -> bytes:
    return b"" if stdin_is_tty() else sys.stdin.buffer.read()


@lxc_command(template, "create", "[<remote>:]<instance> <template>", "Create new instance file templates.",
             "corral config template create c1 motd.tpl < motd.tpl\n    Add the template motd.tpl to c1.",
             min_args=2, max_args=2)
def template_create(ctx: Ctx, args: list[str]) -> None:
    client_of(ctx, args[0]).post(_path(args[0]), params={"path": args[1]}, body=_stdin_or_empty(),
                                 headers={"Content-Type": "application/octet-stream"})


@lxc_command(template, "delete", "[<remote>:]<instance> <template>", "Delete instance file templates.",
             "corral config template delete c1 motd.tpl\n    Remove the template motd.tpl from c1.",
             aliases=("rm",), min_args=2, max_args=2)
def template_delete(ctx: Ctx, args: list[str]) -> None:
    client_of(ctx, args[0]).delete(_path(args[0]), params={"path": args[1]})


def _read(ctx: Ctx, args: list[str]) -> bytes:
    client = client_of(ctx, args[0])
    resp = client.raw("GET", _path(args[0]), params={"path": args[1]})
    with resp:
        data = resp.read()
        if resp.status >= 400:
            client.parse_envelope(resp.status, data)
    return data


@lxc_command(template, "edit", "[<remote>:]<instance> <template>", "Edit instance file templates.",
             "corral config template edit c1 motd.tpl\n    Open motd.tpl of c1 in the editor.\n\n"
             "corral config template edit c1 motd.tpl < motd.tpl\n    Replace it with the local file.",
             min_args=2, max_args=2)
def template_edit(ctx: Ctx, args: list[str]) -> None:
    if stdin_is_tty():
        content = run_editor(_read(ctx, args).decode("utf-8", "replace")).encode()
    else:
        content = sys.stdin.buffer.read()
    client_of(ctx, args[0]).put(_path(args[0]), params={"path": args[1]}, body=content,
                                headers={"Content-Type": "application/octet-stream"})


@lxc_command(template, "list", "[<remote>:]<instance>", "List instance file templates.",
             "corral config template list c1\n    List the templates of c1.", aliases=("ls",),
             min_args=1, max_args=1, options=(format_opt(),))
def template_list(ctx: Ctx, args: list[str], fmt: str) -> None:
    names = client_of(ctx, args[0]).metadata(_path(args[0])) or []
    print_list(fmt, ["FILENAME"], [[n] for n in names], names)


@lxc_command(template, "show", "[<remote>:]<instance> <template>", "Show content of instance file templates.",
             "corral config template show c1 hostname.tpl\n    Print the template hostname.tpl of c1.",
             min_args=2, max_args=2)
def template_show(ctx: Ctx, args: list[str]) -> None:
    out = getattr(sys.stdout, "buffer", None)
    data = _read(ctx, args)
    if out is not None:
        sys.stdout.flush()
        out.write(data)
        out.flush()
    else:
        click.echo(data.decode(), nl=False)


# --------------------------------------------------------------------------
# config metadata
# --------------------------------------------------------------------------


@group("metadata", context_settings=CONTEXT_SETTINGS)
def metadata() -> None:
    """Manage instance metadata files."""


def ordered_metadata(meta: dict) -> dict:
    """api.ImageMetadata in its field order (templates: when, create_only, template, properties)."""
    defaults = {"architecture": "", "creation_date": 0, "expiry_date": 0, "properties": {}}
    out = {k: meta.get(k, d) if meta.get(k) is not None else d for k, d in defaults.items()}
    if "properties" in out and isinstance(out["properties"], dict):
        out["properties"] = {k: out["properties"][k] for k in sorted(out["properties"])}
    templates = meta.get("templates") or {}
    out["templates"] = {}
    for path in sorted(templates):
        t = templates[path] or {}
        entry = {k: t[k] for k in ("when", "create_only", "template", "properties") if k in t}
        entry.setdefault("create_only", False)
        entry.setdefault("properties", {})
        out["templates"][path] = {k: entry[k] for k in ("when", "create_only", "template", "properties")
                                  if k in entry}
    out.update({k: v for k, v in meta.items() if k not in out})
    return out


@lxc_command(metadata, "show", "[<remote>:]<instance>", "Show instance metadata files.",
             "corral config metadata show c1\n    Print c1's metadata.yaml.", min_args=1, max_args=1)
def metadata_show(ctx: Ctx, args: list[str]) -> None:
    meta = client_of(ctx, args[0]).metadata(f"/1.0/instances/{q(name_of(args[0]))}/metadata") or {}
    click.echo(to_yaml(ordered_metadata(meta)), nl=False)


@lxc_command(metadata, "edit", "[<remote>:]<instance>", "Edit instance metadata files.",
             "corral config metadata edit c1 < metadata.yaml\n    Set c1's metadata from a file.",
             min_args=1, max_args=1)
def metadata_edit(ctx: Ctx, args: list[str]) -> None:
    client = client_of(ctx, args[0])
    path = f"/1.0/instances/{q(name_of(args[0]))}/metadata"
    meta, etag = client.get_etag(path)
    edit_loop(ordered_metadata(meta or {}), lambda data: client.put(path, data, etag=etag), METADATA_HELP,
              typed=False)


__all__ = ["template", "metadata"]
