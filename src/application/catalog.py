"""The core's use cases in one object: what the HTTP adapter dispatches to and what embedders await."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, TypeVar

U = TypeVar("U")


class UseCases:
    """The core's use cases by wire method name (`api.snapshot_list`), or typed by class
    (`api[ListSnapshots]`). The composition root fills it; nothing here lists them."""

    __slots__ = ("_by_name", "_by_class")

    def __init__(self, by_name: Mapping[str, object]) -> None:
        self._by_name = dict(by_name)
        self._by_class = {type(u): u for u in self._by_name.values()}

    def __getattr__(self, name: str) -> Any:
        found = None if name.startswith("_") else self._by_name.get(name)
        if found is None:
            raise AttributeError(f"no use case is named {name!r}")
        return found

    def __getitem__(self, kind: type[U]) -> U:
        found = self._by_class.get(kind)
        if not isinstance(found, kind):
            raise KeyError(kind.__name__)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __dir__(self) -> list[str]:
        return sorted(self._by_name)
