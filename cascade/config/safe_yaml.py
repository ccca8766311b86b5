"""YAML from untrusted files, bounded before any Python object is built.

PyYAML's SafeLoader refuses arbitrary tags but not hostile structure: nine lines of nested
aliases (a "billion laughs") expand to millions of nodes and gigabytes once anything walks
them, and an alias inside its own anchor makes a cycle that recursion never leaves. So a
document is composed into nodes (aliases stay shared, so this is cheap), its expanded size is
counted without expanding it, and only then are Python objects constructed. Every failure is a
ConfigError that names the file and, where known, the line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml

from cascade.errors import ConfigError

MAX_BYTES = 8_000_000
"""Largest config file read: far above any real cascade (a scripted fake with thousands of replies)."""
MAX_NODES = 200_000
"""Largest document once aliases are expanded; a real config has hundreds of nodes."""


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed YAML document: its Python data and its node tree (for line numbers)."""

    data: Any
    node: yaml.Node | None


def read_text(path: str | os.PathLike[str]) -> str:
    """The file's text as UTF-8 (a BOM is allowed), or a ConfigError naming what is wrong with it."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror or exc}", source=source) from exc
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{source}: config is larger than {MAX_BYTES:,} bytes", source=source)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{source}:{line}: config is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8",
            source=source,
        ) from None


def parse(text: str, *, source: str = "<string>", max_nodes: int = MAX_NODES) -> Document:
    """Compose, bound, then construct one YAML document (SafeLoader semantics)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            check_size(node, source=source, max_nodes=max_nodes)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise _malformed(exc, source) from exc
    except RecursionError:
        raise ConfigError(f"{source}: malformed YAML: nested too deeply", source=source) from None
    finally:
        loader.dispose()
    return Document(data, node)


def load(path: str | os.PathLike[str]) -> Document:
    """`read_text` then `parse`: a config file's data and nodes, or a ConfigError."""
    return parse(read_text(path), source=str(path))


def check_size(root: yaml.Node, *, source: str, max_nodes: int = MAX_NODES) -> int:
    """The number of nodes `root` stands for with every alias expanded; ConfigError on a cycle or
    more than `max_nodes`. Shared nodes are counted once per use but visited once (memoised), and
    the walk uses its own stack, so neither a bomb nor a deep tree costs more than its node count."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > max_nodes:
                raise ConfigError(
                    f"{source}:{_line(node)}: YAML aliases expand to more than {max_nodes:,} nodes "
                    "(an alias bomb?); write the values out or use fewer nested aliases",
                    source=source,
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ConfigError(
                f"{source}:{_line(node)}: YAML alias cycle: an anchor is used inside its own value", source=source
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _malformed(exc: yaml.YAMLError, source: str) -> ConfigError:
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    problem = getattr(exc, "problem", None) or str(exc)
    return ConfigError(f"{where}: malformed YAML: {problem}", source=source)
