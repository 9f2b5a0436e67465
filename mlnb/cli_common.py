"""What every ``mlnb`` command module shares: error mapping, common options, output helpers.

Kept apart from :mod:`mlnb.cli` so command modules (``cli_models``, ``cli_sweep``,
``cli_serve``) can import it without importing the root command first.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from typing import Any

import click

from mlnb.exceptions import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, MlnbError

EXIT_CODES = f"""\b
Exit codes:
  0    success
  {EXIT_FAILED}    a run or a check failed (its record exists)
  {EXIT_USAGE}    bad usage or input (nothing was written)
  {EXIT_INTERRUPTED}  interrupted by Ctrl-C or SIGTERM (nothing was written)
"""

def store_option_with(help: str = "Run store (default: $MLNB_STORE, 'store:' in mlnb.yaml, else runs/)."):
    """``--store PATH`` (also ``$MLNB_STORE``), passed as ``store_path``; ``help`` for a
    command whose default store comes from elsewhere."""
    return click.option("--store", "store_path", envvar="MLNB_STORE", default=None, metavar="PATH", help=help)


store_option = store_option_with()
timeout_option = click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
    help="Seconds a cell may run before its run fails.",
)
def parameter_options(common: bool = False):
    """``-p NAME VALUE`` (repeatable) and ``-f FILE``, passed as ``pairs`` and ``params_file``
    (read them with :func:`mlnb.params.from_cli`); ``common``: for every run of a sweep."""
    p_help = ("A parameter common to every run (parsed like 'mlnb run -p')." if common else
              "Set a parameter (VALUE is parsed as JSON or a YAML scalar; text for str parameters).")
    f_help = f"YAML file of parameters{' common to every run' if common else ''} (-p wins over it)."

    def decorate(command):
        command = click.option("-f", "--parameters-file", "params_file", type=click.Path(), default=None,
                               help=f_help)(command)
        return click.option("-p", "--parameter", "pairs", nargs=2, multiple=True, metavar="NAME VALUE",
                            help=p_help)(command)

    return decorate


kernel_option = click.option("--kernel", "kernel_name", default=None, help="Jupyter kernel (default: the template's).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (stable format).")


class MlnbCommand(click.Command):
    """Says the library parameters an error names (```target```) as this command's options
    (``--target``), so a message reads in the words the user typed."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlnbError as exc:
            if exc.parameters and exc.args and isinstance(exc.args[0], str):
                exc.args = (_as_options(exc.args[0], exc.parameters, self.params), *exc.args[1:])
            raise


def _as_options(message: str, parameters: tuple[str, ...], params: list[click.Parameter]) -> str:

    for name in parameters:
        option = next((p for p in params if isinstance(p, click.Option) and
                       (p.name == name or any(o.lstrip("-").replace("-", "_") == name for o in p.opts))), None)
        if option is not None:
            message = message.replace(f"`{name}`", max(option.opts, key=len))
    return message


class MlnbGroup(click.Group):
    """Turns mlnb errors into one line on stderr and a documented exit code."""

    command_class = MlnbCommand
    group_class = type  # subgroups are MlnbGroups too

    def main(self, *args, standalone_mode: bool = True, **kwargs) -> Any:
        """As click's, but a usage error is one line too: what is wrong, and where help is."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        import sys

        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"mlnb: error: {exc.format_message()}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("mlnb: aborted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlnbError as exc:
            if ctx.find_root().params.get("debug"):
                raise
            click.echo(f"mlnb: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("mlnb: interrupted; nothing was written", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (OSError, *_database_errors()) as exc:
            # the machine, not the input: a full disk, a lost mount, a database that went away
            if ctx.find_root().params.get("debug"):
                raise
            if isinstance(exc, OSError) and exc.strerror:
                reason = exc.strerror + (f": {exc.filename}" if exc.filename else "")
            else:
                reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            click.echo(f"mlnb: error: {reason} (--debug shows where)", err=True)
            ctx.exit(EXIT_FAILED)


def _database_errors() -> tuple[type[BaseException], ...]:
    """The drivers' error classes: SQLite's always, PostgreSQL's once a team store loaded it."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error,) + ((psycopg.Error,) if psycopg is not None else ())


#: Characters a terminal acts on rather than shows: C0 controls but tab and newline, DEL, C1
#: controls (``\x9b`` starts an escape sequence too) and the bidirectional overrides that
#: make text read differently from what it holds.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` safe for a terminal: every control character written as its escape
    (``\x1b``), so a value in a record can neither move the cursor, nor recolour, retitle or
    clear the screen, nor hide what follows it."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def markup_safe(value: Any) -> str:
    """``str(value)`` for a rich table or ``console.print``: printable, markup escaped."""
    from rich.markup import escape

    return escape(printable(str(value)))


def open_store(path: str | None):
    from mlnb.store import Store

    return Store(path)


def echo_json(value: Any) -> None:
    """Print JSON: a list one item a line (grep-able, and encoded by the C encoder: a
    listing of 10,000 runs in a tenth of the time ``indent`` takes), anything else indented."""
    if isinstance(value, list) and value:
        encode = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode  # one encoder, not one a dumps
        items = ",\n".join(" " + encode(v) for v in value)
        click.echo(f"[\n{items}\n]")
    else:
        click.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def print_run_outcome(run) -> None:
    """One line saying how a run ended, then where its record and rendered notebook are."""
    rec = run.record
    if run.succeeded:
        click.echo(f"run {run.id} succeeded in {rec['duration_s']:.1f} s")
    else:
        err = rec["error"]
        where = f" in cell {err['cell_index']}" if err.get("cell_index") is not None else ""
        click.echo(printable(f"run {run.id} failed: {err['kind']}{where}: {err['ename']}: {err['evalue']}".rstrip(": ")),
                   err=True)
    for line in result_lines(rec["scraps"]):
        click.echo(printable(f"  {line}"))
    for warning in rec["scraps"].get("warnings") or []:
        click.echo(printable(f"mlnb: warning: {warning}"), err=True)
    location = run.store.run_location(run.id) if run.store is not None else str(run.path)
    if location != str(run.path):  # a team store: the run is there, its files also in the cache
        click.echo(f"  stored:   {location}")
    click.echo(f"  record:   {run.path / 'record.json'}")
    click.echo(f"  notebook: {run.html_path}")


def result_lines(scraps: dict, width: int = 100) -> list[str]:
    """What a run found, for the terminal: its scalar scraps and flat dicts of numbers
    (``metrics``), as ``name: value`` lines; tables and long values stay in the record."""
    found = []
    for name, value in scraps.items():
        if isinstance(value, bool) or isinstance(value, (int, float)):
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
        elif isinstance(value, dict) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in value.values()):
            text = ", ".join(f"{k} {v:.4g}" for k, v in value.items())
        else:
            continue
        if len(text) <= width:
            found.append((name, text))
    pad = max((len(n) for n, _ in found), default=0) + 1
    return [f"{name + ':':<{pad}} {text}" for name, text in found]
