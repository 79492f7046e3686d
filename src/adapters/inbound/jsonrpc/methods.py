"""The core's JSON-RPC methods: one table of the rows of every feature module (datasets, clones and volumes,
snapshots, holds, diffs, bookmarks, pools), in the order they are documented. Each row is a method's param Struct
(syntax), value objects (semantics), use case (work) and result Struct (exactly the keys of the wire contract
in README.md)."""

from __future__ import annotations

from zfsapi.application.catalog import UseCases

from .bookmark_methods import BOOKMARKS
from .dataset_methods import DATASETS
from .diff_methods import DIFFS
from .hold_methods import HOLDS
from .pool_methods import POOLS
from .registry import Registry, Table
from .snapshot_methods import SNAPSHOTS
from .volume_methods import VOLUMES

CORE = Table.joined(DATASETS, VOLUMES, SNAPSHOTS, HOLDS, DIFFS, BOOKMARKS, POOLS)


def register_core(registry: Registry, uc: UseCases) -> None:
    """Register every row of CORE, each bound to its use case in `uc`."""
    registry.include(CORE, uc.__getitem__)
