"""A backfill: every unseen batch of a glob, in order, each an ordinary pipeline run.

The batches share one pool of warm kernels. A batch an earlier pipeline run processed under
this configuration is left alone (as ``mlnb pipeline run`` skips it), so running the same
backfill twice processes nothing the second time; ``force`` processes every batch again.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mlnb import records
from mlnb.exceptions import DataError, Interrupted
from mlnb.pipeline.data import processed_batches
from mlnb.pipeline.decisions import OUTCOME_EXIT
from mlnb.store import Store

if TYPE_CHECKING:
    from mlnb.config import Config

#: Outcomes from the most to the least severe: a backfill exits with its worst batch's code.
SEVERITY = ("error", "rejected", "not_promoted", "promoted", "nothing_needed", "skipped")


@dataclass
class Backfill:
    """What a backfill did: ``done`` holds ``(batch, decision, record)`` in the order run;
    ``seen`` the batches left alone, processed before under this configuration."""

    batches: list[Path]
    seen: list[Path] = field(default_factory=list)
    done: list[tuple[Path, Any, Any]] = field(default_factory=list)

    @property
    def worst(self) -> str:
        """The most severe outcome (``skipped`` when no batch was processed)."""
        outcomes = {decision.outcome for _, decision, _ in self.done} or {"skipped"}
        return min(outcomes, key=SEVERITY.index)

    @property
    def exit_code(self) -> int:
        return OUTCOME_EXIT[self.worst]


def backfill_batches(pattern: str, config: Config, store: Store, force: bool = False) -> Backfill:
    """The batches a backfill of ``pattern`` (a glob, relative to the working directory)
    would process, in name order, and those it leaves alone.

    Raises:
        DataError: the pattern matches no file.
    """
    found = sorted(Path(p).resolve() for p in glob.glob(pattern, recursive=True))
    files = [p for p in found if p.is_file()]
    if not files:
        raise DataError(f"`backfill` {pattern!r} matches no file", parameters=("backfill",))
    plan = Backfill(batches=[])
    processed = processed_batches(store)
    config_sha = config.fingerprint()
    taken: set[str] = set()
    for path in files:
        sha = records.sha256_file(path)
        seen = any(r["config"] == config_sha for r in processed.get(sha, []))
        if sha in taken or (seen and not force):  # a copy of a batch in the glob is the same batch
            plan.seen.append(path)
        else:
            plan.batches.append(path)
        taken.add(sha)
    return plan


def run_backfill(
    config: Config,
    pattern: str,
    store: Store | None = None,
    *,
    force: bool = False,
    cold: bool = False,
    progress: bool = False,
    echo: Callable[..., None] | None = None,
    each: Callable[[Path, Any, Any], None] | None = None,
) -> Backfill:
    """Run the pipeline on every unseen batch matching ``pattern``, oldest name first.

    Args:
        progress: one progress bar across the batches, on stderr.
        echo: receives what each pipeline run says.
        each: called with ``(batch, decision, record)`` after each batch.

    Raises:
        DataError: the pattern matches no file (nothing is run).
        Interrupted: on Ctrl-C; every batch finished before it is recorded, the one running
            is recorded only if its steps wrote something (as ``mlnb pipeline run`` does).
    """
    from mlnb.kernels import KernelPool
    from mlnb.pipeline.run import run_pipeline

    store = store or Store(config.path(config.store))
    plan = backfill_batches(pattern, config, store, force)
    bar = None
    if progress and plan.batches:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan.batches), unit="batch", desc="backfill", leave=True)
    pool = KernelPool.for_config(config, cold=cold)
    try:
        for path in plan.batches:
            try:
                decision, record = run_pipeline(config, store, current=str(path), force=force,
                                                echo=echo, kernels=pool, cold=cold)
            except (Interrupted, KeyboardInterrupt) as exc:  # Ctrl-C before the batch's first step too
                said = f": {exc}" if str(exc) else "; nothing of it was written"
                raise Interrupted(f"backfill interrupted at batch {path.name} ({len(plan.done)} of "
                                  f"{len(plan.batches)} batches done and recorded){said}") from None
            plan.done.append((path, decision, record))
            if each:
                each(path, decision, record)
            if bar is not None:
                bar.set_postfix_str(f"{path.name}: {decision.outcome}")
                bar.update()
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.close()
    return plan
