"""LXD image templates: render `templates:` entries of an instance's metadata.yaml into its rootfs.

LXD renders them with pongo2 (Django-like); we use a sandboxed Jinja2 environment after a
small translation of the pongo2-only syntax (`|filter:arg`, `&&`, `||`, `!`, `{% empty %}`,
`{% autoescape off %}`) and with pongo2's filter semantics for `default` & co.

Semantics follow LXD's templateApplyNow: a template is applied when its `when` list has the
trigger; if the target exists and `create_only` is set it is skipped, otherwise an existing
file is truncated and rewritten (keeping its owner and mode) and a missing one is created as
0644 owned by 0:0 with missing parent directories created 0755 0:0. Target paths resolve like
inside the container: absolute symlinks are taken relative to the rootfs and a path that would
climb above the rootfs is refused, so nothing outside the rootfs is ever touched.
"""
from __future__ import annotations

import collections
import os
import re
import stat

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from corral.errors import CorralError
from corral.image.store import ImageError, parse_metadata

MAX_SYMLINKS = 40


class TemplateError(CorralError):
    """Applying an image template failed."""


def render_templates(image_meta_dir: str, rootfs: str, trigger: str, context: dict) -> list[str]:
    """Apply the templates of `image_meta_dir/metadata.yaml` (files in image_meta_dir/templates/)
    for `trigger` ("create", "copy", "start", ...) into `rootfs`.

    context: {"instance": {"name", "architecture", "privileged", "ephemeral"[, "type"]},
              "config": expanded instance config (str -> str), "devices": expanded devices}.
    Returns the template paths (as written in metadata.yaml) that were written, sorted.
    """
    templates = _load_templates(image_meta_dir)
    if not templates:
        return []
    templates_dir = os.path.join(image_meta_dir, "templates")
    config = dict(context.get("config") or {})
    instance = _instance_meta(context.get("instance") or {})
    env = _environment(templates_dir)

    def config_get(key, default=""):
        value = config.get(str(key))
        return default if value is None else str(value).rstrip("\r\n")

    written = []
    for path in sorted(templates):
        tpl = templates[path]
        if trigger not in tpl["when"]:
            continue
        fd_dir, name, exists = _resolve_target(rootfs, path)
        try:
            if exists and tpl["create_only"]:
                continue
            try:
                text = env.get_template(tpl["template"]).render(
                    trigger=trigger, path=path, instance=instance, container=instance,
                    config=config, devices=context.get("devices") or {},
                    properties=tpl["properties"], config_get=config_get)
            except jinja2.TemplateNotFound:
                raise TemplateError(f"Template file {tpl['template']!r} for {path} is missing") from None
            except Exception as e:  # syntax errors, sandbox violations, errors raised while rendering
                raise TemplateError(f"Failed to render template {tpl['template']!r} for {path}: {e}") from None
            _write(fd_dir, name, exists, text.encode(), path)
        finally:
            os.close(fd_dir)
        written.append(path)
    return written


def _load_templates(image_meta_dir: str) -> dict:
    try:
        fd = os.open(os.path.join(image_meta_dir, "metadata.yaml"), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise TemplateError(f"Failed to read metadata.yaml: {e}") from None
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    try:
        return parse_metadata(data, strict=False)["templates"]
    except ImageError as e:
        raise TemplateError(e.message) from None


def _instance_meta(meta: dict) -> dict[str, str]:
    out = {"type": "container"}
    for key, value in meta.items():
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    for key in ("privileged", "ephemeral"):
        out.setdefault(key, "false")
    return out


# --------------------------------------------------------------------------- target files

def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _resolve_target(rootfs: str, path: str) -> tuple[int, str, bool]:
    """Walk `path` from the rootfs with directory fds, resolving symlinks as the container would
    (absolute targets are relative to the rootfs) and creating missing parents (0755, 0:0).
    Returns (fd of the parent directory, final name, whether the final entry exists)."""
    try:
        root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise TemplateError(f"Cannot open instance rootfs: {e}") from None
    stack = [root_fd]
    parts = collections.deque(_components(path))
    hops = 0
    try:
        while parts:
            name = parts.popleft()
            if name == "..":
                if len(stack) == 1:
                    raise TemplateError(f"Template path {path} resolves outside the instance rootfs")
                os.close(stack.pop())
                continue
            cur = stack[-1]
            try:
                st = os.stat(name, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise TemplateError(f"Template path {path}: too many levels of symbolic links")
                target = os.readlink(name, dir_fd=cur)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                parts.extendleft(reversed(_components(target)))
                continue
            if not parts:  # final component
                if st is not None and not stat.S_ISREG(st.st_mode):
                    raise TemplateError(f"Template path {path} exists and is not a regular file")
                stack.pop()
                return cur, name, st is not None
            if st is None:
                os.mkdir(name, 0o755, dir_fd=cur)
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            stack.append(fd)
            if st is None:
                _own(fd, 0o755)
        raise TemplateError(f"Template path {path} is a directory")
    except OSError as e:
        raise TemplateError(f"Failed to open template target {path}: {e}") from None
    finally:
        for fd in stack:
            os.close(fd)


def _own(fd: int, mode: int) -> None:
    if os.geteuid() == 0:
        os.fchown(fd, 0, 0)
    os.fchmod(fd, mode)


def _write(dir_fd: int, name: str, exists: bool, data: bytes, path: str) -> None:
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_TRUNC if exists else os.O_CREAT | os.O_EXCL)
    try:
        fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
        with os.fdopen(fd, "wb") as f:
            if not exists:
                _own(fd, 0o644)
            f.write(data)
    except OSError as e:
        raise TemplateError(f"Failed to write template target {path}: {e}") from None


# --------------------------------------------------------------------------- template files

def _read_template(templates_dir: str, name: str) -> str:
    """Read templates_dir/name without following any symlink."""
    parts = _components(name)
    if not parts or ".." in parts or name.startswith("/"):
        raise jinja2.TemplateNotFound(name)
    try:
        fd = os.open(templates_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (0 if last else os.O_DIRECTORY)
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            finally:
                os.close(fd)
            fd = nfd
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise jinja2.TemplateNotFound(name)
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        raise jinja2.TemplateNotFound(name) from None


class _Loader(jinja2.BaseLoader):
    def __init__(self, templates_dir: str):
        self.templates_dir = templates_dir

    def get_source(self, environment, template):
        return translate(_read_template(self.templates_dir, template)), None, lambda: True


_TAG = re.compile(r"(\{\{-?|\{%-?)(.*?)(-?\}\}|-?%\})", re.S)
_STR = r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
_EXPR = re.compile(
    rf"(?P<filter>\|\s*(?P<fname>\w+)\s*:\s*(?P<farg>{_STR}|[\w.+-]+))"
    rf"|(?P<str>{_STR})"
    r"|(?P<op>&&|\|\||!(?!=))", re.S)
_OPS = {"&&": " and ", "||": " or ", "!": " not "}


def translate(source: str) -> str:
    """Rewrite pongo2-only syntax into its Jinja2 equivalent (tags only; text is untouched)."""
    def expr(m: re.Match) -> str:
        if m.group("filter"):
            return f"|{m.group('fname')}({m.group('farg')})"
        if m.group("str"):
            return m.group("str")
        return _OPS[m.group("op")]

    def tag(m: re.Match) -> str:
        start, body, end = m.groups()
        if start.startswith("{%"):
            words = body.split()
            if words == ["empty"]:
                body = " else "
            elif words[:1] == ["autoescape"] and words[1:] in (["off"], ["on"]):
                body = " autoescape %s " % ("false" if words[1] == "off" else "true")
        return start + _EXPR.sub(expr, body) + end

    return _TAG.sub(tag, source)


# --------------------------------------------------------------------------- pongo2 filters

def _truthy(value) -> bool:
    return not isinstance(value, jinja2.Undefined) and bool(value)


def _default(value, arg=""):
    return value if _truthy(value) else arg


def _default_if_none(value, arg=""):
    return arg if value is None or isinstance(value, jinja2.Undefined) else value


def _yesno(value, arg="yes,no,maybe"):
    choices = str(arg).split(",")
    if value is None and len(choices) > 2:
        return choices[2]
    return choices[0] if _truthy(value) else choices[1] if len(choices) > 1 else ""


def _add(value, arg):
    try:
        return int(value) + int(arg)
    except (TypeError, ValueError):
        return f"{value}{arg}"


def _number(cast):
    def convert(value):
        try:
            return cast(value)
        except (TypeError, ValueError):
            return cast(0)
    return convert


_FILTERS = {
    "default": _default,
    "default_if_none": _default_if_none,
    "capfirst": lambda v: str(v)[:1].upper() + str(v)[1:],
    "cut": lambda v, arg: str(v).replace(str(arg), ""),
    "yesno": _yesno,
    "add": _add,
    "integer": _number(int),
    "float": _number(float),
    "linebreaksbr": lambda v: str(v).replace("\n", "<br />"),
    "truncatechars": lambda v, n: str(v) if len(str(v)) <= int(n) else str(v)[:max(int(n) - 3, 0)] + "...",
    "ljust": lambda v, n: str(v).ljust(int(n)),
    "rjust": lambda v, n: str(v).rjust(int(n)),
}


class _Environment(ImmutableSandboxedEnvironment):
    def getattr(self, obj, attribute):
        # pongo2 looks `a.b` up as a map key first: `properties.items` is the "items" property,
        # not dict.items.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def _environment(templates_dir: str) -> ImmutableSandboxedEnvironment:
    env = _Environment(loader=_Loader(templates_dir), autoescape=False,
                                        keep_trailing_newline=True, undefined=jinja2.ChainableUndefined)
    env.filters.update(_FILTERS)
    return env
