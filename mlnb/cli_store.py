"""``mlnb store``: create a store's tables, copy a store into another, remove what dead writers left.

Only click is imported at module level; the store loads inside each command.
"""

from __future__ import annotations

import re
import sys

import click

from mlnb.cli_common import EXIT_FAILED, MlnbCommand, open_store, store_option
from mlnb.exceptions import MlnbError

STORE_EPILOG = """\b
Examples:
  MLNB_STORE=s3://ml-runs/weather MLNB_DATABASE=postgresql://mlnb@db/mlnb mlnb store init
  mlnb store copy runs/ s3://ml-runs/weather     every run (ids and digests kept) and the registry
  mlnb store gc --older-than 1d                  staging left by writers that died

\b
Exit codes:
  0    done
  1    verify found a changed run
  2    bad usage or input: an unreachable or uninitialised store, a bad age
"""

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class AgeError(MlnbError, ValueError):
    """An ``--older-than`` that is not a number with a unit."""


def parse_age(text: str) -> float:
    """``90s``, ``15m``, ``6h``, ``2d`` in seconds."""
    m = _AGE.match(text.strip())
    if not m:
        raise AgeError(f"--older-than {text!r} is not an age; give a number and a unit: 90s, 15m, 6h or 2d")
    return float(m.group(1)) * _SECONDS[m.group(2)]


@click.group(epilog=STORE_EPILOG)
def store():
    """Create, copy, verify and clean a run store (local or team)."""


@store.command("init", cls=MlnbCommand)
@store_option
def store_init(store_path):
    """Create the store's index and registry tables where they are missing (a team store's
    database needs this once; a local store makes its own on first write)."""
    target = open_store(store_path)
    target.init()
    click.echo(f"store {target.location}: ready (database {target.database.name})")


@store.command("copy", cls=MlnbCommand)
@click.argument("source")
@click.argument("target")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary.")
def store_copy(source, target, quiet):
    """Copy every run of SOURCE that TARGET lacks, then the registry, ids and digests kept."""
    from mlnb.store.copy import copy_store

    src, dst = open_store(source), open_store(target)
    report = copy_store(src, dst, on_run=None if quiet else (lambda run_id: click.echo(f"copied {run_id}")))
    click.echo(f"{len(report.copied)} runs copied, {len(report.present)} already there, "
               f"{report.versions} model versions copied into {dst.location}")


@store.command("verify", cls=MlnbCommand)
@store_option
def store_verify(store_path):
    """Recompute every run's hashes from where its files are; exit 1 if anything changed."""
    target = open_store(store_path)
    ids = target.run_ids()
    problems = target.verify()
    for p in problems:
        click.echo(f"CHANGED {p}")
    bad = len({p.run_id for p in problems})
    click.echo(f"{len(ids)} runs checked, {len(ids) - bad} intact, {bad} changed")
    if problems:
        sys.exit(EXIT_FAILED)


@store.command("gc", cls=MlnbCommand)
@click.option("--older-than", "older_than", default="1d", show_default=True, metavar="AGE",
              help="Only what was left longer ago than this (90s, 15m, 6h, 2d).")
@store_option
def store_gc(older_than, store_path):
    """Remove staged files and unfinished commits that writers which died left behind."""
    age = parse_age(older_than)
    target = open_store(store_path)
    removed = target.gc(age)
    for item in removed:
        click.echo(f"removed {item}")
    click.echo(f"{len(removed)} left-overs removed from {target.location}")
