"""The ``mlnb sweep`` command: parses arguments, hands the sweep to mlnb.parallel, reports.

Only click is imported here; Dask, rich and the library load inside the command.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from mlnb.cli_common import (
    EXIT_CODES,
    MlnbCommand,
    kernel_option,
    open_store,
    parameter_options,
    store_option,
    timeout_option,
)
from mlnb.exceptions import EXIT_FAILED, EXIT_INTERRUPTED, SweepInterrupted

SWEEP_EXIT_CODES = EXIT_CODES.replace(
    "a run or a check failed (its record exists)",
    "at least one run failed (every run that executed has a record)",
).replace(
    "interrupted by Ctrl-C or SIGTERM (nothing was written)",
    "interrupted: pending runs cancelled; runs already recorded stay",
)

EPILOG = f"""\b
Examples:
  mlnb sweep train --grid seed=1,2,3 --grid test_size=0.2,0.3 --workers 2
  mlnb sweep drift --over 'data/batches/*.csv' -p reference data/reference.csv
  mlnb sweep train --grid seed=1,2 --scheduler tcp://10.0.0.5:8786

\b
Every run is its own record, with the sweep id as its parent and tag; the summary
(parameters x scraps) is printed and recorded as a run of the 'sweep' template whose
id is the sweep id. With --scheduler, every worker must import the same mlnb. Into a
team store (s3://..., MLNB_DATABASE) the template and the files the parameters name are
sent to the workers as content, and each worker reaches the store with its own settings
(docs/team-store.md); into a local store, every worker must see the template and the
store at the same paths (docs/scale-out.md).

{SWEEP_EXIT_CODES}"""


@click.command(cls=MlnbCommand, epilog=EPILOG)
@click.argument("template")
@click.option("--grid", "grid", multiple=True, metavar="NAME=V1,V2,...",
              help="Values of one parameter; the sweep runs the cross product of every --grid. "
                   "Brackets and quotes protect commas: --grid 'items=[1,2],[3]'.")
@parameter_options(common=True)
@click.option("--over", "over", default=None, metavar="PATH_GLOB",
              help="Backfill: one run per matching file (crossed with --grid); quote the glob.")
@click.option("--over-param", "over_param", default=None, metavar="NAME",
              help="The parameter that takes each --over file (default: 'data', else 'current').")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local worker processes: 1 runs in this process, N>1 starts a Dask LocalCluster "
                   "(default: the machine's cores, at most one per run).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on an existing Dask cluster: tcp://HOST:PORT or a scheduler file.")
@click.option("--scrap", "scraps", multiple=True, metavar="NAME",
              help="Scraps to show in the summary (repeatable; default: every scalar scrap).")
@store_option
@timeout_option
@kernel_option
@click.option("--cold", is_flag=True,
              help="Start every run's kernel from nothing (default: each worker starts the next run's kernel, "
                   "with the template's imports done, while a run executes).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output, only the summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (stable format).")
def sweep(template, grid, pairs, params_file, over, over_param, workers, scheduler, scraps, store_path,
          timeout, kernel_name, cold, quiet, as_json):
    """Run TEMPLATE once per point of a parameter grid (or per data file), in parallel."""
    from mlnb import parallel
    from mlnb import params as params_mod
    from mlnb.execute import find_template, sigterm_as_interrupt

    store = open_store(store_path)
    tpl = find_template(template)
    fixed = params_mod.from_cli(tpl, pairs, params_file)
    plan = parallel.plan_sweep(tpl, store, grid=grid, fixed=fixed, over=over, over_param=over_param,
                               kernel_name=kernel_name, timeout=timeout, scraps=scraps or None, cold=cold)
    backend = parallel.make_backend(workers, scheduler, n_tasks=len(plan.tasks))
    progress = _progress(quiet)
    try:
        with sigterm_as_interrupt(), progress:
            result = parallel.execute_sweep(plan, backend, progress)
    except SweepInterrupted as exc:
        recorded = len(exc.recorded)
        rest = ("the others cancelled; no partial run left" if backend.on_this_host else
                "pending runs cancelled; runs already running on the cluster finish and are recorded")
        click.echo(f"mlnb: sweep {plan.sweep_id} interrupted: {recorded} of {len(plan.tasks)} runs recorded, {rest}",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)

    if as_json:
        click.echo(json.dumps(_as_json(result), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        _print_summary(result)
    if result.n_failed:
        sys.exit(EXIT_FAILED)


def _as_json(result) -> dict:
    counts = result.counts
    return {
        "sweep": result.plan.sweep_id,
        "template": result.plan.template.name,
        "summary_run": (result.summary_run or {}).get("run_id"),
        "runs": result.rows,
        "n_runs": len(result.rows),
        "n_succeeded": counts["succeeded"],
        "n_failed": result.n_failed,
    }


def _fmt(value: Any, width: int = 28) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_summary(result) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from mlnb.parallel import scrap_columns

    plan = result.plan
    scraps = scrap_columns(result.rows)
    table = Table(title=f"sweep {plan.sweep_id}: {plan.template.name}", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("run", overflow="fold", min_width=16)  # whole, if need be on two lines
    table.add_column("status", no_wrap=True)
    for col in (*plan.varying, *scraps):
        table.add_column(col, min_width=min(len(col), 10))
    styles = {"succeeded": "green", "failed": "red", "error": "red"}
    for row in result.rows:
        params = [_fmt(row["parameters"].get(n)) for n in plan.varying]
        values = [_fmt(row["scraps"].get(n)) for n in scraps]
        status = f"[{styles[row['status']]}]{row['status']}[/]"
        table.add_row(str(row["index"] + 1), row["run_id"] or "-", status, *params, *values)
    # piped output keeps one line per run, however wide
    console = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 100_000)
    console.print(table)
    for row in result.rows:
        if row["status"] != "succeeded":
            console.print(f"[red]point {row['index'] + 1}[/] {row['run_id'] or '(no record)'}: {row['error']}",
                          markup=True)
    counts = result.counts
    line = f"{len(result.rows)} runs: {counts['succeeded']} succeeded, {counts['failed']} failed"
    if counts["error"]:
        line += f", {counts['error']} could not run (no record)"
    console.print(line)
    if result.summary_run:
        console.print(f"summary record: {plan.store.run_location(result.summary_run['run_id'])}/notebook.html")


def _progress(quiet: bool):
    """runs done/total with failures: a rich bar on a terminal, else one line per run."""
    from mlnb.parallel import SweepObserver

    class Progress(SweepObserver):
        def __init__(self):
            self.bar = None

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.close()

        def close(self) -> None:
            if self.bar is not None:
                self.bar.stop()
                self.bar = None

        def started(self, plan, backend) -> None:
            if quiet:
                return
            click.echo(f"sweep {plan.sweep_id}: {len(plan.tasks)} runs of {plan.template.name} "
                       f"({backend.description})", err=True)
            if sys.stderr.isatty():
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self.bar = Progress(
                    TextColumn("runs"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
                    console=Console(stderr=True),
                )
                self.task = self.bar.add_task("runs", total=len(plan.tasks), failed=0)
                self.bar.start()

        def run_done(self, row: dict, done: int, total: int, failed: int) -> None:
            if quiet:
                return
            if self.bar is not None:
                self.bar.update(self.task, completed=done, failed=failed)
                if done == total:
                    self.close()  # before the summary is recorded and printed
                return
            what = row["run_id"] or "(no record)"
            detail = f": {row['error']}" if row["status"] != "succeeded" and row.get("error") else ""
            click.echo(f"[{done:>{len(str(total))}}/{total}] {row['status']:<9} {what}{detail}  ({failed} failed)",
                       err=True)

        def interrupted(self) -> None:
            self.close()
            click.echo("mlnb: interrupted; cancelling the pending runs…", err=True)

    return Progress()
