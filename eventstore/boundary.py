"""Where an adapter meets the rest: the errors of the libraries it wraps become ours.

Each adapter says which of its library's errors mean what (``sqlite_support.sqlite_error``,
``kafka.io.kafka_error``); its classes that the rest calls are ``guarded`` by those, so a
caller above the adapter (the CLI, `serve`'s runner) catches ``WatcherEsError`` alone and never
imports a client library to do it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from eventstore.exceptions import WatcherEsError

#: Ours for one of the library's errors, or None when the error is not the library's.
Translator = Callable[[BaseException], WatcherEsError | None]

C = TypeVar("C", bound=type)


@contextmanager
def translated(*translators: Translator) -> Iterator[None]:
    """Inside, an error a translator knows is raised as ours (chained to the original)."""
    try:
        yield
    except WatcherEsError:
        raise
    except Exception as exc:
        for translate in translators:
            ours = translate(exc)
            if ours is not None:
                raise ours from exc
        raise


def _iterated(iterator: Iterator[Any], translators: tuple[Translator, ...]) -> Iterator[Any]:
    with translated(*translators):
        yield from iterator


def _guard(method: Callable[..., Any], translators: tuple[Translator, ...]) -> Callable[..., Any]:
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            return _iterated(method(*args, **kwargs), translators)

        return generator

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with translated(*translators):
            result = method(*args, **kwargs)
        # an iterator read after the call returns (a lazy query, a stream of notifications) is guarded too
        return _iterated(result, translators) if isinstance(result, Iterator) else result

    return call


def guarded(*translators: Translator) -> Callable[[C], C]:
    """A class decorator: every public method, and ``__init__``, raises ours instead of the library's.

    Inherited methods too, on the decorated class only: a backend guards a neutral class (the
    bridge's part, say) by subclassing it with its own translators, leaving the base as it is."""

    def decorate(cls: C) -> C:
        seen: set[str] = set()
        for klass in cls.__mro__[:-1]:  # not object's
            for name, member in vars(klass).items():
                if name in seen or not inspect.isfunction(member) or (name != "__init__" and name.startswith("_")):
                    continue
                seen.add(name)
                setattr(cls, name, _guard(member, translators))
        return cls

    return decorate
