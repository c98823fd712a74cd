"""Safe HTML building: text is escaped unless it is already ``Html``.

Hostnames, OS profiles, event bodies and authors come from agents and people,
so every value is escaped on the way into markup. Only fragments built here
(typed ``Html``) pass through unescaped; that makes forgetting to escape a type
error rather than an injection.
"""

from __future__ import annotations

import html
import string
from collections.abc import Iterable
from functools import cache
from importlib import resources

import orjson


class Html(str):
    """A string that is already safe markup."""

    __slots__ = ()


def esc(value: object) -> Html:
    """``value`` as escaped text (quotes included, so it is safe in attributes too)."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[Html | str]) -> Html:
    """Concatenate fragments, escaping any plain strings."""
    return Html("".join(esc(part) for part in parts))


def tag(name: str, content: Html | str = "", **attrs: str | None) -> Html:
    """``<name attrs>content</name>``; attribute values are escaped, None drops one."""
    return Html(f"<{name}{attributes(**attrs)}>{esc(content)}</{name}>")


def attributes(**attrs: str | None) -> Html:
    """Escaped attributes (``class_`` → ``class``, ``data_x`` → ``data-x``)."""
    rendered = []
    for key, value in attrs.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        rendered.append(f' {name}="{esc(value)}"' if value != "" else f" {name}")
    return Html("".join(rendered))


def script_json(value: object) -> Html:
    """JSON for a ``<script type="application/json">`` block; it can never close the tag."""
    text = orjson.dumps(value).decode()
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, code)
    return Html(text)


@cache
def _template(name: str) -> string.Template:
    text = resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")
    return string.Template(text)


def render(name: str, **values: Html | str) -> Html:
    """Fill template ``name``; plain strings are escaped, missing values raise KeyError."""
    return Html(_template(name).substitute({key: esc(val) for key, val in values.items()}))
