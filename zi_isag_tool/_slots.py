"""Many instances of a slots class at once, their fields set by the slot setters called from C.

A document has 10^4 segments and hundreds of windows: a dataclass ``__init__`` (a Python function
storing each field through ``object.__setattr__``) is then a large share of the time. When ``__init__``
only stores the fields, ``object.__new__`` plus the slot descriptors' ``__set__`` mapped over columns
of values builds the same objects about twice as fast.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["dataclass_slot_setters", "build_from_columns"]

_consume: Callable[[Iterable[object]], None] = collections.deque[object](maxlen=0).extend


def dataclass_slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...] | None:
    """The slot setters of ``names``, in that order, if ``cls`` is a slots dataclass whose ``__init__``
    only stores exactly those fields (no ``__post_init__``, no custom ``__new__``); else ``None``."""
    safe = (
        tuple(f.name for f in dataclasses.fields(cls)) == names
        and set(names) <= set(getattr(cls, "__slots__", ()))
        and not hasattr(cls, "__post_init__")
        and cls.__new__ is object.__new__
    )
    return tuple(getattr(cls, name).__set__ for name in names) if safe else None


def build_from_columns(
    cls: type, setters: tuple[Callable[[Any, Any], None], ...], columns: tuple[Iterable[Any], ...], n: int
) -> list[Any]:
    """``n`` new ``cls`` objects; object ``i`` gets ``columns[k][i]`` through ``setters[k]``."""
    objects: list[Any] = list(map(object.__new__, itertools.repeat(cls, n)))
    for setter, values in zip(setters, columns, strict=True):
        _consume(map(setter, objects, values))
    return objects
