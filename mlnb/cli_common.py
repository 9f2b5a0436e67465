"""What every ``mlnb`` command module shares: error mapping, common options, output helpers.

Kept apart from :mod:`mlnb.cli` so command modules (``cli_models``, ``cli_sweep``,
``cli_serve``) can import it without importing the root command first.
"""

from __future__ import annotations

import json
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

store_option = click.option(
    "--store",
    "store_path",
    envvar="MLNB_STORE",
    default=None,
    metavar="PATH",
    help="Run store (default: $MLNB_STORE, 'store:' in mlnb.yaml, else runs/).",
)
timeout_option = click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
    help="Seconds a cell may run before its run fails.",
)
kernel_option = click.option("--kernel", "kernel_name", default=None, help="Jupyter kernel (default: the template's).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (stable format).")


class MlnbGroup(click.Group):
    """Turns mlnb errors into one line on stderr and a documented exit code."""

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


def open_store(path: str | None):
    from mlnb.store import Store

    return Store(path)


def echo_json(value: Any) -> None:
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
        click.echo(
            f"run {run.id} failed: {err['kind']} in cell {err['cell_index']}: "
            f"{err['ename']}: {err['evalue']}".rstrip(": "),
            err=True,
        )
    click.echo(f"  record:   {run.path / 'record.json'}")
    click.echo(f"  notebook: {run.html_path}")
