"""Jinja2 templates of ``mlnb ui`` (``mlnb/ui/templates``), autoescaped, compiled once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent
STATIC = HERE / "static"


@lru_cache(maxsize=1)
def environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, context: dict, links, site) -> str:
    """One page as HTML."""
    return environment().get_template(template).render(
        links=links, store_path=site.store.location, write=site.write_enabled, **context
    )
