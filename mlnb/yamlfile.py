"""Reading YAML that a user hands to mlnb: params files, ``mlnb.yaml``, validation schemas,
``-p`` values.

One loader for all of them, PyYAML's safe loader with two bounds a hostile or mistaken
file cannot get past: its size (:data:`MAX_BYTES`) and the size of the document once its
aliases are expanded (:data:`MAX_NODES`). A nine-level alias bomb of 500 bytes expands to
hundreds of millions of nodes; it is refused before anything is built from it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MAX_BYTES = 16 * 1024 * 1024
MAX_NODES = 1_000_000


class YamlRefused(ValueError):
    """The text is not YAML mlnb reads; ``str()`` is the reason, without the file's name.

    For a syntax error, ``line`` and ``column`` (1-based) and ``problem`` say where and what;
    they are None for the other refusals.
    """

    def __init__(self, reason: str, line: int | None = None, column: int | None = None, problem: str | None = None):
        super().__init__(reason)
        self.line, self.column, self.problem = line, column, problem


def loads(text: str, max_nodes: int = MAX_NODES) -> Any:
    """The data of one YAML document (None for an empty one).

    Raises:
        YamlRefused: not YAML (with the line), an alias that refers to itself, more than
            ``max_nodes`` nodes once aliases are expanded, or nesting too deep to read.
    """
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_document(self):
            node = super().compose_document()
            _check_expansion(node, max_nodes)
            return node

    try:
        return yaml.load(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlRefused(
            f"not valid YAML{where}: {problem}",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
            problem=problem,
        ) from None
    except RecursionError:
        raise YamlRefused("nested too deeply to read") from None


def read(path: str | os.PathLike, max_bytes: int = MAX_BYTES) -> Any:
    """The data of the YAML file at ``path``.

    Raises:
        FileNotFoundError: no such file (the caller words it).
        YamlRefused: unreadable, larger than ``max_bytes``, not UTF-8, or refused by
            :func:`loads`.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise YamlRefused(f"{size:,} bytes, more than the {max_bytes:,} mlnb reads")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise YamlRefused(f"cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlRefused(f"not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x})") from None
    return loads(text)


def _check_expansion(root, max_nodes: int) -> None:
    """Refuse a node graph whose tree (aliases expanded) has more than ``max_nodes`` nodes."""
    from yaml.nodes import MappingNode, SequenceNode

    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise YamlRefused("an alias refers to the node that contains it")
        open_.add(key)
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        total = 1
        for child in children:
            total += size(child)
            if total > max_nodes:
                raise YamlRefused(f"more than {max_nodes:,} values once its aliases are expanded")
        open_.discard(key)
        sizes[key] = total
        return total

    if root is not None:
        size(root)
