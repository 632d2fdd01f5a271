"""Collapsing a big graph into a readable one: each layer, or each named subgraph, becomes
one box.

A group starts at named nodes: in "layers" mode the parameters, grouped by the layer their
name gives (``W3`` and ``b3`` are layer 3, ``fc1.weight`` is ``fc1``); with a mapping
``{name_prefix: label}``, every node whose name starts with a prefix. An op joins the
group of a grouped parameter it reads, and an elementwise op (an activation, a bias add)
joins the group all its inputs are in, so ``relu(h @ W3 + b3)`` is one box "layer 3".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from graphc.ir.node import Node

Collapse = str | Mapping[str, str] | None


def group_nodes(nodes: Sequence[Node], collapse: Collapse) -> dict[int, str]:
    """The group label of every node that is collapsed, by node id."""
    if collapse is None:
        return {}
    key = _key_function(collapse)
    groups: dict[int, str] = {}
    for node in nodes:
        own = key(node)
        if own is not None:
            groups[node.id] = own
            continue
        if not node.inputs:
            continue
        params = [groups[x.id] for x in node.inputs if x.op.name == "param" and x.id in groups]
        if params:
            groups[node.id] = params[0]
        elif node.op.name == "elementwise":
            found = {groups.get(x.id) for x in node.inputs if x.op.name != "constant"}
            if len(found) == 1 and (group := found.pop()) is not None:
                groups[node.id] = group
    return groups


def _key_function(collapse: Collapse) -> Callable[[Node], str | None]:
    if collapse == "layers":
        return lambda node: layer_of(node.name) if node.op.name == "param" else None
    if isinstance(collapse, Mapping):
        prefixes = sorted(collapse, key=len, reverse=True)

        def by_prefix(node: Node) -> str | None:
            if node.name:
                for prefix in prefixes:
                    if node.name.startswith(prefix):
                        return collapse[prefix]
            return None

        return by_prefix
    raise ValueError(f"collapse must be None, 'layers' or a mapping {{name_prefix: label}}, "
                     f"got {collapse!r}")


def layer_of(name: str | None) -> str | None:
    """The layer a parameter's name gives: ``W3`` -> "layer 3", ``fc1.weight`` -> "fc1"."""
    if not name:
        return None
    digits = re.search(r"(\d+)$", name)
    if digits:
        return f"layer {int(digits.group(1))}"
    head, sep, _ = name.rpartition(".")
    return head if sep and head else None
