"""distrobuilder's template rendering (pongo2, Django-like) of definition strings: image.name and
image.description always, and the contents of files and actions that set `pongo: true`. The context is
the definition itself (`{{ image.release }}`, `{{ source.url }}`, `{{ targets.type }}`, ...), with
pongo2's filters (`|capfirst`, `|lower`, `|default:"x"`, ...). Rendered by Jinja2 after the same pongo2
translation LXD image templates get (corral/image/templates.py)."""
from __future__ import annotations

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from corral.builder.schema import DefinitionError
from corral.image import templates as lxd_templates


class _Env(ImmutableSandboxedEnvironment):
    def getattr(self, obj, attribute):
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


_ENV = _Env(autoescape=False, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
_ENV.filters.update(lxd_templates._FILTERS)     # pongo2's filter semantics, shared with LXD templates
_ENV.filters.update({"lower": lambda v: str(v).lower(), "upper": lambda v: str(v).upper()})


def render_string(text: str, definition: dict, where: str) -> str:
    """Render `text` with the definition as context; DefinitionError naming `where` on a bad template
    or an unknown variable."""
    if "{{" not in text and "{%" not in text:
        return text
    context = {k: v for k, v in definition.items() if not k.startswith("_")}
    try:
        return _ENV.from_string(lxd_templates.translate(text)).render(context)
    except jinja2.TemplateError as e:
        raise DefinitionError(f"{where}: cannot render the template: {e}") from None
