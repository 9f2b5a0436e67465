"""Template parameters: read them from the ``parameters`` cell, check values, inject safely.

mlnb reads a template's parameters itself (with :mod:`ast`, no kernel and no papermill
import), so a bad name or value is refused before anything runs. Values must be JSON data.
Injection goes through :class:`SafePythonTranslator`, which writes every value as a Python
literal with :func:`repr` and refuses names that are not identifiers: neither a name nor a
value can carry code into the kernel.
"""

from __future__ import annotations

import ast
import hashlib
import json
import keyword
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from mlnb.exceptions import ParameterError, TemplateError, TemplateNotFound
from mlnb.scraps import to_jsonable

#: Parameters mlnb sets on every run; templates declare them with a default for JupyterLab.
INJECTED = ("run_id", "artifacts_dir")

_TYPES = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


@dataclass(frozen=True)
class Parameter:
    """One parameter of a template: its name, default, type and help text.

    ``type`` is one of ``str int float bool list dict any``; ``optional`` says None is
    accepted (a default of None, or an ``Optional``/``| None`` annotation).
    """

    name: str
    default: Any
    type: str
    optional: bool = False
    help: str = ""

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional or self.type == "any"
        if self.type == "any":
            return True
        if isinstance(value, bool) and self.type != "bool":
            return False
        return isinstance(value, _TYPES[self.type])

    def describe(self) -> str:
        kind = self.type + (" or null" if self.optional and self.type != "any" else "")
        return f"{self.name} ({kind}, default {json.dumps(self.default)})"


@dataclass(frozen=True)
class Template:
    """A notebook template: where it is, its content hash and its parameters."""

    name: str
    path: Path
    sha256: str
    parameters: dict[str, Parameter] = field(default_factory=dict)
    kernel_name: str = "python3"
    inputs: tuple[str, ...] | dict[str, str] = ()
    #: parameter name -> ``mlnb.yaml`` key whose value is the parameter's default in a project
    config_keys: dict[str, str] = field(default_factory=dict)
    #: groups ``[first, other, ...]``: a given ``first`` sets the others to None (metadata
    #: ``mlnb.overrides``; a given ``schema`` makes ``reference`` moot)
    overrides: tuple[tuple[str, ...], ...] = ()

    def defaults(self) -> dict[str, Any]:
        return {name: p.default for name, p in self.parameters.items()}


def load_template(path: str | Path, name: str | None = None) -> Template:
    """Read a template notebook and its ``parameters`` cell.

    A template without a cell tagged ``parameters`` has no parameters. Notebook metadata
    ``mlnb.inputs`` declares the parameters that name inputs: a list of names, or a mapping
    of names to a kind (``table``, ``schema``, ``file``, ``model``) that mlnb checks before
    the run starts. ``mlnb.config`` maps parameters to ``mlnb.yaml`` keys whose values are
    their defaults when the template runs inside a project.

    Raises:
        TemplateNotFound: the path does not exist.
        TemplateError: the file is not notebook JSON, or the parameters cell is not simple
            literal assignments.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise TemplateNotFound(f"template {str(path)!r} does not exist") from exc
    except IsADirectoryError as exc:
        raise TemplateNotFound(f"template {str(path)!r} is a directory, not a notebook") from exc
    try:
        nb = json.loads(raw)
        cells = nb["cells"]
        if not isinstance(cells, list):
            raise TypeError("cells is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise TemplateError(
            f"template {str(path)!r} is not a Jupyter notebook (nbformat 4 JSON): {exc}"
        ) from exc
    metadata = nb.get("metadata") or {}
    kernel = (metadata.get("kernelspec") or {}).get("name") or "python3"
    declared = (metadata.get("mlnb") or {}).get("inputs") or ()
    declared_inputs = dict(declared) if isinstance(declared, dict) else tuple(declared)
    config_keys = (metadata.get("mlnb") or {}).get("config") or {}
    if not isinstance(config_keys, dict):
        raise TemplateError(f"template {str(path)!r}: metadata mlnb.config must map parameter names to mlnb.yaml keys")
    overrides = tuple(tuple(group) for group in (metadata.get("mlnb") or {}).get("overrides") or ())
    params: dict[str, Parameter] = {}
    for cell in cells:
        tags = (cell.get("metadata") or {}).get("tags") or []
        if cell.get("cell_type") == "code" and "parameters" in tags:
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            params = parse_parameters(source, where=str(path))
            break
    return Template(
        name=name or path.stem,
        path=path.resolve(),
        sha256=hashlib.sha256(raw).hexdigest(),
        parameters=params,
        kernel_name=kernel,
        inputs=declared_inputs,
        config_keys=dict(config_keys),
        overrides=overrides,
    )


def parse_parameters(source: str, where: str = "parameters cell") -> dict[str, Parameter]:
    """Parse a parameters cell: ``name = literal  # help`` or ``name: type = literal``.

    Raises:
        TemplateError: a statement that is not an assignment of a literal to a name.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise TemplateError(f"{where}: parameters cell line {exc.lineno}: {exc.msg}") from exc
    lines = source.splitlines()
    params: dict[str, Parameter] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, annotation = node.targets[0], None
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, annotation = node.target, node.annotation
        else:
            raise TemplateError(
                f"{where}: parameters cell line {node.lineno}: only 'name = literal' "
                "assignments are allowed"
            )
        if not isinstance(target, ast.Name):
            raise TemplateError(
                f"{where}: parameters cell line {node.lineno}: assign to a plain name"
            )
        try:
            default = ast.literal_eval(node.value)
        except ValueError as exc:
            raise TemplateError(
                f"{where}: parameter {target.id!r} has a default that is not a literal "
                f"(line {node.lineno}); use JSON-like values"
            ) from exc
        ptype, optional = _annotated_type(annotation) if annotation is not None else (None, False)
        if ptype is None:
            ptype = _type_of(default)
        help_text = ""
        line = lines[node.end_lineno - 1] if node.end_lineno else ""
        if "#" in line[node.end_col_offset or 0 :]:
            help_text = line[node.end_col_offset :].split("#", 1)[1].strip()
        params[target.id] = Parameter(
            name=target.id,
            default=default,
            type=ptype,
            optional=optional or default is None,
            help=help_text,
        )
    return params


def _type_of(value: Any) -> str:
    if value is None:
        return "any"
    for name in ("bool", "int", "float", "str", "list", "dict"):
        if type(value) is _TYPES[name][-1]:
            return name
    if isinstance(value, tuple):
        return "list"
    return "any"


def _annotated_type(node: ast.expr) -> tuple[str | None, bool]:
    """Map an annotation to (type, optional): ``int``, ``Optional[str]``, ``str | None``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return None, False
    if isinstance(node, ast.Name):
        return (node.id if node.id in _TYPES else "any"), False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [node.left, node.right]
        none = [s for s in sides if isinstance(s, ast.Constant) and s.value is None]
        rest = [s for s in sides if s not in none]
        if none and len(rest) == 1:
            return _annotated_type(rest[0])[0], True
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        if node.value.id == "Optional":
            return _annotated_type(node.slice)[0], True
        if node.value.id in ("list", "List"):
            return "list", False
        if node.value.id in ("dict", "Dict"):
            return "dict", False
    return "any", False


def parse_cli_value(text: str, param: Parameter | None = None) -> Any:
    """Parse a ``-p NAME VALUE`` value: a YAML scalar or JSON, text as is for ``str``.

    For a ``str`` parameter the text is taken literally (``-p current 2013`` is ``"2013"``).
    Otherwise JSON is tried first, then a YAML scalar/flow value; YAML values that are not
    JSON data (dates, for instance) stay text.
    """
    if param is not None and param.type == "str" and text not in ("null", "~"):
        return text
    try:
        return json.loads(text)
    except ValueError:
        pass
    from mlnb import yamlfile

    try:
        value = yamlfile.loads(text, max_nodes=10_000)
    except yamlfile.YamlRefused:
        return text
    try:
        to_jsonable(value)
    except TypeError:
        return text
    return value


def resolve(template: Template, overrides: dict[str, Any]) -> dict[str, Any]:
    """Merge ``overrides`` into the template's defaults, checking names and types.

    Returns:
        Every parameter's final value, defaults included (without the injected ones).

    Raises:
        ParameterError: an unknown or reserved name, a value of the wrong type, or a value
            that is not JSON data. The message lists what is allowed.
    """
    final = {n: p.default for n, p in template.parameters.items() if n not in INJECTED}
    valid = ", ".join(p.describe() for n, p in template.parameters.items() if n not in INJECTED)
    for name, value in overrides.items():
        if name in INJECTED:
            raise ParameterError(f"parameter {name!r} is set by mlnb and cannot be given", name)
        param = template.parameters.get(name)
        if param is None:
            raise ParameterError(
                f"unknown parameter {name!r} for template {template.name!r}; "
                f"valid: {valid or 'none (the template has no parameters cell)'}",
                name,
            )
        try:
            value = to_jsonable(value, f"parameter {name!r}")
        except TypeError as exc:
            raise ParameterError(str(exc), name) from exc
        if not param.accepts(value):
            raise ParameterError(
                f"parameter {name!r} must be {param.type}"
                f"{' or null' if param.optional and param.type != 'any' else ''}, "
                f"got {type(value).__name__} {json.dumps(value)[:60]}",
                name,
            )
        final[name] = value
    return final


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read ``-f params.yaml``: a YAML (or JSON) mapping of parameter names to values."""
    from mlnb import yamlfile

    try:
        data = yamlfile.read(path)
    except FileNotFoundError:
        raise ParameterError(f"cannot read parameters file {str(path)!r}: no such file") from None
    except yamlfile.YamlRefused as exc:
        if exc.problem is not None:
            where = f" (line {exc.line})" if exc.line else ""
            raise ParameterError(f"parameters file {str(path)!r} is not YAML{where}") from None
        raise ParameterError(f"parameters file {str(path)!r}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ParameterError(
            f"parameters file {str(path)!r} must be a mapping of names to values, "
            f"got {type(data).__name__}"
        )
    return data


def from_cli(template: Template, pairs: Iterable[tuple[str, str]], params_file: str | Path | None = None) -> dict[str, Any]:
    """The values of ``-f FILE`` and ``-p NAME VALUE`` for ``template``; ``-p`` wins.

    Values are not checked against the template here (:func:`resolve` does that), only read.
    """
    values = load_params_file(params_file) if params_file else {}
    for name, text in pairs:
        values[name] = parse_cli_value(text, template.parameters.get(name))
    return values


def _safe_python_translator():
    """A papermill translator that writes values with repr() and checks every name."""
    from papermill.translators import PythonTranslator

    class SafePythonTranslator(PythonTranslator):
        @classmethod
        def translate(cls, val):
            return repr(to_jsonable(val))

        @classmethod
        def assign(cls, name, str_val):
            if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)):
                raise ParameterError(f"parameter name {name!r} is not a Python identifier", name)
            return f"{name} = {str_val}"

        @classmethod
        def codify(cls, parameters, comment="Parameters"):
            lines = [cls.comment(comment)] if comment else []
            lines += [cls.assign(n, cls.translate(v)) for n, v in parameters.items()]
            return "\n".join(lines) + "\n"

    return SafePythonTranslator


def install_safe_translator(kernel_name: str) -> None:
    """Make papermill inject parameters for ``kernel_name`` with the safe translator."""
    from papermill.translators import papermill_translators

    translator = _safe_python_translator()
    papermill_translators.register("python", translator)
    papermill_translators.register(kernel_name, translator)
