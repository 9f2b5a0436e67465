"""Parameters: reading the parameters cell, checking values, injecting them safely."""

from __future__ import annotations

import json

import pytest

from mlnb import params
from mlnb.exceptions import ParameterError, TemplateError, TemplateNotFound
from mlnb.params import Parameter, parse_cli_value, parse_parameters, resolve


@pytest.mark.parametrize(
    "line, type_, optional, default, help_",
    [
        ("x = 1  # count", "int", False, 1, "count"),
        ("x = 1.5", "float", False, 1.5, ""),
        ('x = "a"  # text # with hash', "str", False, "a", "text # with hash"),
        ("x = True", "bool", False, True, ""),
        ("x = [1, 2]", "list", False, [1, 2], ""),
        ("x = {'a': 1}", "dict", False, {"a": 1}, ""),
        ("x = None", "any", True, None, ""),
        ("x: float = 2", "float", False, 2, ""),
        ("x: str | None = None", "str", True, None, ""),
        ("x: 'Optional[int]' = None", "int", True, None, ""),
        ("x: list[str] = []", "list", False, [], ""),
    ],
)
def test_parameters_cell_types_defaults_and_help(line, type_, optional, default, help_):
    (p,) = parse_parameters(line).values()
    assert (p.type, p.optional, p.default, p.help) == (type_, optional, default, help_)


@pytest.mark.parametrize(
    "source, message",
    [
        ("x = os.getcwd()", "not a literal"),
        ("import os", "only 'name = literal'"),
        ("a.b = 1", "plain name"),
        ("x = (", "line 1"),
    ],
)
def test_parameters_cell_that_is_not_literals_is_refused(source, message):
    with pytest.raises(TemplateError, match=message):
        parse_parameters(source)


def _template(**defaults):
    ps = {n: Parameter(n, v, params._type_of(v), v is None) for n, v in defaults.items()}
    return params.Template(name="t", path=None, sha256="0" * 64, parameters=ps)


def test_resolve_keeps_every_default_and_applies_overrides():
    tpl = _template(a=1, b="x", c=None, run_id=None, artifacts_dir="artifacts")
    assert resolve(tpl, {"a": 2}) == {"a": 2, "b": "x", "c": None}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"nope": 1}, r"unknown parameter 'nope' for template 't'; valid: a \(int, default 1\), b \(str"),
        ({"a": "1"}, r"parameter 'a' must be int, got str \"1\""),
        ({"a": True}, "parameter 'a' must be int, got bool"),
        ({"a": None}, "parameter 'a' must be int, got NoneType"),
        ({"f": "x"}, "parameter 'f' must be float"),
        ({"a": float("nan")}, "only finite numbers"),
        ({"c": object()}, "glue JSON values"),
        ({"run_id": "x"}, "set by mlnb"),
        ({"x=1;import os;y": 1}, "unknown parameter 'x=1;import os;y'"),
    ],
)
def test_resolve_refuses_unknown_names_and_wrong_types(overrides, message):
    tpl = _template(a=1, b="x", c=None, f=0.5, run_id=None)
    with pytest.raises(ParameterError, match=message):
        resolve(tpl, overrides)


def test_float_parameter_accepts_an_int():
    assert resolve(_template(f=0.5), {"f": 2}) == {"f": 2}


@pytest.mark.parametrize(
    "text, param_type, expected",
    [
        ("0.01", "float", 0.01),
        ("3", "int", 3),
        ("true", "bool", True),
        ("null", "any", None),
        ("[1, 2]", "list", [1, 2]),
        ("{a: 1}", "dict", {"a": 1}),
        ('{"a": [1]}', "dict", {"a": [1]}),
        ("2013", "str", "2013"),
        ("2013-01-01", "any", "2013-01-01"),  # YAML would make a date: stays text
        ("hello world", "any", "hello world"),
    ],
)
def test_cli_values_are_json_or_yaml_scalars(text, param_type, expected):
    assert parse_cli_value(text, Parameter("p", None, param_type, True)) == expected


EVIL_STRINGS = [
    'a"; import os; os.system("touch /tmp/pwned"); b="',
    "line1\nimport os\nos.system('x')",
    "ends with a backslash \\",
    "'''triple''' \"\"\"quotes\"\"\"",
    "\\n\\x00 \x00 \u2028 é",
    "{x} %s {{}}",
]


@pytest.mark.parametrize("value", EVIL_STRINGS)
def test_injected_code_round_trips_values_and_executes_nothing(value):
    translator = params._safe_python_translator()
    values = {"s": value, "nested": {"k'ey\"": [value, 1.5, None, True]}}
    code = translator.codify(values)
    namespace: dict = {}
    exec(compile(code, "<injected>", "exec"), {"__builtins__": {}}, namespace)
    assert namespace == values


@pytest.mark.parametrize("name", ["x=1;import os;y", "a b", "1x", "class", "x\n"])
def test_injection_through_a_parameter_name_is_refused(name):
    translator = params._safe_python_translator()
    with pytest.raises(ParameterError, match="not a Python identifier"):
        translator.codify({name: 1})


def test_params_file_must_be_a_yaml_mapping(tmp_path):
    good = tmp_path / "p.yaml"
    good.write_text("n: 3\nname: x\n")
    assert params.load_params_file(good) == {"n": 3, "name": "x"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("n: [1,\n")
    with pytest.raises(ParameterError, match=r"is not YAML \(line"):
        params.load_params_file(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n")
    with pytest.raises(ParameterError, match="must be a mapping"):
        params.load_params_file(listed)


def test_template_without_parameters_cell_has_no_parameters(notebooks):
    assert params.load_template(notebooks / "noparams.ipynb").parameters == {}


def test_malformed_notebook_and_missing_template(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    with pytest.raises(TemplateError, match="not a Jupyter notebook"):
        params.load_template(broken)
    other = tmp_path / "other.ipynb"
    other.write_text(json.dumps({"nbformat": 4}))
    with pytest.raises(TemplateError, match="not a Jupyter notebook"):
        params.load_template(other)
    with pytest.raises(TemplateNotFound, match="does not exist"):
        params.load_template(tmp_path / "missing.ipynb")
