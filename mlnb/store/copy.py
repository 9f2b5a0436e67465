"""Moving a store's runs and registry into another store, ids and digests kept (``mlnb store copy``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from mlnb.store.base import Store


@dataclass
class CopyReport:
    """What a copy did: runs copied, runs the target already had, model versions copied."""

    copied: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    versions: int = 0


def copy_store(source: Store, target: Store, on_run: Callable[[str], None] | None = None) -> CopyReport:
    """Copy every run of ``source`` that ``target`` lacks, then the registry.

    Each run is committed in ``target`` as any run is (staged, then made visible whole),
    with its id, files and record unchanged, so ``runs verify`` holds in the copy and its
    digests equal the source's. A copy interrupted half way can be started again: runs
    already there are skipped. Model versions keep their numbers (see
    :func:`mlnb.registry.transfer.copy_registry`). Whatever refuses the copy (the target's
    database, its registry, the signing key) refuses it before the first run is written.
    """
    from mlnb import ledger
    from mlnb.registry import Registry
    from mlnb.registry.transfer import check_copy, copy_registry

    report = CopyReport()
    source.sync_index()
    have = {item["id"] for item in target.list_runs(details=False)}
    ledger.configured_signer()  # a key that cannot sign: said now, not after the runs are in
    with Registry(source) as src, Registry(target) as dst:
        check_copy(src, dst)
    for run_id in source.run_ids():
        if run_id in have:
            report.present.append(run_id)
            continue
        target.import_run(source.get(run_id))
        report.copied.append(run_id)
        if on_run is not None:
            on_run(run_id)
    with Registry(source) as src, Registry(target) as dst:
        report.versions = copy_registry(src, dst)
    return report
