"""``mlnb predict`` and ``mlnb serve``: parse arguments, call mlnb.predict / mlnb.serve, report.

Registered on the root command by ``mlnb.cli``. Only click and mlnb.cli are imported here at
module level; pandas, scikit-learn, FastAPI and uvicorn load inside the commands.
"""

from __future__ import annotations

import sys

import click

from mlnb.cli_common import EXIT_CODES, MlnbCommand, store_option, timeout_option
from mlnb.cli_common import print_run_outcome as _print_run_outcome
from mlnb.exceptions import EXIT_FAILED

PREDICT_EPILOG = f"""\b
Examples:
  mlnb predict weather@production --input data/batches/2013-q2.csv --output preds.parquet
  mlnb predict weather/3 --input new.csv --output preds.csv --keep date

\b
The predictions are a run of the 'predict' template: its record holds the input's
sha256, the model version and the predictions artifact, which OUTPUT copies. Rows that
lack a feature value stay in the output without a prediction (see --impute-missing);
their 'missing' column names what they lack.

{EXIT_CODES}"""

SERVE_EPILOG = """\b
Examples:
  mlnb serve weather@production
  mlnb serve weather@production --shadow weather@challenger --port 8080
  mlnb serve weather@production --workers 2 --no-access-log

\b
POST /predict {"rows": [{feature: value, ...}, ...]} answers with the predictions and the
model version; GET /health, GET /metrics (Prometheus), /docs and /openapi.json. The served
alias is followed: a promotion or 'mlnb models rollback' takes effect within
--poll-interval seconds plus the load time, without a restart. With --shadow, requests are
also scored by the shadow model off the response path and logged to
<store>/shadow/<name>.jsonl for the 'shadow' template. A request body over
--max-request-bytes is answered 413 (from its Content-Length, or as soon as a chunked body
passes it); with --token-file, every request but GET /health needs 'Authorization: Bearer
TOKEN' and is answered 401 without it. See docs/serving.md.

\b
Exit codes:
  0    stopped by Ctrl-C or SIGTERM after serving
  2    bad usage or input: unknown model, alias or version, tampered artifact, a token file
       that is missing or empty (nothing served)
  3    uvicorn could not start (the port is in use, say)
"""


@click.command(cls=MlnbCommand, epilog=PREDICT_EPILOG)
@click.argument("uri")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Table to score (CSV or Parquet).")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write the predictions: .parquet, .pq or .csv.")
@click.option("--keep", "keep", multiple=True, metavar="COLUMN",
              help="Input column to copy next to the predictions (repeatable; default: every non-feature column).")
@click.option("--impute-missing", is_flag=True,
              help="Also score rows with missing feature values (the model imputes them); they stay reported.")
@store_option
@timeout_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def predict(uri, input_path, output_path, keep, impute_missing, store_path, timeout, quiet):
    """Score FILE with model URI (NAME@ALIAS or NAME/VERSION) and record the run."""
    from mlnb.predict import predict_file

    outcome = predict_file(uri, input_path, output_path, store_path, keep=list(keep) if keep else None,
                           impute_missing=impute_missing, timeout=timeout,
                           progress=not quiet and sys.stderr.isatty())
    _print_run_outcome(outcome.run)
    if not outcome.run.succeeded:
        sys.exit(EXIT_FAILED)
    model = outcome.model
    click.echo(f"  model:    {model.get('name')}/{model.get('version')} ({uri})")
    click.echo(f"  output:   {outcome.output} ({outcome.n_scored:,} of {outcome.n_rows:,} rows scored)")
    if outcome.n_missing:
        action = "scored with imputed values" if impute_missing else "left without a prediction"
        click.echo(f"mlnb: warning: {outcome.n_missing:,} rows lack a feature value ({action}); "
                   "their 'missing' column names the features", err=True)


@click.command(cls=MlnbCommand, epilog=SERVE_EPILOG)
@click.argument("uri")
@click.option("--shadow", default=None, metavar="URI",
              help="Also score every request with this model (e.g. NAME@challenger), off the response path.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 only behind a firewall or load balancer.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="uvicorn worker processes (each loads the models and follows the registry).")
@store_option
@click.option("--poll-interval", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds between reads of the registry's aliases.")
@click.option("--max-rows", default=10_000, show_default=True, type=click.IntRange(min=1),
              help="Most rows one request may hold.")
@click.option("--shadow-log", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Shadow log file (default: <store>/shadow/<served name>.jsonl).")
@click.option("--shadow-wait", default=0.05, show_default=True, type=click.FloatRange(min=0),
              help="Seconds the shadow scorer gathers requests into one scoring call.")
@click.option("--prediction-log", default=None, metavar="DIR|off",
              help="Prediction log directory (default: <store>/predictions/<served name>); 'off' for none.")
@click.option("--log-inputs", default=None, type=click.Choice(["features", "hash"]),
              help="What the prediction log keeps of each row's inputs (default: features).")
@click.option("--max-request-bytes", default=None, type=click.IntRange(min=1), metavar="BYTES",
              help="Largest request body read; a larger one is answered 413 (default: http.max_request_bytes "
                   "of mlnb.yaml, else 10485760).")
@click.option("--token-file", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Require 'Authorization: Bearer TOKEN' (the file's text) on every request but GET /health.")
@click.option("--log-share-interval", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              metavar="SECONDS", help="Team store: seconds between uploads of the prediction and shadow logs "
                                      "(other hosts see a request this much later at most).")
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="Log every request.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(uri, shadow, host, port, workers, store_path, poll_interval, max_rows, shadow_log, shadow_wait,
          prediction_log, log_inputs, max_request_bytes, token_file, log_share_interval, access_log, log_level):
    """Serve model URI over HTTP (JSON in and out), following its alias in the registry."""
    from mlnb.serve import serve as run_server

    run_server(uri, shadow=shadow, host=host, port=port, store=store_path, workers=workers,
               poll_interval=poll_interval, max_rows=max_rows, shadow_log=shadow_log, shadow_wait=shadow_wait,
               prediction_log=prediction_log, log_inputs=log_inputs, max_request_bytes=max_request_bytes,
               token_file=token_file, log_share_interval=log_share_interval, access_log=access_log,
               log_level=log_level)
