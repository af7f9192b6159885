"""`corral monitor`: follow the server's event stream (/1.0/events)."""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import sys
from typing import Any

import click

from corral.cli.base import remote_argument

from corral.cli.client import Client, ClientError
from corral.cli.main import Ctx, fail, pass_ctx
from corral.cli.output import parse_time, sorted_keys, to_json, to_yaml

LEVELS = {"debug": 0, "dbug": 0, "info": 1, "warn": 2, "warning": 2, "eror": 3, "error": 3, "crit": 4, "fatal": 4}
LOGRUS_NAMES = {"dbug": "debug", "warn": "warning", "eror": "error", "crit": "fatal"}


# --------------------------------------------------------------------------
# Pretty (logrus text) rendering
# --------------------------------------------------------------------------


def go_value(value: Any) -> str:
    """Go's fmt %v of a JSON-decoded value."""
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def go_time(value: str | None) -> str:
    """time.Time.String() of an RFC3339 timestamp."""
    if not value:
        return "0001-01-01 00:00:00 +0000 UTC"
    text = value
    zone = "+0000 UTC"
    if text.endswith("Z"):
        text = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        off = text[-6:].replace(":", "")
        zone = f"{off} {off}"
        text = text[:-6]
    return text.replace("T", " ", 1) + " " + zone


def _needs_quoting(text: str) -> bool:
    if text == "":
        return False
    for ch in text:
        if not (ch.isascii() and (ch.isalnum() or ch in "-._/@^+")):
            return True
    return False


def logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else go_value(value)
    return json.dumps(text, ensure_ascii=False) if _needs_quoting(text) else text


def _time_field(timestamp: str | None) -> str:
    t = parse_time(timestamp)
    if t is None:
        t = _dt.datetime.now(_dt.timezone.utc)
    t = t.astimezone()
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    off = t.strftime("%z")
    return text + ("Z" if off in ("+0000", "") else f"{off[:3]}:{off[3:]}")


def to_log_record(event: dict) -> tuple[str, str, dict] | None:
    """api.Event.ToLogging(): (level, message, context) or None."""
    etype = event.get("type")
    meta = event.get("metadata") or {}
    if etype == "logging":
        return str(meta.get("level", "info")), str(meta.get("message", "")), dict(meta.get("context") or {})
    if etype == "lifecycle":
        msg = f"Action: {meta.get('action', '')}, Source: {meta.get('source', '')}"
        req = meta.get("requestor")
        if req:
            msg += f", Requestor: {req.get('protocol', '')}/{req.get('username', '')} ({req.get('address', '')})"
        return "info", msg, dict(meta.get("context") or {})
    if etype == "operation":
        msg = f"ID: {meta.get('id', '')}, Class: {meta.get('class', '')}, Description: {meta.get('description', '')}"
        ctx = {
            "CreatedAt": go_time(meta.get("created_at")),
            "UpdatedAt": go_time(meta.get("updated_at")),
            "Status": meta.get("status", ""),
            "StatusCode": meta.get("status", ""),
            "Resources": meta.get("resources") or {},
            "Metadata": meta.get("metadata") or {},
            "MayCancel": bool(meta.get("may_cancel")),
            "Err": meta.get("err", ""),
            "Location": meta.get("location", ""),
        }
        return "info", msg, ctx
    return None


def format_pretty(event: dict, min_level: int = 0) -> str | None:
    record = to_log_record(event)
    if record is None:
        return None
    level, msg, ctx = record
    if event.get("type") == "logging" and LEVELS.get(level, 1) < min_level:
        return None
    level = LOGRUS_NAMES.get(level, level)
    parts = [f'time="{_time_field(event.get("timestamp"))}"', f"level={level}", f"msg={logfmt_value(msg)}"]
    parts += [f"{k}={logfmt_value(ctx[k])}" for k in sorted(ctx)]
    return " ".join(parts) + "\n"


def format_event(event: dict, fmt: str, min_level: int = 0) -> str | None:
    if fmt == "pretty":
        return format_pretty(event, min_level)
    if fmt == "json":
        return to_json(sorted_keys(event)) + "\n\n"
    return to_yaml(sorted_keys(event)) + "\n\n"


# --------------------------------------------------------------------------
# The websocket
# --------------------------------------------------------------------------


async def follow_events(client: Client, params: dict, handler) -> None:
    import aiohttp

    async with client.ws_session() as session:
        ws = await client.ws_connect(session, "/1.0/events", params)
        async with ws:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = msg.data
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    data = msg.data.decode("utf-8", "replace")
                else:
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                if isinstance(event, dict) and handler(event) is False:
                    break


@click.command("monitor", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--type", "types", multiple=True, help="Event type to listen for (repeatable or comma separated)")
@click.option("--pretty", is_flag=True, help="Pretty rendering (short for --format=pretty)")
@click.option("-f", "--format", "fmt", default="yaml", type=click.Choice(["json", "pretty", "yaml"]),
              show_default=True, help="Format")
@click.option("--loglevel", default="", help="Minimum level for log messages (only with the pretty format)")
@click.option("--all-projects", is_flag=True, help="Show events from all projects")
@remote_argument()
@pass_ctx
def monitor(ctx: Ctx, remote: str | None, types: tuple[str, ...], pretty: bool, fmt: str, loglevel: str,
            all_projects: bool) -> None:
    """Monitor the server's events.

    By default the monitor will listen to all message types."""
    if pretty:
        fmt = "pretty"
    min_level = 0
    if loglevel:
        if loglevel.lower() not in LEVELS:
            fail(f"Unknown level name: {loglevel}")
        if fmt != "pretty":
            fail("Log level filtering can only be used with pretty formatting")
        min_level = LEVELS[loglevel.lower()]
    wanted = [t for value in types for t in value.split(",") if t]
    params: dict[str, Any] = {}
    if wanted:
        params["type"] = ",".join(wanted)
    if all_projects:
        params["all-projects"] = "true"

    def handler(event: dict) -> None:
        if wanted and event.get("type") not in wanted:
            return
        text = format_event(event, fmt, min_level)
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()

    try:
        asyncio.run(follow_events(ctx.client, params, handler))
    except KeyboardInterrupt:
        return
    except ClientError:
        raise
    except OSError as exc:
        fail(str(exc))
