"""A small name → factory registry shared by methods, tasks, datasets and models.

Searching any registry first imports the configured plugins (:mod:`taskbalance.plugins`), once per process, so that
entries registered outside taskbalance are found in every process that looks them up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from taskbalance.plugins import load_plugins

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps lower-case names to factories (usually classes).

    Example:
        >>> reg: Registry[type] = Registry("method")
        >>> @reg.register("ew")
        ... class EW: ...
        >>> reg.get("EW") is EW
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        key = name.lower()

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if key in self._entries and self._entries[key] is not factory:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = factory
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        load_plugins()
        key = name.lower()
        try:
            return self._entries[key]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def create(self, name: str, *args: object, **kwargs: object) -> T:
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
