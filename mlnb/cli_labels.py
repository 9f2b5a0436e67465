"""``mlnb labels``: store labels that arrived late, joined to what the server predicted.

Registered on the root command by ``mlnb.cli``. Only click is imported at module level;
pandas and the template machinery load inside the command.
"""

from __future__ import annotations

import sys

import click

from mlnb.cli_common import EXIT_CODES, MlnbGroup, store_option, timeout_option
from mlnb.cli_common import print_run_outcome as _print_run_outcome
from mlnb.exceptions import EXIT_FAILED

ADD_EPILOG = f"""\b
Examples:
  mlnb labels add outcomes.csv                       # the only model with a prediction log
  mlnb labels add outcomes.csv --model weather --label-column observed

\b
FILE is a CSV or Parquet table: request_id (the id the server answered with), optionally
row (of a multi-row request; default 0) and time, and the label ('label' or the model's
target, unless --label-column names it). The labels become a run of the 'labels' template:
the file's sha256 is in its record, and it counts the labels that matched a logged
prediction, those whose request id is not in the log, and rows labelled twice. The
'monitor' template reads every labels run of the model. See docs/monitoring.md.

\b
Refused with exit code 2, nothing written: no request id or label column, a label of the
wrong type (text for a regressor, a class the model never predicts), a model with no
prediction log.

{EXIT_CODES}"""


@click.group(cls=MlnbGroup, epilog=EXIT_CODES)
def labels():
    """Store labels that arrive after the predictions, joined by request id."""


@labels.command("add", epilog=ADD_EPILOG)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--model", default=None, metavar="NAME",
              help="Model whose predictions these labels are (default: the only one with a prediction log).")
@click.option("--label-column", default=None, metavar="COLUMN",
              help="Column holding the labels (default: 'label', else the model's target).")
@click.option("--id-column", default="request_id", show_default=True, metavar="COLUMN",
              help="Column holding the request ids.")
@store_option
@timeout_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def add(file, model, label_column, id_column, store_path, timeout, quiet):
    """Store the labels of FILE as a recorded run and join them to the prediction log."""
    from mlnb.labels import add_file

    outcome = add_file(file, store_path, model, label_column=label_column, id_column=id_column, timeout=timeout,
                       progress=not quiet and sys.stderr.isatty())
    _print_run_outcome(outcome.run)
    if not outcome.run.succeeded:
        sys.exit(EXIT_FAILED)
    c = outcome.counts
    click.echo(f"  model:    {outcome.model}")
    click.echo(f"  labels:   {c.get('labels', 0):,} read, {c.get('matched', 0):,} matched a logged prediction")
    if c.get("unknown"):
        click.echo(f"mlnb: warning: {c['unknown']:,} labels name a request id and row the prediction log does not "
                   "hold; they are kept in the run but join nothing", err=True)
    if c.get("duplicates"):
        click.echo(f"mlnb: warning: {c['duplicates']:,} rows label a request already labelled in the file "
                   f"({c.get('conflicting', 0):,} with a different value); the last one counts", err=True)
