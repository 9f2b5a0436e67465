"""Verifying a whole store against its ledger: ``mlnb runs verify`` and ``mlnb store verify``.

:func:`verify_store` reads the ledger's entries from the store and from the index's mirror,
every run's record and files, the runs index and (for ``store verify``) the registry, and
returns one :class:`~mlnb.records.Problem` per thing that does not hold. Its ``kind`` is the
word the CLI prints first:

- ``changed``: a file of a run changed, went missing or was added (:func:`mlnb.records.verify`);
- ``deleted``: the ledger records a run the store no longer has;
- ``replaced``: a run's record is not the one its ledger entry sealed;
- ``unledgered``: a run, version, tag or alias move that no ledger entry records;
- ``ledger``: an entry missing, changed, out of order or not following the one before;
  a head given with ``--since`` that the chain does not contain;
- ``signature``: with ``--public-key``, an entry not signed by that key;
- ``index``: an index row (or a mirror row) that disagrees with the store (``--repair``
  rebuilds the index from the records);
- ``registry``: a registry row that disagrees with its ledger entry, with the training
  run's own artifact hash, or with the alias history;
- ``link``: a parent, child or training-run link that points at no run.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from mlnb import ledger, records
from mlnb.database import decode_json
from mlnb.exceptions import RecordError
from mlnb.records import Problem
from mlnb.store.base import Store, index_values


@dataclass
class Report:
    """What :func:`verify_store` found.

    Attributes:
        problems: one per thing that does not hold, in the order found.
        checked: the ids of the runs checked.
        head: the chain's head as the store holds it.
        started: the ``start`` entry's change when the ledger began over runs already
            there (``{"adopted": {"run": 12, ...}}``), else None.
        repaired: index rows rewritten from the records (``repair=True``).
        signed: entries whose signature the given public key checked.
    """

    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    head: ledger.Head = ledger.EMPTY
    started: dict | None = None
    repaired: list[Problem] = field(default_factory=list)
    signed: int = 0

    def add(self, subject: str, where: str, what: str, kind: str) -> None:
        self.problems.append(Problem(subject, where, what, kind))


def verify_store(
    store: Store,
    *,
    run_id: str | None = None,
    registry: bool = True,
    since: ledger.Head | None = None,
    public_key: ledger.PublicKey | None = None,
    repair: bool = False,
) -> Report:
    """Check a store's ledger, runs, index and (``registry``) registry; return what does not hold.

    Args:
        run_id: check the files, entry, index row and links of this run only (the chain is
            checked whole still).
        since: an earlier head (``mlnb store head``): the chain must contain it at its position.
        public_key: every entry must be signed by this key.
        repair: rebuild the index from the records when a row disagrees; what that fixed is
            in ``Report.repaired``.
    """
    report = Report()
    if not store.read_only:
        store.sync_index()  # what a listing does first: a local index follows its run directories
    mirror = _mirror(store)
    entries = _check_chain(report, store.ledger_files(), mirror, public_key)
    if since is not None:
        _check_since(report, entries, since)
    stored = store.stored_run_ids()
    run_entries = {e["change"].get("id"): e for e in entries if e.get("kind") == "run"
                   and isinstance(e.get("change"), dict)}
    ids = [run_id] if run_id else stored
    report.checked = list(ids)
    recs = _check_runs(report, store, ids, run_entries, has_ledger=bool(entries or mirror), every=run_id is None)
    _check_links(report, recs, set(stored))
    index_problems = _check_index(store, recs, ids if run_id else None)
    if index_problems and repair:
        store.sync_index(force=True)
        still = set(_check_index(store, recs, ids if run_id else None))
        report.repaired = [p for p in index_problems if p not in still]
        index_problems = [p for p in index_problems if p in still]
    report.problems.extend(index_problems)
    if registry and run_id is None:
        _check_registry(report, store, entries, recs, set(stored))
    return report


# -- the chain --------------------------------------------------------------------------------


def _mirror(store: Store) -> dict[int, bytes]:
    if not store.has_database():
        return {}
    with contextlib.closing(store.connect()) as db:
        return {int(seq): entry.encode() for seq, entry in db.execute("SELECT seq, entry FROM ledger")}


def _check_chain(report: Report, files: dict[int, bytes], mirror: dict[int, bytes],
                 public_key: ledger.PublicKey | None) -> list[dict]:
    """The entries the store holds, in position order, each checked; the problems reported."""
    entries: list[dict] = []
    prev: str | None = ledger.GENESIS
    unsigned: list[int] = []
    for pos in range(1, max(files, default=0) + 1):
        where = f"entry {pos}"
        data = files.get(pos)
        if data is None or (entry := ledger.decode(data)) is None:
            if data is None:
                note = " (the index's mirror still has it)" if pos in mirror else ""
                report.add("ledger", where, f"missing from the store{note}: removed after it was written", "ledger")
            else:
                report.add("ledger", where, "is not a ledger entry (not JSON of mlnb.ledger/1)", "ledger")
            # the index's mirror says what the entry recorded: its change stays ledgered (the
            # damage is the line above, not a run added behind the store's back), and the
            # chain is checked on from its hash
            kept = ledger.decode(mirror[pos]) if pos in mirror else None
            if kept is not None and kept.get("seq") == pos:
                entries.append(kept)
            prev = kept.get("hash") if kept is not None else None
            continue
        if entry.get("seq") != pos:
            report.add("ledger", where, f"holds entry {entry.get('seq')}: entries out of order", "ledger")
        if entry.get("hash") != ledger.entry_hash(entry):
            report.add("ledger", where, f"{_about(entry)} changed after it was written (its hash does not match "
                                        "its content)", "ledger")
        elif entry.get("digest") != ledger.digest(entry.get("change")):
            report.add("ledger", where, f"{_about(entry)}: its change does not match its digest", "ledger")
        if prev is not None and entry.get("prev") != prev:
            report.add("ledger", where, f"does not follow entry {pos - 1}: the chain is broken (an entry was "
                                        "changed, removed or put in another place)", "ledger")
        prev = entry.get("hash")
        if public_key is not None:
            why = public_key.check(entry)
            if why == "not signed":
                unsigned.append(pos)
            elif why is not None:
                report.add("ledger", where, why, "signature")
            else:
                report.signed += 1
        if pos in mirror and mirror[pos] != data:
            report.add("ledger", where, "the index's mirror of it differs from the store's entry", "index")
        entries.append(entry)
        if entry.get("kind") == "start" and pos == 1:
            report.started = entry.get("change")
    for start, end in _ranges(unsigned):
        span = f"entry {start}" if start == end else f"entries {start}-{end}"
        report.add("ledger", span, "not signed", "signature")
    for pos in sorted(set(mirror) - set(files)):
        if pos > max(files, default=0):
            report.add("ledger", f"entry {pos}", "missing from the store (the index's mirror still has it): "
                                                 "removed after it was written", "ledger")
    if entries:
        report.head = ledger.Head(len(files) and max(files), entries[-1].get("hash", ""))
    return entries


def _about(entry: dict) -> str:
    return f"({entry.get('kind')} {entry.get('subject')})"


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def _check_since(report: Report, entries: list[dict], since: ledger.Head) -> None:
    if since.count == 0:
        return
    if since.count > len(entries):
        report.add("ledger", "head", f"the store holds {len(entries)} entries, fewer than the {since.count} of the "
                                     f"given head {str(since)[:20]}…: entries were removed", "ledger")
        return
    held = entries[since.count - 1]
    if held.get("hash") != since.hash or held.get("seq") != since.count:
        report.add("ledger", f"entry {since.count}", f"is not the given head's ({since.hash[:12]}…, the store has "
                                                     f"{str(held.get('hash'))[:12]}…): the ledger was rewritten "
                                                     "since that head, or the head is not this store's", "ledger")


# -- runs, their links and the index ----------------------------------------------------------


def _check_runs(report: Report, store: Store, ids: list[str], run_entries: dict[str, dict], *,
                has_ledger: bool, every: bool) -> dict[str, dict]:
    """Each run's files and record against its entry; the records read, by id."""
    recs: dict[str, dict] = {}
    present = set(ids)
    for rid in ids:
        entry = run_entries.get(rid)
        sealed = entry["change"].get("record") if entry is not None else None
        report.problems.extend(store.verify(rid, sealed=sealed if isinstance(sealed, str) else None))
        try:
            record = store.read_record(rid)
        except (RecordError, FileNotFoundError):
            continue
        if not isinstance(record, dict):
            continue
        recs[rid] = record
        if entry is None:
            if has_ledger:
                report.add(rid, "run", "not in the ledger: added behind the store's back", "unledgered")
        elif entry["change"].get("record") != record.get("digest"):
            report.add(rid, records.RECORD_FILE, f"replaced: its digest {str(record.get('digest'))[:12]}… is not the "
                                                 f"{str(entry['change'].get('record'))[:12]}… that ledger entry "
                                                 f"{entry.get('seq')} sealed", "replaced")
    if every:
        for rid, entry in sorted(run_entries.items(), key=lambda item: item[1].get("seq", 0)):
            if rid not in present:
                report.add(str(rid), "run", f"deleted: ledger entry {entry.get('seq')} records it, the store has no "
                                            "such run", "deleted")
    return recs


def links(record: dict) -> list[tuple[str, str]]:
    """The runs a record points at: ``(field, run id)`` for its parent and its children
    (a pipeline's ``decision.children``)."""
    out = []
    if isinstance(record.get("parent"), str):
        out.append(("parent", record["parent"]))
    for section in ("parameters", "scraps"):
        decision = (record.get(section) or {}).get("decision")
        children = decision.get("children") if isinstance(decision, dict) else None
        if isinstance(children, dict):
            out += [(f"{section}.decision.children.{step}", child) for step, child in sorted(children.items())
                    if isinstance(child, str)]
    return out


def _check_links(report: Report, recs: dict[str, dict], stored: set[str]) -> None:
    for rid, record in recs.items():
        for where, target in links(record):
            if target not in stored:
                report.add(rid, f"{records.RECORD_FILE}:{where}", f"points at run {target}, which is not in the store",
                           "link")


def _check_index(store: Store, recs: dict[str, dict], only: list[str] | None) -> list[Problem]:
    if not store.has_database():
        return []
    columns = ("id", "template", "status", "started", "finished", "duration_s", "parent", "parameters", "scraps",
               "tags", "digest")
    with contextlib.closing(store.connect()) as db:
        rows = {row[0]: dict(zip(columns, row)) for row in db.execute(f"SELECT {', '.join(columns)} FROM runs")}
    out = []
    for rid, record in sorted(recs.items()):
        row = rows.get(rid)
        if row is None:
            out.append(Problem(rid, "index", "the index has no row for this run", "index"))
            continue
        try:
            expected = index_values(record)
        except (KeyError, TypeError):
            continue  # a record without its fields: the record's own check names it
        for column in columns[1:]:
            value = decode_json(row[column]) if column in ("parameters", "scraps", "tags") else row[column]
            if value != expected[column]:
                out.append(Problem(rid, f"index:{column}", f"is {_short(value)}, the record says "
                                                           f"{_short(expected[column])}", "index"))
    for rid in sorted(set(rows) - set(recs)):
        if only is None:
            out.append(Problem(rid, "index", "the index lists a run the store does not have", "index"))
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


# -- the registry ---------------------------------------------------------------------------


def _check_registry(report: Report, store: Store, entries: list[dict], recs: dict[str, dict],
                    stored: set[str]) -> None:
    from mlnb.registry.entries import _EVENT_COLUMNS, _VERSION_COLUMNS, replay
    from mlnb.registry.entries import _event_from_row

    if not store.has_database():
        return
    with contextlib.closing(store.connect()) as db:
        if not db.has_table("model_versions"):
            return
        versions = [ledger.row_change(_VERSION_COLUMNS, r) for r in
                    db.execute(f"SELECT {_VERSION_COLUMNS} FROM model_versions ORDER BY name, version").fetchall()]
        tags = [ledger.row_change(ledger.TAG_COLUMNS, r) for r in db.execute(
            f"SELECT {ledger.TAG_COLUMNS} FROM model_tags ORDER BY {db.database.row_order}").fetchall()]
        event_rows = db.execute(f"SELECT {_EVENT_COLUMNS} FROM alias_events ORDER BY seq").fetchall()
        aliases = {(n, a): v for n, a, v in db.execute("SELECT name, alias, version FROM model_aliases")}
    by_kind: dict[str, list[dict]] = {"version": [], "tag": [], "alias": []}
    for entry in entries:
        if entry.get("kind") in by_kind and isinstance(entry.get("change"), dict):
            by_kind[entry["kind"]].append(entry)
    has_ledger = bool(entries)

    _match(report, "version", {f"{v['name']}/{v['version']}": v for v in versions},
           {e["subject"]: e for e in by_kind["version"]}, has_ledger, "version")
    events = [ledger.row_change(_EVENT_COLUMNS, r) for r in event_rows]
    _match(report, "alias move", {f"{e['name']}@{e['alias']} #{e['seq']}": e for e in events},
           {f"{e['subject']} #{e['change'].get('seq')}": e for e in by_kind["alias"]}, has_ledger, "move")
    _match(report, "tag", {f"{t['name']}/{t['version']} tag {t['key']} #{i + 1}": t for i, t in enumerate(tags)},
           {f"{e['subject']} tag {e['change'].get('key')} #{i + 1}": e for i, e in enumerate(by_kind["tag"])},
           has_ledger, "tag")

    for version in versions:
        uri = f"{version['name']}/{version['version']}"
        run_id = version["run_id"]
        record = recs.get(run_id)
        if record is None:
            if run_id not in stored:
                report.add(uri, "registry:run_id", f"points at run {run_id}, which is not in the store", "link")
            continue
        art = next((a for a in record.get("artifacts") or [] if a.get("path") == version["artifact"]), None)
        if art is None:
            report.add(uri, "registry:artifact", f"run {run_id} has no artifact {version['artifact']!r}", "registry")
        elif art.get("sha256") != version["sha256"]:
            report.add(uri, "registry:sha256", f"is {str(version['sha256'])[:12]}…, but run {run_id}'s record says "
                                               f"{str(art.get('sha256'))[:12]}… for {version['artifact']}", "registry")
    replayed = replay([_event_from_row(r) for r in event_rows])
    for key in sorted(set(replayed) | set(aliases)):
        if aliases.get(key) != replayed.get(key):
            report.add(f"{key[0]}@{key[1]}", "registry:alias", f"points at version {aliases.get(key)}, its history "
                                                               f"says {replayed.get(key)}", "registry")


def _match(report: Report, noun: str, rows: dict[str, dict], entries: dict[str, dict], has_ledger: bool,
           short: str) -> None:
    """Registry rows against the changes their entries recorded, by key."""
    for key, row in rows.items():
        entry = entries.get(key)
        if entry is None:
            if has_ledger:
                report.add(key.split(" ")[0], f"registry:{short}", f"{noun} {key} is not in the ledger: added behind "
                                                                   "the store's back", "unledgered")
            continue
        change = entry["change"]
        differ = sorted(c for c in set(row) | set(change) if row.get(c) != change.get(c))
        if differ:
            report.add(key.split(" ")[0], f"registry:{short}", f"{noun} {key} disagrees with its ledger entry "
                                                               f"{entry.get('seq')}: {', '.join(differ)}", "registry")
    for key in sorted(set(entries) - set(rows)):
        report.add(key.split(" ")[0], f"registry:{short}", f"ledger entry {entries[key].get('seq')} records {noun} "
                                                           f"{key}; the registry has no such {noun}", "registry")
