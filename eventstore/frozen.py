"""Frozen records that are cheap to build.

A frozen dataclass's generated ``__init__`` stores each field through ``object.__setattr__``
(plain assignment is what it forbids), which costs three times a plain one: for the records
made for every event and notification (``StoredEvent``, ``Append``, ``Notification``...) that was
a few percent of every part of `serve`. ``quick_init`` gives such a class an ``__init__`` that
fills the instance's ``__dict__`` directly; the instance is exactly as frozen, equal, hashable and
printable as before. ``filled`` and ``changed`` skip ``__init__`` altogether, for records made
from values already checked: a decoded message, a plan evolved from a valid one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """For a frozen dataclass of plain fields (defaults allowed; no factories, no ``__post_init__``)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or hasattr(cls, "__post_init__") or "__slots__" in cls.__dict__:
        raise TypeError(f"quick_init needs a frozen dataclass without __post_init__ or slots, not {cls.__name__}")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # checked above: a dataclass
    defaults: dict[str, Any] = {}
    signature = []
    for f in fields:
        if not f.init or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"quick_init: {cls.__name__}.{f.name} needs the generated __init__")
        if f.default is dataclasses.MISSING:
            signature.append(f.name)
        else:
            defaults[f"_default_{f.name}"] = f.default
            signature.append(f"{f.name}=_default_{f.name}")
    body = "".join(f"    d[{f.name!r}] = {f.name}\n" for f in fields) or "    pass\n"
    namespace: dict[str, Any] = dict(defaults)
    exec(f"def __init__(self, {', '.join(signature)}):\n    d = self.__dict__\n{body}", namespace)  # noqa: S102 - our own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    setattr(cls, "__init__", init)
    return cls


def filled(cls: type[T], fields: Mapping[str, Any]) -> T:
    """An instance holding these field values as they are: no ``__init__`` (nor ``__post_init__``) runs."""
    record: T = object.__new__(cls)
    record.__dict__.update(fields)
    return record


def changed(record: T, **changes: object) -> T:
    """``dataclasses.replace`` without ``__init__``: what ``__post_init__`` derived is shared, not derived again."""
    new: T = object.__new__(type(record))
    new.__dict__.update(record.__dict__)
    new.__dict__.update(changes)
    return new
