"""A closed world for `config.jsonschema`: `$ref` only within the same document, never fetched.

jsonschema's default registry retrieves any `$ref` it cannot resolve locally (`http://...` is
fetched with urllib, `file://...` read from disk); a schema from a template ZIP must not make
the validator, `trainkit run` or `trainkit form` reach outside it. So:

* :func:`ref_problems` lists every `$ref` that is not a fragment of the same document
  (`#/...`), every fragment that does not resolve, every nested `$id` (it would move the base
  of `$ref` resolution elsewhere) and every cycle of references (the platform's form and
  default computation would recurse forever);
* :func:`closed_validator` is a Draft 7 validator whose `referencing` registry refuses every
  retrieval, so even a `$ref` that slipped past the check cannot be fetched.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry
from referencing.exceptions import NoSuchResource

__all__ = ["SchemaRefError", "closed_validator", "ref_problems", "require_closed"]

_MISSING = object()


class SchemaRefError(ValueError):
    """A schema that refers outside itself or in a circle; the message names the `$ref`."""


def _refuse(uri: str):
    raise NoSuchResource(ref=uri)


CLOSED_REGISTRY: Registry = Registry(retrieve=_refuse)  # type: ignore[call-arg]


def closed_validator(schema: Any) -> Draft7Validator:
    """A Draft7Validator for `schema` that never retrieves a `$ref` (no network, no files)."""
    return Draft7Validator(schema, registry=CLOSED_REGISTRY)


def _walk(node: Any, pointer: str = "") -> Iterator[tuple[str, dict]]:
    """(JSON pointer, object) for every object in `node`, without recursion."""
    stack = [(node, pointer)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            yield where, item
            for key, value in item.items():
                escaped = str(key).replace("~", "~0").replace("/", "~1")
                stack.append((value, f"{where}/{escaped}"))
        elif isinstance(item, list):
            for index, value in enumerate(item):
                stack.append((value, f"{where}/{index}"))


def _resolve(schema: Any, fragment: str) -> Any:
    """The value at JSON pointer `fragment` (already without '#'), or _MISSING."""
    node = schema
    if not fragment:
        return node
    if not fragment.startswith("/"):
        return _MISSING  # a plain-name fragment (#foo) needs an $id anchor: not supported
    for part in fragment[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _refs(schema: Any) -> dict[str, str]:
    """JSON pointer of each object holding a string `$ref` → that `$ref`."""
    return {
        where: node["$ref"] for where, node in _walk(schema) if isinstance(node.get("$ref"), str)
    }


def _cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """One cycle of the ref graph as a list of pointers, or None (iterative DFS)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in edges:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(edges[start]))]
        state[start] = 1
        path.append(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(child) == 1:
                return [*path[path.index(child) :], child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(edges.get(child, ()))))
    return None


def ref_problems(schema: Any) -> list[str]:
    """One message per problem (empty: the schema's references stay inside it, acyclic)."""
    problems: list[str] = []
    for where, node in _walk(schema):
        if where and "$id" in node and isinstance(node.get("$id"), str):
            problems.append(
                f"$id {node['$id']!r} at {where or '#'} changes where $ref resolves; only the "
                "root may carry $id"
            )
    refs = _refs(schema)
    targets: dict[str, str] = {}
    for where, ref in sorted(refs.items()):
        if not ref.startswith("#"):
            problems.append(
                f"$ref {ref!r} at {where or '#'} points outside this file; only references "
                "within the same document ('#/...') are allowed, nothing is fetched or read"
            )
            continue
        fragment = urllib.parse.unquote(ref[1:])
        if _resolve(schema, fragment) is _MISSING:
            problems.append(f"$ref {ref!r} at {where or '#'} does not resolve in this file")
            continue
        targets[where] = fragment
    # A ref node R leads to every ref node inside its target's subtree; a cycle means the
    # schema expands forever.
    edges = {
        where: [other for other in targets if other == target or other.startswith(target + "/")]
        for where, target in targets.items()
    }
    cycle = _cycle(edges)
    if cycle:
        shown = " -> ".join(f"{refs[p]!r} at {p or '#'}" for p in cycle[:-1])
        problems.append(
            f"recursive $ref: {shown} leads back to itself; the platform's form and "
            "default values would expand it forever"
        )
    return problems


def require_closed(schema: Any, source: str) -> None:
    """SchemaRefError (the first problem, prefixed with `source`) unless ref_problems is empty."""
    problems = ref_problems(schema)
    if problems:
        raise SchemaRefError(f"{source}: {problems[0]}")
