"""A small id → factory registry (frame encoders, music encoders)."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import V2MError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, item_id: str):
        """Decorator: register a factory (a class or function) under ``item_id``."""

        def deco(factory):
            self._factories[item_id] = factory
            return factory

        return deco

    def ids(self) -> list[str]:
        return sorted(self._factories)

    def get(self, item_id: str, **kwargs) -> T:
        """Build by id; an unknown id raises a V2MError listing the known ones."""
        try:
            factory = self._factories[item_id]
        except KeyError:
            raise V2MError(f"unknown {self.kind} {item_id!r}: choose one of {', '.join(self.ids())}") from None
        return factory(**kwargs)
