"""Plain dicts that share one key table, for the millions of small dicts of a large dataset.

CPython stores the `__dict__`s of the instances of one class as key-sharing dicts (PEP 412):
one table of keys for the class, only the values per dict. Taken on its own, such a `__dict__`
is an ordinary `dict` in every respect (`type(d) is dict`, equality, insertion order, json,
deletion, any key) and costs about half the memory of a dict literal with the same keys
(measured on CPython 3.11-3.13: an xmltodict-shaped `<image>` with a `<tag>` and a `<box>`,
728 -> 384 bytes; older versions share less, never more memory). A class's key table holds at
most 30 keys; dicts of a class that has seen more are ordinary dicts again.

    IMAGE = dict_class("image")
    image = IMAGE().__dict__        # then fill it like any dict

(The call is spelled out where it is hot: no helper function between.)
"""

from __future__ import annotations


def dict_class(name: str) -> type:
    """A class whose instances' `__dict__` are key-sharing dicts: one class per kind of dict
    (the keys one kind uses share one table)."""
    return type(f"_{name}_dict", (), {"__doc__": f"Holds the shared keys of {name} dicts."})
