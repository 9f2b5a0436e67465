"""``mlnb store``: create a store's tables, copy a store into another, remove what dead writers left.

Only click is imported at module level; the store loads inside each command.
"""

from __future__ import annotations

import re
import sys

import click

from mlnb.cli_common import EXIT_FAILED, MlnbCommand, echo_json, open_store, printable, store_option
from mlnb.exceptions import MlnbError

STORE_EPILOG = """\b
Examples:
  MLNB_STORE=s3://ml-runs/weather MLNB_DATABASE=postgresql://mlnb@db/mlnb mlnb store init
  mlnb store copy runs/ s3://ml-runs/weather     every run (ids and digests kept) and the registry
  mlnb store gc --older-than 1d                  staging left by writers that died
  mlnb store head                                the ledger's head (COUNT:HASH), to keep elsewhere
  mlnb store verify --since 1234:9f86...         everything, and proof the store only grew since
  mlnb store keygen keys/mlnb.pem                a key pair for MLNB_SIGNING_KEY / --public-key

\b
Exit codes:
  0    done
  1    verify found a problem (each is a line)
  2    bad usage or input: an unreachable or uninitialised store, a bad age, a head or key that is not one
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


def verify_options(command):
    """``--since HEAD``, ``--public-key FILE`` and ``--repair`` of both verify commands."""
    command = click.option("--repair", is_flag=True,
                           help="Rebuild the index from the records where a row disagrees with its record.")(command)
    command = click.option("--public-key", "public_key", type=click.Path(dir_okay=False), default=None,
                           metavar="FILE", help="Check that every ledger entry is signed by this ed25519 public "
                                                "key (PEM, from 'mlnb store keygen').")(command)
    return click.option("--since", "since", default=None, metavar="HEAD",
                        help="A head printed earlier by 'mlnb store head': prove the store only grew since.")(command)


def run_verify(target, run_id: str | None, registry: bool, since: str | None, public_key: str | None,
               repair: bool) -> None:
    """Verify ``target`` against its ledger, print one line per problem and a summary; exit 1
    when anything does not hold."""
    from mlnb import audit, ledger

    head = ledger.Head.parse(since) if since is not None else None
    key = ledger.PublicKey(public_key) if public_key is not None else None
    full = target.resolve_id(run_id) if run_id else None
    report = audit.verify_store(target, run_id=full, registry=registry, since=head, public_key=key, repair=repair)
    for p in report.problems:
        click.echo(printable(f"{p.kind.upper()} {p}"))
    for p in report.repaired:
        click.echo(printable(f"REPAIRED {p}"))
    bad = len({p.run_id for p in report.problems} & set(report.checked))
    click.echo(f"{len(report.checked)} runs checked, {len(report.checked) - bad} intact, {bad} changed")
    click.echo(_ledger_line(report, key))
    if report.problems:
        click.echo(f"{len(report.problems)} problems found")
        sys.exit(EXIT_FAILED)


def _ledger_line(report, key) -> str:
    if report.head.count == 0:
        return ("ledger: none yet (the store was written before mlnb kept one); the next change, or "
                "'mlnb store init', starts it over the runs there")
    line = f"ledger: {report.head.count} entries, head {report.head}"
    if report.started:
        nouns = {"run": "runs", "version": "versions", "tag": "tags", "alias": "alias moves"}
        adopted = ", ".join(f"{nouns.get(kind, kind)}: {n}" for kind, n in sorted(report.started.get("adopted", {}).items()))
        line += f"; it started over what the store held then ({adopted}): entries prove nothing before that"
    if key is not None:
        line += f"; {report.signed} signatures checked against {key.fingerprint}"
    return line


@store.command("verify", cls=MlnbCommand)
@verify_options
@store_option
def store_verify(since, public_key, repair, store_path):
    """Check everything: the ledger's chain, every run's hashes from where its files are, the
    index and the registry against the ledger, and links between runs; exit 1 if anything
    does not hold."""
    run_verify(open_store(store_path), None, True, since, public_key, repair)


@store.command("head", cls=MlnbCommand)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: count, hash, key.")
@store_option
def store_head(as_json, store_path):
    """Print the ledger's head (COUNT:HASH): keep it elsewhere (a CI log, a ticket), and later
    'mlnb store verify --since COUNT:HASH' proves the store only grew since."""
    from mlnb import ledger

    head = ledger.current_head(open_store(store_path))
    if as_json:
        echo_json({"count": head.count, "hash": head.hash, "head": str(head)})
    else:
        click.echo(str(head))


@store.command("keygen", cls=MlnbCommand)
@click.argument("path", type=click.Path(dir_okay=False))
def store_keygen(path):
    """Make an ed25519 key pair for signing ledger entries: the private key at PATH (mode 600;
    point MLNB_SIGNING_KEY at it) and the public key beside it (.pub.pem; give it to
    'verify --public-key')."""
    from mlnb import ledger

    private, public, fp = ledger.keygen(path)
    click.echo(f"private key {private} (set MLNB_SIGNING_KEY={private})")
    click.echo(f"public key  {public} (verify --public-key {public})")
    click.echo(f"fingerprint {fp}")


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
