"""Names and URIs of the registry: ``NAME@ALIAS``, ``NAME/VERSION`` and ``NAME/latest``.

Names and aliases match ``[a-z0-9][a-z0-9._-]*`` (at most 100 characters) and are checked
here, before anything touches disk; :func:`parse_uri` turns a URI into a :class:`ModelRef`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlnb.exceptions import RegistryError

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MAX_NAME = 100
DEFAULT_ALIAS = "production"


def validate_name(name: Any, what: str = "model name") -> str:
    """Return ``name`` if it matches ``[a-z0-9][a-z0-9._-]*`` (at most 100 characters).

    Raises:
        RegistryError: naming the value and the rule; nothing touches disk first.
    """
    if not isinstance(name, str) or not NAME.match(name) or len(name) > MAX_NAME:
        raise RegistryError(
            f"{what} {name!r} is not allowed; use lowercase letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit (at most {MAX_NAME} characters)"
        )
    return name


def parse_version(value: Any) -> int:
    """A version number from an int or its decimal text (``3``, ``"3"``).

    Raises:
        RegistryError: not a whole number >= 1.
    """
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or value < 1:
        raise RegistryError(f"version {value!r} is not allowed; versions are whole numbers 1, 2, 3…")
    return value


@dataclass(frozen=True)
class ModelRef:
    """A parsed URI: ``name`` with either ``version`` (None for ``latest``) or ``alias``."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        return f"{self.name}/{self.version if self.version is not None else 'latest'}"


def parse_uri(uri: Any) -> ModelRef:
    """Parse ``NAME@ALIAS``, ``NAME/VERSION`` or ``NAME/latest``.

    Raises:
        RegistryError: any other form, or a bad name, alias or version.
    """
    example = uri.partition("@")[0].partition("/")[0] if isinstance(uri, str) and uri else "NAME"
    example = example if NAME.match(example) else "NAME"
    forms = f"give NAME@ALIAS ({example}@production) or NAME/VERSION ({example}/3)"
    if not isinstance(uri, str) or not uri:
        raise RegistryError(f"model URI {uri!r} is empty or not text; {forms}")
    if "@" in uri:
        name, _, alias = uri.partition("@")
        return ModelRef(validate_name(name), alias=validate_name(alias, "alias"))
    if "/" in uri:
        name, _, version = uri.partition("/")
        validate_name(name)
        if version == "latest":
            return ModelRef(name)
        try:
            return ModelRef(name, version=parse_version(version))
        except RegistryError:
            raise RegistryError(f"model URI {uri!r}: version {version!r} is not a whole number >= 1 or 'latest'; {forms}") from None
    validate_name(uri)
    raise RegistryError(f"model URI {uri!r} names no version; {forms}")
