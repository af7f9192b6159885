"""`corral query`: send a raw query to the server, like `lxc query`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from corral.cli.client import ClientError, _op_path
from corral.cli.main import Ctx, fail, pass_ctx, strip_remote

METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE")


def pretty(data: Any, sort: bool) -> str:
    """encoding/json Encoder with SetIndent("", "\\t") and no HTML escaping."""
    return json.dumps(data, indent="\t", ensure_ascii=False, sort_keys=sort) + "\n"


@click.command("query", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path")
@click.option("-X", "--request", "method", default="GET", show_default=True, help="Action")
@click.option("-d", "--data", default="", help="Input data ('-' reads it from stdin)")
@click.option("--wait", is_flag=True, help="Wait for the operation to complete")
@click.option("--raw", is_flag=True, help="Print the raw response")
@pass_ctx
def query(ctx: Ctx, path: str, method: str, data: str, wait: bool, raw: bool) -> None:
    """Send a raw query to the server.

    Example: corral query -X DELETE --wait /1.0/instances/c1"""
    if ctx.project:
        fail("--project cannot be used with the query command")
    method = method.upper()
    if method not in METHODS:
        fail(f'Action "{method}" isn\'t supported by this tool')
    path = strip_remote(path)
    if not path.startswith("/"):
        fail("Query path must start with /")
    if data == "-":
        data = sys.stdin.read()

    client = ctx.client
    body: bytes | None = None
    headers: dict[str, str] = {}
    if data != "":
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = data  # sent as a JSON string, like lxc
        body = json.dumps(parsed).encode()
        headers["Content-Type"] = "application/json"

    with client.raw(method, path, body=body, headers=headers) as resp:
        payload = resp.read()
        status = resp.status
    try:
        env = client.parse_envelope(status, payload)
    except ClientError as exc:
        if exc.response is None and status == 200:
            # Not an API response (e.g. a log file): print it as it is.
            sys.stdout.buffer.write(payload)
            sys.stdout.flush()
            return
        raise

    if wait and env.get("operation"):
        env = client.get(_op_path(env["operation"]) + "/wait")
        op = env.get("metadata")
        if isinstance(op, dict) and op.get("err"):
            fail(op["err"])

    if raw:
        click.echo(pretty(env, sort=False))
        return
    meta = env.get("metadata")
    if meta is not None and meta != {}:
        click.echo(pretty(meta, sort=True))
