"""``mlnb ui``: parse arguments, check the store, start the server or write the export.

Only click is imported at module level; FastAPI, Jinja2 and uvicorn load inside the command.
"""

from __future__ import annotations

from pathlib import Path

import click

from mlnb.cli_common import MlnbCommand, store_option
from mlnb.guard import read_token

UI_EPILOG = """\b
Examples:
  mlnb ui                                   http://127.0.0.1:8080, read-only, the default store
  mlnb ui --store runs --port 9000 --token-file ui.token
  mlnb ui --write-token-file admin.token    adds promote and rollback (the form asks for the token)
  mlnb ui --export site/                    the same pages as static files

\b
It listens on 127.0.0.1 only. Pages: runs (filter, sort, compare), a run (its notebook as a
report or whole, parameters, scraps, artifacts, inputs, lineage, verify status), models,
versions with their lineage, a monitoring dashboard per model. A request body over
--max-request-bytes is answered 413. See docs/ui.md.

\b
Exit codes:
  0    stopped by Ctrl-C or SIGTERM, or the export was written
  2    bad usage or input: the store cannot be read, a token file is missing or empty
  3    the server could not start (the port is in use, say)
"""


@click.command(cls=MlnbCommand, epilog=UI_EPILOG)
@store_option
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port on 127.0.0.1.")
@click.option("--token-file", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Require this token (the file's text) to read any page.")
@click.option("--write-token-file", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Offer promote and rollback, allowed to whoever gives this token.")
@click.option("--export", "export_dir", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="Write the pages as static files into DIR instead of serving them.")
@click.option("--max-request-bytes", default=None, type=click.IntRange(min=1), metavar="BYTES",
              help="Largest request body read; a larger one is answered 413 (default: http.max_request_bytes "
                   "of mlnb.yaml, else 65536).")
def ui(store_path, port, token_file, write_token_file, export_dir, max_request_bytes):
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
    from mlnb.guard import DEFAULT_UI_MAX_REQUEST_BYTES, project_max_request_bytes

    limit = max_request_bytes or project_max_request_bytes(DEFAULT_UI_MAX_REQUEST_BYTES)
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

    app = create_app(store, read_token=read, write_token=write, max_request_bytes=limit)
    app.state.site.warm()
    url = f"http://127.0.0.1:{port}/" + (f"?token={read}" if read else "")
    mode = "promote and rollback need the write token" if write else "read-only"
    click.echo(f"mlnb ui: {url}  (store {store.location}; {mode}; Ctrl-C stops)", err=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
