"""The summary of a sweep: its record (a run of the shipped ``sweep`` template) and its table.

:func:`record_summary` records the sweep itself as a run of the ``sweep`` template, whose
run id is the sweep id that every run of the sweep names as its ``parent``; the template
shows :func:`summary_table`, one row per run, parameters by scraps.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from mlnb.parallel.plan import RunTask
from mlnb.parallel.worker import _is_scalar, execute_task

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.params import Template
    from mlnb.parallel.backends import Backend
    from mlnb.parallel.running import SweepResult

#: The shipped template that records a sweep's summary.
SUMMARY_TEMPLATE = "sweep.ipynb"


def summary_template() -> "Template":
    """The shipped ``sweep`` template (a project's own ``templates/`` cannot shadow it)."""
    from mlnb.execute import shipped_templates
    from mlnb.params import load_template

    return load_template(shipped_templates() / SUMMARY_TEMPLATE, name="sweep")


def summary_parameters(result: SweepResult) -> dict[str, Any]:
    """The parameters of the sweep's summary record (pure)."""
    plan = result.plan
    return {
        "template": plan.template.name,
        "template_sha256": plan.template.sha256,
        "grid": plan.grid,
        "fixed": plan.fixed,
        "rows": result.rows,
    }


def record_summary(result: SweepResult, backend: Backend) -> Any:
    """Record the sweep: a run of the ``sweep`` template whose id is the sweep id.

    The summary runs on the backend like any run (on a cluster, a worker with mlnb already
    imported commits it). Returns the summary's row (``run_id``, ``status``...).
    """
    plan = result.plan
    tpl = summary_template()
    task = RunTask(
        sweep_id=plan.sweep_id,
        index=-1,
        template=str(tpl.path),
        template_name=tpl.name,
        parameters=summary_parameters(result),
        store=plan.store.location,
        run_id=plan.sweep_id,
        tags={"sweep": plan.sweep_id, "role": "summary", "runs": len(result.rows), "failed": result.n_failed},
        paths_relative_to=str(tpl.path.parent),  # no value of the summary names a file
    )
    from mlnb.parallel import shipping

    with contextlib.ExitStack() as stack:
        if shipping.needed(plan.store, backend):  # the worker has its own mlnb, maybe elsewhere
            task = stack.enter_context(shipping.Shipper(plan.store, plan.sweep_id)).ship(task, tpl, task.parameters)
        for _, outcome in backend.map(execute_task, [task]):
            if isinstance(outcome, BaseException):
                raise outcome
            result.summary_run = outcome
    return result.summary_run



def scrap_columns(rows: list[dict]) -> list[str]:
    """Scrap names over all rows, in first-seen order."""
    return list(dict.fromkeys(name for row in rows for name in row.get("scraps") or {}))


def _cell(value: Any) -> Any:
    return value if _is_scalar(value) else json.dumps(value, sort_keys=True)


def summary_table(rows: list[dict]) -> "pd.DataFrame":
    """The sweep's table: one row per run, parameters × scraps (pure; used by the template).

    Columns: ``point`` (1-based), ``run_id``, ``status``, one column per varying
    parameter, one per scrap (``scrap.<name>``), ``error``. Lists and dicts become JSON
    text so the table stores as Parquet.
    """
    import pandas as pd

    params = list(dict.fromkeys(name for row in rows for name in row.get("parameters") or {}))
    scraps = scrap_columns(rows)
    records = []
    for row in sorted(rows, key=lambda r: r["index"]):
        item = {"point": row["index"] + 1, "run_id": row.get("run_id"), "status": row["status"]}
        for name in params:
            item[name] = _cell(row["parameters"].get(name))
        for name in scraps:
            item[f"scrap.{name}"] = _cell((row.get("scraps") or {}).get(name))
        item["error"] = row.get("error")
        records.append(item)
    columns = ["point", "run_id", "status", *params, *(f"scrap.{n}" for n in scraps), "error"]
    for column in columns:
        if len({_kind(r[column]) for r in records if r[column] is not None}) > 1:
            # e.g. a scrap that is a number in one run and text in another: Parquet needs one type
            for r in records:
                r[column] = None if r[column] is None else str(r[column])
    return pd.DataFrame(records, columns=columns)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__
