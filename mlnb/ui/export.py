"""``mlnb ui --export DIR``: the pages of ``mlnb ui`` as static files, for a CI artifact or any web server.

Layout (every link relative, so the folder can be moved or opened from disk)::

    index.html                       the newest runs (= runs/page-1.html)
    runs/page-N.html                 every run, newest first, 50 a page
    runs/<id>.html                   a run
    raw/runs/<id>/report.html        its notebook without code inputs
    raw/runs/<id>/notebook.html      its whole notebook
    raw/runs/<id>/artifacts/...      its artifacts
    compare/<parent>.html            the children of a pipeline or sweep, side by side
    models/index.html, models/<name>/index.html, models/<name>/versions/<n>.html,
    models/<name>/monitor.html, monitor.html, static/ui.css

Filtering and comparing an arbitrary selection need the server. A static file server sends
no Content-Security-Policy header, so notebook HTML gets a ``<meta>`` policy that forbids
all script, and the run page's iframe is sandboxed without ``allow-scripts``: an exported
notebook shows its outputs but runs none of their code. (That iframe keeps
``allow-same-origin`` so that, opened from disk, it may load nbconvert's shared theme.)
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


_MADE: set[Path] = set()


def _write(path: Path, text: str) -> None:
    if path.parent not in _MADE:
        path.parent.mkdir(parents=True, exist_ok=True)
        _MADE.add(path.parent)
    path.write_text(text, encoding="utf-8")


def _links(rel: str) -> ExportLinks:
    return ExportLinks("../" * rel.count("/"))


def _page(site: Site, out: Path, rel: str, builder, *args) -> None:
    links = _links(rel)
    template, context = builder(*args, links=links)
    _write(out / rel, render(template, context, links, site))


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.parent not in _MADE:
        dst.parent.mkdir(parents=True, exist_ok=True)
        _MADE.add(dst.parent)
    with contextlib.suppress(FileNotFoundError):
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


#: Inline styles longer than this (nbconvert's lab theme, the same in every notebook) go
#: to one shared file under static/, so an export does not repeat them in every notebook.
SHARED_STYLE_MIN = 4096


def share_styles(html: str, out: Path, root: str, written: dict[str, str]) -> str:
    """``html`` with its long inline styles replaced by links to shared files in ``static/``."""
    parts, pos = [], 0
    while True:
        start = html.find("<style", pos)
        if start < 0:
            break
        body = html.find(">", start) + 1
        end = html.find("</style>", body)
        if body <= 0 or end < 0:
            break
        css = html[body:end]
        parts.append(html[pos:start])
        if len(css) < SHARED_STYLE_MIN:
            parts.append(html[start:end + 8])
        else:
            name = written.get(css)
            if name is None:
                name = written[css] = f"nb-{records.sha256_bytes(css.encode())[:16]}.css"
                target = out / "static" / name
                if not target.exists():  # another worker may write the same file: whole or not at all
                    tmp = target.with_suffix(f".{os.getpid()}.tmp")
                    tmp.write_text(css, encoding="utf-8")
                    os.replace(tmp, target)
            parts.append(f'<link rel="stylesheet" href="{root}static/{name}">')
        pos = end + 8
    parts.append(html[pos:])
    return "".join(parts)


def export_run(site: Site, out: Path, run_id: str, styles: dict[str, str] | None = None) -> None:
    """A run's page, its two notebook views and its artifacts."""
    _page(site, out, f"runs/{run_id}.html", site.run_page, run_id)
    run = site.run(run_id)
    raw = out / "raw" / "runs" / run_id
    try:
        html = run.html_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        html = "<html><head></head><body><p>this run has no notebook.html</p></body></html>"
    report = strip_inputs(html)
    if report is None:
        report = site.report(run_id)
    styles = {} if styles is None else styles
    root = "../../../"  # raw/runs/<id>/ up to the export's top
    _write(raw / "report.html", with_meta_csp(share_styles(report, out, root, styles)))
    _write(raw / "notebook.html", with_meta_csp(share_styles(html, out, root, styles)))
    for art in run.record.get("artifacts") or []:
        src = run.path / records.ARTIFACTS_DIR / art["path"]
        if src.is_file():
            _link_or_copy(src, raw / "artifacts" / art["path"])


_WORKER: dict = {}


def _start_worker(store_path: str, out: str) -> None:
    _MADE.clear()
    site = Site(store_path)
    site.sync(force=True)
    site.sync_mode = "never"  # the export shows the store as it was when it started
    _WORKER.update(site=site, out=Path(out), styles={})


def _task(task: tuple) -> list[tuple]:
    """Write the pages of one task in a worker; return the verify results it computed."""
    site, out = _WORKER["site"], _WORKER["out"]
    kind, *args = task
    if kind == "runs":
        done = []
        for run_id in args[0]:
            export_run(site, out, run_id, _WORKER["styles"])
            done.append((site.verify_key(run_id), site.verify(run_id)))
        return done
    if kind == "versions":
        for name, version in args[0]:
            _page(site, out, f"models/{name}/versions/{version}.html", site.version_page, name, version)
    elif kind == "compare":
        _page(site, out, f"compare/{args[0]}.html", lambda links: site.compare_page(parent=args[0], links=links))
    elif kind == "model":
        _page(site, out, f"models/{args[0]}/index.html", site.model_page, args[0])
        _page(site, out, f"models/{args[0]}/monitor.html", lambda links: site.monitor_page(args[0], links=links))
    return []


def _chunks(items: list, size: int) -> list[list]:
    return [items[k:k + size] for k in range(0, len(items), size)]


def export(store, directory: str | os.PathLike, progress=None, workers: int | None = 1) -> dict:
    """Write every page of ``store`` under ``directory``; return counts of what was written.

    Run pages, version pages and comparisons are written by ``workers`` processes (None: two,
    or one on a one-core machine); the lists are written last, with the verify status the
    workers found. More than one worker starts processes with ``spawn``, so a script that
    calls this needs the ``if __name__ == "__main__":`` guard; ``mlnb ui --export`` has it.

    Args:
        progress: called with ``(done, total)`` as tasks finish, if given.

    Raises:
        StoreError: the store cannot be read, or ``directory`` is a file.
    """
    import multiprocessing

    out = Path(directory).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise StoreError(f"export directory {str(out)!r} is a file; give a directory")
    _MADE.clear()
    site = Site(store)
    site.check()
    site.sync_mode = "never"
    out.mkdir(parents=True, exist_ok=True)
    (out / "static").mkdir(exist_ok=True)
    for f in STATIC.iterdir():
        shutil.copyfile(f, out / "static" / f.name)
    ids = site.store.run_ids()
    parents = [p for (p,) in site.db().execute(
        "SELECT parent FROM runs WHERE parent IS NOT NULL GROUP BY parent HAVING COUNT(*) >= 2")]
    with site.registry() as registry:
        versions = registry.versions()
    names = sorted({mv.name for mv in versions})
    tasks = ([("runs", chunk) for chunk in _chunks(ids, 25)]
             + [("versions", chunk) for chunk in _chunks([(mv.name, mv.version) for mv in versions], 25)]
             + [("compare", p) for p in parents] + [("model", n) for n in names])
    workers = workers or max(1, min(2, os.cpu_count() or 1))
    if workers == 1 or len(tasks) < 8:
        _start_worker(site.store.location, str(out))
        results = map(_task, tasks)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(workers, _start_worker, (site.store.location, str(out)))
        results = pool.imap_unordered(_task, tasks)
    try:
        for k, done in enumerate(results, 1):
            for key, problems in done:
                site._verify[key] = problems
            if progress:
                progress(k, len(tasks))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    pages = 0
    for n, template, context in site.all_runs_pages(PER_PAGE):
        if n == 1:
            _write(out / "index.html", render(template, context, _links("index.html"), site))
        _write(out / "runs" / f"page-{n}.html", render(template, context, _links(f"runs/page-{n}.html"), site))
        pages = n
    _page(site, out, "models/index.html", site.models_page)
    _page(site, out, "monitor.html", lambda links: site.monitor_page(None, links=links))
    return {"runs": len(ids), "run_pages": pages, "compare_pages": len(parents), "models": len(names),
            "versions": len(versions), "directory": str(out)}
