"""Where each page lives: URLs of the live server, or relative file paths of an export.

Templates never spell a URL; they ask a :class:`Links`, so the same template renders for
``mlnb ui`` (``/runs/ID``) and for ``mlnb ui --export`` (``runs/ID/index.html``, relative
to the page being written).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode


class Links:
    """URLs of the live server."""

    live = True

    def __init__(self, root: str = "/"):
        self.root = root

    def runs(self, filter: str | None = None, sort: str | None = None, order: str | None = None,
             page: int = 1) -> str:
        query = {k: v for k, v in (("filter", filter), ("sort", sort), ("order", order)) if v}
        if page and page > 1:
            query["page"] = page
        return f"{self.root}runs" + (f"?{urlencode(query)}" if query else "")

    def run(self, run_id: str) -> str:
        return f"{self.root}runs/{quote(run_id)}"

    def raw(self, run_id: str, what: str) -> str:
        """``report`` or ``notebook``: the untrusted HTML, from its own path."""
        return f"{self.root}raw/runs/{quote(run_id)}/{what}.html"

    def artifact(self, run_id: str, path: str) -> str:
        return f"{self.root}raw/runs/{quote(run_id)}/artifacts/{quote(path)}"

    def compare(self, ids: list[str] | None = None, parent: str | None = None) -> str | None:
        if parent:
            return f"{self.root}compare?{urlencode({'parent': parent})}"
        return f"{self.root}compare?" + urlencode([("run", i) for i in ids or []])

    def models(self) -> str:
        return f"{self.root}models"

    def model(self, name: str) -> str:
        return f"{self.root}models/{quote(name)}"

    def version(self, name: str, version: int) -> str:
        return f"{self.root}models/{quote(name)}/versions/{int(version)}"

    def monitor(self, name: str | None = None) -> str:
        return f"{self.root}models/{quote(name)}/monitor" if name else f"{self.root}monitor"

    def static(self, name: str) -> str:
        return f"{self.root}static/{name}"

    def action(self, name: str, what: str) -> str | None:
        return f"{self.root}models/{quote(name)}/{what}"


class ExportLinks(Links):
    """Relative paths of a static export; ``root`` climbs from the page to the export's top."""

    live = False

    def runs(self, filter=None, sort=None, order=None, page: int = 1) -> str:
        return f"{self.root}runs/page-{max(int(page or 1), 1)}.html"

    def run(self, run_id: str) -> str:
        return f"{self.root}runs/{quote(run_id)}.html"

    def compare(self, ids=None, parent=None) -> str | None:
        return f"{self.root}compare/{quote(parent)}.html" if parent else None

    def models(self) -> str:
        return f"{self.root}models/index.html"

    def model(self, name: str) -> str:
        return f"{self.root}models/{quote(name)}/index.html"

    def version(self, name: str, version: int) -> str:
        return f"{self.root}models/{quote(name)}/versions/{int(version)}.html"

    def monitor(self, name: str | None = None) -> str:
        return f"{self.root}models/{quote(name)}/monitor.html" if name else f"{self.root}monitor.html"

    def action(self, name: str, what: str) -> str | None:
        return None
