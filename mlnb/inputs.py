"""A run's inputs, checked before the kernel starts.

:func:`prepare_parameters` gives every parameter of a template its final value (the user's
overrides with relative paths made absolute, the project's ``mlnb.yaml`` values, the
template's defaults) and checks each declared input by its kind (:data:`INPUT_KINDS`): a
table is readable, a model resolves in the registry, a target or a column is in the data,
and the bundled example's defaults are not mixed into the user's run. A bad input is refused
here, naming the parameter, before anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlnb import params as params_mod
from mlnb.exceptions import TemplateError
from mlnb.params import Template
from mlnb.store import LocalStore, Store, as_store

#: Input kinds whose values are paths: relative ones given by the user are taken from where
#: mlnb runs, never from the template's directory.
PATH_KINDS = ("table", "schema", "file")


#: Endings of text that is meant as a file (``-p data ../x.csv``) even where a template does
#: not declare the parameter an input.
FILE_SUFFIXES = (".csv", ".parquet", ".pq", ".yaml", ".yml", ".json", ".jsonl")


def exists(path: Path) -> bool:
    """Whether ``path`` exists; text that cannot be a file name (longer than the system
    allows, a NUL byte) names nothing, so a long string parameter is just a string."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def is_file(path: Path) -> bool:
    """Whether ``path`` is a file, as :func:`exists` (never raises)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _meant_as_path(value: str) -> bool:
    """Text written as a relative path (``./x``, ``../x``) or ending like a data file."""
    return value.startswith(("./", "../")) or (value.lower().endswith(FILE_SUFFIXES) and "\n" not in value)


def _absolute_paths(values: dict[str, Any], base: Path, template: Template | None = None) -> dict[str, Any]:
    """Turn relative paths given by the user into absolute ones from ``base`` (the kernel
    runs in the template's directory): every declared path input, any other text that
    names an existing file, and text written as a path (:func:`_meant_as_path`), which must
    then exist: it is never looked up next to the template instead.

    Raises:
        ParameterError: a value written as a path that does not exist under ``base``.
    """
    from mlnb.exceptions import ParameterError

    declared = _kinds(template) if template is not None else {}
    out = {}
    for name, value in values.items():
        if isinstance(value, str) and value and not os.path.isabs(value) and len(value) < 4096:
            if declared.get(name) in PATH_KINDS or exists(base / value):
                value = str((base / value).resolve())
            elif declared.get(name) is None and name not in INJECTED_PATHS and _meant_as_path(value):
                shown = value if len(value) <= 80 else value[:60] + "…" + value[-17:]
                raise ParameterError(
                    f"parameter {name!r}: {shown!r} does not exist in {str(base)!r}; relative paths given "
                    "with -p or -f are taken from where mlnb runs", name)
        out[name] = value
    return out


#: Parameters that hold where a run writes, not what it reads.
INJECTED_PATHS = ("artifacts_dir",)


def _kinds(template: Template) -> dict[str, str]:
    """The template's declared inputs as ``{name: kind}`` (a plain list means ``file``)."""
    declared = template.inputs
    return dict(declared) if isinstance(declared, dict) else dict.fromkeys(declared, "file")


#: How a template's declared inputs (notebook metadata ``mlnb.inputs``) are checked before
#: anything runs: ``table`` must be readable CSV/Parquet, ``schema`` a valid validation
#: schema, ``file`` an existing file, ``model`` a model URI that resolves in the run's
#: registry (``model_name`` also a bare registered name, read as ``NAME@production``),
#: ``shadow_log`` a shadow log file or a served model's name that has one,
#: ``target`` a column of the template's first table (None only on the bundled example),
#: ``columns`` a list of columns each in one of the template's tables. A list of names means
#: ``file`` for each.
INPUT_KINDS = ("table", "schema", "file", "model", "model_name", "shadow_log", "target", "columns")


def prepare_parameters(
    template: Template,
    overrides: dict[str, Any],
    base: str | os.PathLike,
    store: Store | str | os.PathLike | None = None,
    config: Any = None,
) -> dict[str, Any]:
    """Every parameter's final value for a run, checked: what a run starts with.

    Relative paths in ``overrides`` are taken from ``base``; names, types and declared
    inputs are checked. A template with a ``store`` parameter gets the run's store; with a
    project ``config`` (:class:`mlnb.config.Config`), the parameters the template maps to
    ``mlnb.yaml`` keys (notebook metadata ``mlnb.config``) default to the project's values.

    Raises:
        ParameterError, DataError, SchemaDefinitionError, ModelNotFound: before anything runs.
    """
    own = _absolute_paths(dict(overrides), Path(base), template)
    given = dict(own)
    if config is not None:
        defaults = project_defaults(template, config)
        for group in template.overrides:
            # the user chose one of a group (a reference instead of the project's schema): the
            # project's values for the others give way
            if any(member in own for member in group):
                for member in group:
                    defaults.pop(member, None)
        given = {**defaults, **own}
    final = params_mod.resolve(template, given)
    for first, *others in template.overrides:
        # a given `schema` makes `reference` moot: not the example's default, nothing
        if given.get(first) is not None:
            final.update({o: None for o in others if o not in given})
    _check_example_defaults(template, own, final)
    if "store" in template.parameters and "store" not in given and store is not None:
        # a template that reads the store (the registry, earlier runs) reads this run's store
        # (a team store by its URL: the kernel's own Store() reaches it, not this host's cache)
        opened = as_store(store)
        final["store"] = str(opened.path.resolve()) if isinstance(opened, LocalStore) else opened.location
    _check_inputs(template, final)
    return final


def project_defaults(template: Template, config: Any) -> dict[str, Any]:
    """The values ``mlnb.yaml`` gives the parameters a template maps to its keys.

    A template's notebook metadata ``mlnb.config`` maps parameter names to config keys
    (``{"slack": "validation.slack"}``); keys whose value is null in the config are left to
    the template's defaults.
    """
    out = {}
    for name, key in template.config_keys.items():
        value = config.value(key)
        if value is not None and name in template.parameters:
            out[name] = value
    return out


def _check_inputs(template: Template, final: dict[str, Any]) -> None:
    """Refuse a missing or unreadable declared input before a run is started (exit 2)."""
    from mlnb.exceptions import DataError, ModelNotFound, RegistryError, SchemaDefinitionError

    kinds = _kinds(template)
    for name, kind in kinds.items():
        if kind not in INPUT_KINDS:
            raise TemplateError(
                f"template {template.name!r} declares input {name!r} of kind {kind!r}; "
                f"allowed kinds: {', '.join(INPUT_KINDS)}"
            )
        value = final.get(name)
        if kind in ("model", "model_name"):
            if kind == "model_name" and isinstance(value, str) and "@" not in value and "/" not in value:
                value = f"{value}@production"
            _check_model(template, name, value, final, kinds)
            continue
        if kind == "shadow_log":
            _check_shadow_log(template, name, value, final, kinds)
            continue
        if kind == "target":
            _check_target(template, name, value, final, kinds)
            continue
        if kind == "columns":
            _check_columns(template, name, value, final, kinds)
            continue
        if not isinstance(value, str) or not value:
            continue
        path = _path(template, value)
        default = template.parameters[name].default if name in template.parameters else None
        if value == default and not exists(path):
            from mlnb.exceptions import ParameterError

            raise ParameterError(f"parameter {name!r} is required here: its default {default!r} (the bundled "
                                 f"example's) does not exist next to this template; give {name}", name)
        try:
            if kind == "table":
                from mlnb.data import probe_table

                probe_table(path)
            elif kind == "schema":
                from mlnb.validation import load_schema

                load_schema(path)
            elif not path.is_file():
                raise DataError(f"cannot read {str(path)!r}: no such file")
        except (DataError, SchemaDefinitionError, ModelNotFound, RegistryError) as exc:
            raise type(exc)(f"parameter {name!r}: {exc}") from exc
        except (OSError, ValueError) as exc:  # a name longer than the system allows, a NUL byte
            shown = value if len(value) <= 80 else value[:77] + "..."
            raise DataError(f"parameter {name!r}: cannot read {shown!r}: "
                            f"{getattr(exc, 'strerror', None) or exc}") from exc


def _check_model(template: Template, name: str, value: Any, final: dict[str, Any], kinds: dict) -> None:
    """A model parameter resolves in the run's registry, or is None in an explicit demo."""
    from mlnb.demo import check_allowed
    from mlnb.exceptions import ModelNotFound, RegistryError
    from mlnb.registry import Registry

    with Registry(final.get("store")) as registry:  # None: the default store, local or team
        try:
            if value is not None:
                version = registry.get(value)
                _check_model_columns(template, name, version, final, kinds)
                return
            tables = [final[n] for n, k in kinds.items() if k == "table" and isinstance(final.get(n), str)]
            check_allowed(final.get("demo"), [_path(template, t) for t in tables], name, registry.describe_models())
        except (ModelNotFound, RegistryError) as exc:
            raise type(exc)(f"parameter {name!r}: {exc}") from exc


def _check_model_columns(template: Template, name: str, version: Any, final: dict[str, Any], kinds: dict) -> None:
    """The table a model scores holds the version's features (and, to evaluate, its target)."""
    from mlnb.data import table_columns
    from mlnb.exceptions import DataError

    table = next((n for n, k in kinds.items() if k == "table" and isinstance(final.get(n), str)), None)
    if table is None or not _path(template, final[table]).is_file():
        return
    columns = table_columns(_path(template, final[table]))
    needed = list(version.features)
    if "target" in template.parameters and kinds.get("target") is None:
        needed.append(final.get("target") or version.target)
    missing = [c for c in needed if c and c not in columns]
    if missing:
        raise DataError(f"parameter {table!r}: {final[table]!r} lacks column(s) {', '.join(map(repr, missing))} "
                        f"of model {version.uri} ({name} {final[name]!r}); it has: {', '.join(columns)}")


def _check_shadow_log(template: Template, name: str, value: Any, final: dict[str, Any], kinds: dict) -> None:
    """A shadow log parameter names a log that exists, or is None in an explicit demo."""
    from mlnb.exceptions import DataError, ParameterError

    if value is None:
        if final.get("demo") is not True:
            raise ParameterError(f"parameter {name!r} is required: a shadow log (.jsonl) or a served model's name", name)
        given = [n for n, k in kinds.items() if k == "table" and final.get(n) is not None]
        if given:
            raise ParameterError(
                f"parameter {name!r} is not given: demo mode replays the bundled example and takes no "
                f"{', '.join(map(repr, given))}; give the shadow log these belong to", name,
            )
        return
    from mlnb.shadow import resolve_log

    try:
        resolve_log(value, final.get("store") or Store())
    except DataError as exc:
        raise DataError(f"parameter {name!r}: {exc}") from exc


def _check_columns(template: Template, name: str, value: Any, final: dict[str, Any], kinds: dict) -> None:
    """Every column a ``columns`` parameter names is in one of the template's tables."""
    from mlnb.data import TABLE_FORMATS, table_columns
    from mlnb.exceptions import DataError

    if not isinstance(value, list):
        return  # None, "auto": the template resolves them from the data
    known: list[str] = []
    for other, kind in kinds.items():
        table = final.get(other)
        if kind in ("table", "file") and isinstance(table, str) and Path(table).suffix.lower() in TABLE_FORMATS:
            path = _path(template, table)
            if path.is_file():
                known += [c for c in table_columns(path) if c not in known]
    unknown = [c for c in value if c not in known]
    if known and unknown:
        raise DataError(f"parameter {name!r}: {', '.join(map(repr, map(str, unknown)))} in none of the tables; "
                        f"columns: {', '.join(known)}")


def _check_target(template: Template, name: str, value: Any, final: dict[str, Any], kinds: dict) -> None:
    """A target parameter names a column of the first table, or is None on the example."""
    from mlnb.data import table_columns
    from mlnb.demo import example_target
    from mlnb.exceptions import DataError

    table = next((final[n] for n, k in kinds.items() if k == "table" and isinstance(final.get(n), str)), None)
    if table is None:
        return
    path = _path(template, table)
    if value is None:
        example_target(name, path)  # the example's label, or "required" naming the columns
        return
    columns = table_columns(path)
    if value not in columns:
        raise DataError(f"parameter {name!r}: {value!r} is not a column of {str(path)!r}; columns: {', '.join(columns)}")


def _path(template: Template, value: str) -> Path:
    return Path(value) if os.path.isabs(value) else template.path.parent / value


def _check_example_defaults(template: Template, given: dict[str, Any], final: dict[str, Any]) -> None:
    """Refuse a run that mixes the user's inputs with inputs left at the example's defaults.

    A template's default inputs point at the bundled example, so that it runs in JupyterLab
    as it is. Once a declared input is the user's own data, another declared input left at
    its default would silently bring the example into the user's run (validating a user's
    batch against the weather reference, say): that is refused, naming the parameter.
    """
    from mlnb.data import is_example
    from mlnb.exceptions import ParameterError

    kinds = _kinds(template)
    files = [n for n, k in kinds.items() if k in PATH_KINDS]
    own = [n for n in files if n in given and isinstance(final.get(n), str) and not is_example(_path(template, final[n]))]
    # a model or log of the user's is the user's input too: the example's data do not go with it
    own += [n for n, k in kinds.items() if k in ("model", "model_name", "shadow_log") and given.get(n) is not None]
    if not own:
        return
    for name in files:
        default = template.parameters[name].default if name in template.parameters else None
        if name not in given and default is not None and final.get(name) == default:
            key = template.config_keys.get(name)
            raise ParameterError(
                f"parameter {name!r} was left at its default {default!r}, the bundled example's, while "
                f"{', '.join(map(repr, own))} {'is' if len(own) == 1 else 'are'} yours; give {name}"
                + (f" (inside a project, mlnb.yaml's {key} gives it)" if key else ""),
                name,
            )
