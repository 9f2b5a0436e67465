"""``mlnb ui``: parse arguments, check the store, start the server or write the export.

Only click is imported at module level; FastAPI, Jinja2 and uvicorn load inside the command.
"""

from __future__ import annotations

from pathlib import Path

import click

from mlnb.cli_common import MlnbCommand, store_option
from mlnb.exceptions import MlnbError

UI_EPILOG = """\b
Examples:
  mlnb ui                                   http://127.0.0.1:8080, read-only, the default store
  mlnb ui --store runs --port 9000 --token-file ui.token
  mlnb ui --write-token-file admin.token    adds promote and rollback (the form asks for the token)
  mlnb ui --export site/                    the same pages as static files

\b
It listens on 127.0.0.1 only. Pages: runs (filter, sort, compare), a run (its notebook as a
report or whole, parameters, scraps, artifacts, inputs, lineage, verify status), models,
versions with their lineage, a monitoring dashboard per model. See docs/ui.md.

\b
Exit codes:
  0    stopped by Ctrl-C or SIGTERM, or the export was written
  2    bad usage or input: the store cannot be read, a token file is missing or empty
  3    the server could not start (the port is in use, say)
"""


class UiError(MlnbError, ValueError):
    """A bad token file or export directory for ``mlnb ui``."""


def read_token(path: str | None, option: str) -> str | None:
    """The token in a file (surrounding whitespace removed), or None without a file."""
    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UiError(f"{option} {path!r}: cannot read it ({exc.strerror or exc})") from None
    if not token:
        raise UiError(f"{option} {path!r} is empty; write a token (any secret text) into it")
    return token


@click.command(cls=MlnbCommand, epilog=UI_EPILOG)
@store_option
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port on 127.0.0.1.")
@click.option("--token-file", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Require this token (the file's text) to read any page.")
@click.option("--write-token-file", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Offer promote and rollback, allowed to whoever gives this token.")
@click.option("--export", "export_dir", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="Write the pages as static files into DIR instead of serving them.")
def ui(store_path, port, token_file, write_token_file, export_dir):
    """Read, search and compare runs, models and their lineage in a browser."""
    import sys

    from mlnb.store import Store

    store = Store(store_path)
    if export_dir is not None:
        from mlnb.ui.export import export

        counts = export(store, export_dir, workers=None)
        click.echo(f"wrote {counts['runs']} runs, {counts['versions']} model versions of {counts['models']} models "
                   f"into {counts['directory']}; open {Path(counts['directory']) / 'index.html'}")
        return
    read = read_token(token_file, "--token-file")
    write = read_token(write_token_file, "--write-token-file")
    from mlnb.ui.site import Site

    Site(store).check()  # one line and exit 2 before any server starts
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            click.echo(f"mlnb: error: cannot listen on 127.0.0.1:{port}: {exc.strerror}; pick another --port", err=True)
            sys.exit(3)
    import uvicorn

    from mlnb.ui.app import create_app

    app = create_app(store, read_token=read, write_token=write)
    app.state.site.warm()
    url = f"http://127.0.0.1:{port}/" + (f"?token={read}" if read else "")
    mode = "promote and rollback need the write token" if write else "read-only"
    click.echo(f"mlnb ui: {url}  (store {store.location}; {mode}; Ctrl-C stops)", err=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
