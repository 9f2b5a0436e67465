"""The plan of a sweep: the runs that a grid and a backfill expand to, each checked first.

:func:`plan_sweep` expands the cross product of ``--grid`` values (and, for a backfill, one
run per data file matched by ``--over``), parses every value against the template's
parameter types and checks every point exactly as :func:`mlnb.execute.run_template` would,
so a bad name or value stops the sweep before anything runs. Planning is pure: nothing runs
and nothing is written. The result is a :class:`SweepPlan` of picklable :class:`RunTask`.
"""

from __future__ import annotations

import glob as globlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from mlnb.exceptions import DataError, MlnbError, ParameterError
from mlnb.store import Store, new_run_id

if TYPE_CHECKING:
    from mlnb.params import Template
    from mlnb.parallel.shipping import Shipment

#: Parameters a backfill (``--over``) sets when ``--over-param`` is not given, in order.
OVER_PARAMS = ("data", "current")


@dataclass(frozen=True)
class RunTask:
    """One run of a sweep, as sent to a worker: everything is absolute and picklable."""

    sweep_id: str
    index: int
    template: str
    template_name: str
    parameters: dict[str, Any]
    store: str
    kernel_name: str | None = None
    timeout: float | None = None
    scraps: tuple[str, ...] | None = None
    run_id: str | None = None
    parent: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    paths_relative_to: str | None = None
    warm: bool = True  # take the kernel from the worker's pool of warm kernels
    #: the template and input files as content, for workers that share no file system with
    #: the client (:mod:`mlnb.parallel.shipping`); None: the worker reads the paths above
    shipment: "Shipment | None" = None


@dataclass
class SweepPlan:
    """A checked sweep: its id, the template, and one task per run in grid order.

    Attributes:
        varying: the parameters that differ between runs (grid names, then the backfill
            parameter), the columns of the summary table.
        grid: every varying parameter's values, in order.
        fixed: the ``-p`` values common to every run.
        resolved: every task's final parameters as this host sees them (defaults included,
            paths absolute), in task order: what a worker without this host's files is sent.
    """

    sweep_id: str
    template: "Template"
    store: Store
    tasks: list[RunTask]
    varying: list[str]
    grid: dict[str, list[Any]]
    fixed: dict[str, Any]
    resolved: list[dict[str, Any]] = field(default_factory=list)


def split_values(text: str) -> list[str]:
    """Split ``V1,V2,...`` on top-level commas: brackets, braces and quotes protect commas.

    ``1,2`` → ``["1", "2"]``; ``[1,2],[3]`` → ``["[1,2]", "[3]"]``; ``"a,b",c`` →
    ``['"a,b"', "c"]``. Surrounding spaces are dropped.

    Raises:
        ParameterError: unbalanced brackets or quotes.
    """
    items, depth, quote, start, escaped = [], 0, None, 0, False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth < 0:
                raise ParameterError(f"unbalanced {ch!r} in {text!r}")
        elif ch == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    if quote or depth:
        raise ParameterError(f"unbalanced {'quote' if quote else 'bracket'} in {text!r}")
    items.append(text[start:].strip())
    return items


def parse_grid(spec: str, template: "Template") -> tuple[str, list[Any]]:
    """Parse one ``--grid NAME=V1,V2,...`` against the template's parameter types.

    Values are parsed like ``-p`` values (:func:`mlnb.params.parse_cli_value`); a ``str``
    parameter takes each item as text, and a double-quoted item as the JSON string inside
    (so ``name="a,b",c`` gives ``a,b`` and ``c``).

    Raises:
        ParameterError: no ``=``, an empty value list, or an empty value.
    """
    from mlnb.params import parse_cli_value

    name, sep, rest = spec.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ParameterError(f"`grid` {spec!r} must be NAME=V1,V2,... (for example seed=1,2,3)", parameters=("grid",))
    items = split_values(rest)
    if not any(items):
        raise ParameterError(f"`grid` {spec!r} gives no values; write {name}=V1,V2,...", name, ("grid",))
    if any(item == "" for item in items):
        raise ParameterError(f"`grid` {spec!r} has an empty value (two commas in a row?)", name, ("grid",))
    param = template.parameters.get(name)
    values = []
    for item in items:
        if param is not None and param.type == "str" and len(item) >= 2 and item[0] == item[-1] == '"':
            try:
                values.append(json.loads(item))
                continue
            except ValueError:
                pass
        values.append(parse_cli_value(item, param))
    return name, values


def backfill_files(pattern: str, base: str | os.PathLike | None = None) -> list[str]:
    """The files a ``--over`` glob matches (``**`` recurses), absolute and sorted.

    Raises:
        DataError: the pattern matches no file.
    """
    base = Path(base or Path.cwd())
    full = pattern if os.path.isabs(os.path.expanduser(pattern)) else str(base / pattern)
    matches = sorted(
        str(Path(p).resolve()) for p in globlib.glob(os.path.expanduser(full), recursive=True) if os.path.isfile(p)
    )
    if not matches:
        raise DataError(f"`over` {pattern!r} matches no file (relative to {str(base)!r})", parameters=("over",))
    return matches


def over_parameter(template: "Template", name: str | None) -> str:
    """The parameter a backfill sets: ``name``, else the template's ``data`` or ``current``.

    Raises:
        ParameterError: the template has no such parameter.
    """
    if name is not None:
        if name not in template.parameters:
            valid = ", ".join(template.parameters) or "none"
            raise ParameterError(
                f"`over_param` {name!r} is not a parameter of template {template.name!r}; valid: {valid}", name,
                ("over_param",),
            )
        return name
    for candidate in OVER_PARAMS:
        if candidate in template.parameters:
            return candidate
    raise ParameterError(
        f"template {template.name!r} has no 'data' or 'current' parameter; "
        "name the parameter that takes each file with `over_param`", parameters=("over_param",)
    )


def plan_sweep(
    template: "Template",
    store: Store,
    *,
    grid: Iterable[str] = (),
    fixed: dict[str, Any] | None = None,
    over: str | None = None,
    over_param: str | None = None,
    kernel_name: str | None = None,
    timeout: float | None = None,
    scraps: Iterable[str] | None = None,
    paths_relative_to: str | os.PathLike | None = None,
    cold: bool = False,
) -> SweepPlan:
    """Expand and check a sweep; nothing runs and nothing is written.

    Every point's parameters go through the same checks as a single run (names, types,
    JSON values, declared inputs readable), so a sweep either starts whole or not at all.

    Args:
        template: the loaded template.
        store: where the runs will be recorded (made absolute for the workers).
        grid: ``NAME=V1,V2,...`` specs; the sweep runs their cross product.
        fixed: values common to every run (``-p``), already parsed.
        over: a glob of data files; one run per file (crossed with the grid).
        over_param: the parameter that takes each file (default ``data``, else ``current``).
        kernel_name, timeout: as for :func:`mlnb.execute.run_template`.
        scraps: the scraps each run reports back for the summary (default: every scalar).
        paths_relative_to: base of relative paths in values (default: the working directory).
        cold: every run's kernel starts from nothing (else each worker keeps one warm kernel ahead).

    Raises:
        ParameterError, DataError, SchemaDefinitionError: a bad spec or a bad point.
    """
    from mlnb.execute import prepare_parameters

    base = Path(paths_relative_to or Path.cwd()).resolve()
    fixed = dict(fixed or {})
    axes: dict[str, list[Any]] = {}
    for spec in grid:
        name, values = parse_grid(spec, template)
        if name in axes:
            raise ParameterError(f"`grid` {name!r} is given twice; list every value in one `grid`", name, ("grid",))
        if name in fixed:
            raise ParameterError(f"parameter {name!r} is given by both `grid` and the fixed values (-p); keep one", name,
                                 ("grid",))
        axes[name] = values
    if over is not None:
        name = over_parameter(template, over_param)
        if name in axes or name in fixed:
            raise ParameterError(f"parameter {name!r} is set by `over` and by `grid` or the fixed values (-p); keep one",
                                 name, ("over", "grid"))
        axes[name] = list(backfill_files(over, base))
    elif over_param is not None:
        raise ParameterError("`over_param` needs `over` (a glob of files)", parameters=("over_param", "over"))

    sweep_id = new_run_id("sweep")
    store_path = store.location
    tasks, resolved = [], []
    for index, combo in enumerate(itertools.product(*axes.values())):
        overrides = {**fixed, **dict(zip(axes, combo))}
        try:
            final = prepare_parameters(template, overrides, base, store)  # refuse a bad point before any runs
        except MlnbError as exc:
            point = ", ".join(f"{k}={json.dumps(v)}" for k, v in zip(axes, combo))
            raise type(exc)(f"{exc} (sweep point {index + 1}: {point or 'defaults'})") from exc
        resolved.append(final)
        tasks.append(RunTask(
            sweep_id=sweep_id,
            index=index,
            template=str(template.path),
            template_name=template.name,
            parameters=overrides,
            store=store_path,
            kernel_name=kernel_name,
            timeout=timeout,
            scraps=tuple(scraps) if scraps else None,
            parent=sweep_id,
            tags={"sweep": sweep_id, "point": index},
            paths_relative_to=str(base),
            warm=not cold,
        ))
    return SweepPlan(
        sweep_id=sweep_id, template=template, store=store, tasks=tasks,
        varying=list(axes), grid=axes, fixed=fixed, resolved=resolved,
    )
