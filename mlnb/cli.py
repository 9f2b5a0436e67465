"""The ``mlnb`` command: parses arguments, calls the library, maps errors to exit codes.

Heavy libraries are imported inside the commands that need them, so ``mlnb --help`` and
``mlnb runs list`` start fast.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from mlnb import records
from mlnb.cli_common import (
    EXIT_CODES,
    MlnbCommand,
    MlnbGroup,
    json_option,
    kernel_option,
    markup_safe,
    parameter_options,
    printable,
    store_option,
    store_option_with,
    timeout_option,
)
from mlnb.cli_common import console as _console
from mlnb.cli_common import echo_json as _echo_json
from mlnb.cli_common import open_store as _store
from mlnb.cli_common import print_run_outcome as _print_run_outcome
from mlnb.cli_store import run_verify, verify_options
from mlnb.exceptions import EXIT_FAILED, EXIT_INTERRUPTED
from mlnb.project import DEMO_BATCHES

@click.group(cls=MlnbGroup, epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="mlnb")
def main(debug: bool) -> None:
    """mlnb: parameterised notebooks as immutable run records, a model registry and
    a retraining pipeline."""
    import logging

    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# -- run ----------------------------------------------------------------------------------


@main.command(epilog=EXIT_CODES)
@click.argument("template")
@parameter_options()
@store_option
@timeout_option
@kernel_option
@click.option("--cold", is_flag=True,
              help="Start the kernel when the notebook starts, from nothing (default: start it, and import what "
                   "the template imports, while mlnb prepares the run).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def run(template, pairs, params_file, store_path, timeout, kernel_name, cold, quiet, as_json):
    """Execute TEMPLATE (a name in templates/ or a path) and record the run."""
    from mlnb import params as params_mod
    from mlnb.execute import find_template, run_template
    from mlnb.kernels import KernelPool, check_kernel

    store = _store(store_path)
    tpl = find_template(template)
    # what costs nothing to check is refused before a kernel starts: the kernel, the names and types
    check_kernel(kernel_name or tpl.kernel_name)
    values = params_mod.from_cli(tpl, pairs, params_file)
    params_mod.resolve(tpl, values)
    # one notebook: its kernel started ahead does its own imports (a fork server pays off from the second)
    pool = None if cold else KernelPool(size=1, fork=False)
    try:
        if pool is not None:  # the kernel starts while the inputs are checked and papermill loads
            pool.warm(tpl, kernel_name=kernel_name)
        config, note = _project_config(tpl, values)
        if config is not None and not config.kernels.warm and pool is not None:
            pool.close()
            pool = None
        result = run_template(tpl, values, store, kernel_name=kernel_name, timeout=timeout,
                              progress=not quiet and sys.stderr.isatty(), config=config, kernels=pool)
    finally:
        if pool is not None:
            pool.close()
    if note:
        click.echo(note, err=True)
    if as_json:
        _echo_json(result.record)
    else:
        _print_run_outcome(result)
    if not result.succeeded:
        sys.exit(EXIT_FAILED)


def _project_config(tpl, values: dict):
    """The project's mlnb.yaml when the template takes defaults from it, and a line saying
    which parameters it set (printed once the run is recorded)."""
    if not tpl.config_keys:
        return None, None
    from mlnb.config import find_config, load_config
    from mlnb.execute import project_defaults

    path = find_config()
    if path is None:
        return None, None
    config = load_config(path)
    used = {k: v for k, v in project_defaults(tpl, config).items() if k not in values}
    note = ("mlnb: parameters from " + str(path) + ": " + ", ".join(f"{k}={_short(v, 50)}" for k, v in used.items())
            if used else None)
    return config, note


# -- runs ---------------------------------------------------------------------------------


@main.group(epilog=EXIT_CODES)
def runs():
    """List, show, compare, verify and reproduce recorded runs."""


@runs.command("list")
@click.option("--template", default=None, help="Only runs of this template.")
@click.option("--status", type=click.Choice(["succeeded", "failed"]), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many (newest first).")
@click.option("--filter", "filter_expr", default=None, metavar="EXPR",
              help="Only runs that match, e.g. \"template = 'train' and metrics.f1 > 0.8\" (docs/ui.md).")
@store_option
@json_option
def runs_list(template, status, limit, filter_expr, store_path, as_json):
    """List runs, newest first."""
    items = _store(store_path).list_runs(template=template, status=status, limit=limit, filter=filter_expr,
                                         details=as_json)
    if as_json:
        _echo_json(items)
        return
    if not items:
        click.echo("no runs")
        return
    width = max(len(i["id"]) for i in items)
    lines = [f"{'ID':<{width}}  {'TEMPLATE':<12} {'STATUS':<9} {'STARTED':<20} {'SECONDS':>7}"]
    lines += [f"{i['id']:<{width}}  {printable(i['template']):<12} {i['status']:<9} "
              f"{i['started'][:19].replace('T', ' '):<20} {i['duration_s'] or 0:>7.1f}" for i in items]
    click.echo("\n".join(lines))  # one write: 10,000 echo calls cost a tenth of a second


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


@runs.command("show")
@click.argument("run_id")
@store_option
@json_option
def runs_show(run_id, store_path, as_json):
    """Show a run: parameters, scraps, artifacts, status, and where its HTML is."""
    run = _store(store_path).get(run_id)
    rec = run.record
    if as_json:
        _echo_json(rec)
        return
    from rich.table import Table

    console = _console()
    safe = markup_safe  # a record's values are data: no markup, no terminal escape sequences
    status = "[green]succeeded[/]" if run.succeeded else "[red]failed[/]"
    console.print(f"[bold]{safe(run.id)}[/]  {safe(rec['template']['name'])}  {status}  {rec['duration_s']:.1f} s")
    console.print(f"started {safe(rec['started'])}  parent {safe(rec['parent'] or '-')}")
    if rec["error"]:
        e = rec["error"]
        where = f" in cell {e['cell_index']}" if e.get("cell_index") is not None else ""
        console.print(f"[red]error[/]: {safe(e['kind'])}{where}: {safe(e['ename'])}: {safe(e['evalue'])}")
    for title, rows in (
        ("parameters", rec["parameters"].items()),
        ("scraps", ((k, records.table_text(v, long=True) if records.is_table(v) else v) for k, v in rec["scraps"].items())),
        ("inputs", ((i["parameter"], f"{i['path']}  sha256 {i['sha256'][:12]}  {i['bytes']} B") for i in rec["inputs"])),
        ("artifacts", ((a["path"], f"sha256 {a['sha256'][:12]}  {a['bytes']} B") for a in rec["artifacts"])),
    ):
        table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
        table.add_column(style="cyan")
        table.add_column()
        for k, v in rows:
            table.add_row(safe(k), safe(_short(v, 100)))
        if table.row_count:
            console.print(table)
    click.echo(f"notebook: {run.html_path}")  # whole, never wrapped: it is copied and opened


@runs.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@store_option
@json_option
def runs_diff(run_a, run_b, store_path, as_json):
    """Compare two runs: parameters, scraps and metrics side by side."""
    from mlnb.diff import diff_runs

    store = _store(store_path)
    a, b = store.get(run_a), store.get(run_b)
    rows = diff_runs(a, b)
    if as_json:
        _echo_json([r._asdict() for r in rows])
        return
    from rich.table import Table

    table = Table(title=f"{a.id}  vs  {b.id}", title_justify="left")
    for col in ("section", "name", "A", "B"):
        table.add_column(col)
    for r in rows:
        style = "bold yellow" if r.changed else None
        mark = "* " if r.changed else "  "
        table.add_row(r.section, markup_safe(mark + r.name), markup_safe(_short(r.a, 40)), markup_safe(_short(r.b, 40)),
                      style=style)
    console = _console()
    console.print(table)
    n = sum(r.changed for r in rows)
    console.print(f"{n} of {len(rows)} values differ (marked *)")


@runs.command("verify")
@click.argument("run_id", required=False)
@verify_options
@store_option
def runs_verify(run_id, since, public_key, repair, store_path):
    """Recompute every hash and digest of one run (or all) and check the runs against the
    ledger (deleted, replaced or unrecorded runs, the chain), the index and links between
    runs; exit 1 if anything does not hold. 'mlnb store verify' checks the registry too."""
    run_verify(_store(store_path), run_id, False, since, public_key, repair)


@runs.command("reproduce")
@click.argument("run_id")
@store_option
@timeout_option
@click.option("--cold", is_flag=True, help="Start the kernel from nothing, even if the run's kernel was warm.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def runs_reproduce(run_id, store_path, timeout, cold, quiet):
    """Re-execute a run with the same template, parameters and inputs, on a kernel prepared
    as the run's was (warm or cold); report what differs."""
    from mlnb.execute import reproduce

    store = _store(store_path)
    original, new, changed = reproduce(store, run_id, cold=cold, timeout=timeout,
                                       progress=not quiet and sys.stderr.isatty(),
                                       say=lambda line: click.echo(printable(line), err=True))
    _print_run_outcome(new)
    click.echo(f"  reproduces {original.id}")
    if changed:
        click.echo(f"  scraps that differ: {', '.join(changed)}")
    else:
        click.echo("  every scrap is identical")
    if not new.succeeded:
        sys.exit(EXIT_FAILED)


@runs.command("reindex")
@store_option
def runs_reindex(store_path):
    """Rebuild the run index from the records."""
    store = _store(store_path)
    store.sync_index(force=True)
    click.echo(f"indexed {len(store.run_ids())} runs in {store.database.name}")


# -- project and pipeline ------------------------------------------------------------------


@main.command(epilog=EXIT_CODES)
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--data", "data", default=None, type=click.Path(dir_okay=False),
              help="Your table (CSV or Parquet): the project's reference data.")
@click.option("--target", default=None, help="The column of --data to predict.")
@click.option("--force", is_flag=True, help="Overwrite the project files if mlnb.yaml exists.")
def init(directory, data, target, force):
    """Write a project into DIRECTORY: an mlnb.yaml for --data/--target, or the example project."""
    from mlnb.project import init_project

    written = init_project(directory, force=force, data=data, target=target)
    click.echo(f"wrote {len(written)} files into {directory}")
    if data is None:
        click.echo(f"next: cd {directory} && mlnb pipeline run")
    else:
        click.echo(f"review {directory}/mlnb.yaml, put new batches into {directory}/data/batches/, then: "
                   f"cd {directory} && mlnb pipeline run --current data/batches/BATCH")


class _PipelineRunCommand(MlnbCommand):
    """Its exit codes come from the pipeline's own table of outcomes, read when help is shown."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from mlnb.exceptions import EXIT_USAGE
        from mlnb.pipeline import OUTCOMES

        codes: dict[int, list[str]] = {}
        for code, text in OUTCOMES.values():
            codes.setdefault(code, []).append(text)
        codes[EXIT_USAGE] = ["bad usage or configuration (the key is named; nothing was written)"]
        codes[EXIT_INTERRUPTED] = ["interrupted"]
        lines = [f"  {code:<4} {', or '.join(texts)}" for code, texts in sorted(codes.items())]
        formatter.write_paragraph()
        formatter.write_text("\b\nExit codes:\n" + "\n".join(lines))


@main.group()
def pipeline():
    """The retraining pipeline configured in mlnb.yaml."""


@pipeline.command("run", cls=_PipelineRunCommand)
@click.option("--config", "config_path", default="mlnb.yaml", type=click.Path(dir_okay=False),
              help="Project file (default: ./mlnb.yaml).")
@click.option("--current", default=None, type=click.Path(dir_okay=False),
              help="Process this batch file (default: the newest unseen batch of data.current).")
@click.option("--backfill", default=None, metavar="GLOB",
              help="Process every unseen batch matching GLOB, oldest name first, each a pipeline run of "
                   "its own; exits with the code of the worst outcome.")
@store_option_with(help="Run store (default: $MLNB_STORE, else 'store:' of the config).")
@click.option("--force", is_flag=True, help="Process the batch even if it was processed before.")
@click.option("--cold", is_flag=True,
              help="Start every step's kernel from nothing instead of a warm one (also: kernels.warm: false).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def pipeline_run(config_path, current, backfill, store_path, force, cold, quiet):
    """Validate the newest batch, check drift and performance, retrain and promote when needed."""
    from mlnb.config import load_config
    from mlnb.exceptions import ParameterError
    from mlnb.pipeline import OUTCOME_EXIT, run_pipeline
    from mlnb.store import Store

    if current and backfill:
        raise ParameterError("give --current or --backfill, not both")
    config = load_config(config_path)
    store = Store(store_path) if store_path else None
    if backfill:
        from mlnb.pipeline.backfill import run_backfill

        done = run_backfill(config, backfill, store, force=force, cold=cold, progress=not quiet and sys.stderr.isatty(),
                            echo=click.echo, each=lambda path, decision, record: _print_decision(decision, record))
        left = f"; {len(done.seen)} processed before, left alone" if done.seen else ""
        click.echo(f"backfill: {len(done.done)} batch(es) processed{left}; worst outcome: {done.worst}")
        sys.exit(done.exit_code)
    decision, record = run_pipeline(config, store, current=current, force=force, cold=cold,
                                    progress=not quiet and sys.stderr.isatty(), echo=click.echo)
    _print_decision(decision, record)
    sys.exit(OUTCOME_EXIT[decision.outcome])


def _print_decision(decision, record) -> None:
    click.echo(f"decision: {decision.outcome}")
    for reason in decision.reasons:
        click.echo(f"  {reason}")
    click.echo(f"pipeline record: {record.path / 'record.json'}")
    click.echo(f"read it:         {record.html_path}")


@main.command()
@click.option("--config", "config_path", default="mlnb.yaml", type=click.Path(dir_okay=False))
@click.option("--batches", default=",".join(DEMO_BATCHES), show_default=True,
              help="Example batches to feed the pipeline, in order (names in data/batches/).")
@click.option("--cold", is_flag=True, help="Start every kernel from nothing instead of a warm one.")
def demo(config_path, batches, cold):
    """Run the retraining pipeline on the bundled weather data, batch after batch."""
    from mlnb.config import load_config
    from mlnb.project import run_demo

    names = [b.strip() for b in batches.split(",") if b.strip()]
    done = run_demo(load_config(config_path), names, echo=click.echo, cold=cold,
                    each=lambda name, decision, record: _print_decision(decision, record))
    click.echo("\nRendered notebooks (open in a browser):")
    for name, decision, record in done:
        click.echo(f"  {name}: {decision.outcome:<14} {record.html_path}")
    click.echo("Every step of each pipeline run links to its own notebook; list them with 'mlnb runs list'.")


from mlnb.cli_models import models  # noqa: E402  (registered after main exists)

main.add_command(models)

from mlnb.cli_sweep import sweep  # noqa: E402  (needs the helpers above)

main.add_command(sweep)

from mlnb.cli_serve import predict, serve  # noqa: E402  (needs the helpers above)

main.add_command(predict)
main.add_command(serve)

from mlnb.cli_ui import ui  # noqa: E402  (registered after main exists)

main.add_command(ui)

from mlnb.cli_labels import labels  # noqa: E402  (registered after main exists)

main.add_command(labels)

from mlnb.cli_store import store  # noqa: E402  (registered after main exists)

main.add_command(store)


def entry() -> None:
    """The ``mlnb`` program: :func:`main`, then the process ends without tearing its modules
    down. That teardown (pandas, scikit-learn, scipy, nbconvert, … as a run imports them)
    costs the interpreter 0.4–0.6 s of CPU after the last line is printed, and mlnb needs
    nothing of it: every file it writes is closed where it is written. Threads are waited
    for and every other exit handler runs first (this one is registered before any other, so
    it runs last); only an exit mlnb itself decided is shortened — an exception that escapes
    ends the process as Python ends it."""
    import atexit

    outcome: dict[str, Any] = {}
    atexit.register(_end_now, outcome)
    try:
        main()
    except SystemExit as exc:
        outcome["code"] = exc.code
        raise


def _end_now(outcome: dict[str, Any]) -> None:
    import logging
    import os

    code = outcome.get("code", "unknown")
    if not (code is None or isinstance(code, int)):
        return  # not an exit code mlnb chose: Python ends the process as usual
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what was lost is lost either way
            pass
    os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    entry()
