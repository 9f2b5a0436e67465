"""``mlnb ui --export DIR``: the pages of ``mlnb ui`` as static files, for a CI artifact or any web server.

Layout (every link relative, so the folder can be moved or opened from disk)::

    index.html                       the newest runs (= runs/page-1.html)
    runs/page-N.html                 every run, newest first, 50 a page
    runs/<id>/index.html             a run
    raw/runs/<id>/report.html        its notebook without code inputs
    raw/runs/<id>/notebook.html      its whole notebook
    raw/runs/<id>/artifacts/...      its artifacts
    compare/<parent>.html            the children of a pipeline or sweep, side by side
    models/index.html, models/<name>/index.html, models/<name>/versions/<n>.html,
    models/<name>/monitor.html, monitor.html, static/ui.css

Filtering and comparing an arbitrary selection need the server. A static file server sends
no Content-Security-Policy header, so notebook HTML gets a ``<meta>`` policy that forbids
all script: an exported notebook shows its outputs but runs none of their code.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from mlnb import records
from mlnb.exceptions import StoreError
from mlnb.ui.links import ExportLinks
from mlnb.ui.render import STATIC, render
from mlnb.ui.report import strip_inputs, with_meta_csp
from mlnb.ui.site import PER_PAGE, Site


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _links(rel: str) -> ExportLinks:
    return ExportLinks("../" * rel.count("/"))


def _page(site: Site, out: Path, rel: str, builder, *args) -> None:
    links = _links(rel)
    template, context = builder(*args, links=links)
    _write(out / rel, render(template, context, links, site))


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def export_run(site: Site, out: Path, run_id: str) -> None:
    """A run's page, its two notebook views and its artifacts."""
    _page(site, out, f"runs/{run_id}/index.html", site.run_page, run_id)
    run = site.run(run_id)
    raw = out / "raw" / "runs" / run_id
    try:
        html = run.html_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        html = "<html><head></head><body><p>this run has no notebook.html</p></body></html>"
    report = strip_inputs(html)
    if report is None:
        report = site.report(run_id)
    _write(raw / "report.html", with_meta_csp(report))
    _write(raw / "notebook.html", with_meta_csp(html))
    for art in run.record.get("artifacts") or []:
        src = run.path / records.ARTIFACTS_DIR / art["path"]
        if src.is_file():
            _link_or_copy(src, raw / "artifacts" / art["path"])


def export(store, directory: str | os.PathLike, progress=None) -> dict:
    """Write every page of ``store`` under ``directory``; return counts of what was written.

    Args:
        progress: called with ``(done, total)`` as run pages are written, if given.

    Raises:
        StoreError: the store cannot be read, or ``directory`` is a file.
    """
    out = Path(directory).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise StoreError(f"export directory {str(out)!r} is a file; give a directory")
    site = Site(store)
    site.check()
    out.mkdir(parents=True, exist_ok=True)
    (out / "static").mkdir(exist_ok=True)
    for f in STATIC.iterdir():
        shutil.copyfile(f, out / "static" / f.name)
    template, context = site.runs_page(links=_links("index.html"))
    pages = context["pages"]
    _write(out / "index.html", render(template, context, _links("index.html"), site))
    for n in range(1, pages + 1):
        _page(site, out, f"runs/page-{n}.html", lambda links, n=n: site.runs_page(page=n, per_page=PER_PAGE, links=links))
    ids = site.store.run_ids()
    with contextlib.closing(site.db()) as db:
        parents = [p for (p,) in db.execute(
            "SELECT parent FROM runs WHERE parent IS NOT NULL GROUP BY parent HAVING COUNT(*) >= 2")]
    for i, run_id in enumerate(ids, 1):
        export_run(site, out, run_id)
        if progress:
            progress(i, len(ids))
    for parent in parents:
        _page(site, out, f"compare/{parent}.html", lambda links, p=parent: site.compare_page(parent=p, links=links))
    _page(site, out, "models/index.html", site.models_page)
    _page(site, out, "monitor.html", lambda links: site.monitor_page(None, links=links))
    n_versions = 0
    with site.registry() as registry:
        versions = registry.versions()
    for name in sorted({mv.name for mv in versions}):
        _page(site, out, f"models/{name}/index.html", site.model_page, name)
        _page(site, out, f"models/{name}/monitor.html", lambda links, n=name: site.monitor_page(n, links=links))
    for mv in versions:
        _page(site, out, f"models/{mv.name}/versions/{mv.version}.html", site.version_page, mv.name, mv.version)
        n_versions += 1
    return {"runs": len(ids), "run_pages": pages, "compare_pages": len(parents),
            "models": len({mv.name for mv in versions}), "versions": n_versions, "directory": str(out)}
