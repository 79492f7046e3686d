"""Bookmarks (create, list, destroy): each method's params, result and handler."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from zfsapi.application.snapshots import CreateBookmark, DestroyBookmark, ListBookmarks
from zfsapi.domain.authz import Action
from zfsapi.domain.errors import AlreadyExists, InvalidArgument, NotFound
from zfsapi.domain.names import BookmarkName, parse_snapshot_or_bookmark

from .method_common import DATASET, DatasetOnly, Name, SNAPSHOT, ZFS_ERRORS, dataset_name, parse
from .registry import CallContext, Params, Result, Table

BOOKMARKS = Table(errors=ZFS_ERRORS)


class BookmarkCreate(Params, frozen=True, forbid_unknown_fields=True):
    snapshot: Annotated[Name, Meta(description="The source in full: a snapshot (ds@snap) or a bookmark (ds#b).")]
    bookmark: Annotated[Name, Meta(description="The new bookmark: its short name, or its full name ds#name.")]


class BookmarkOnly(Params, frozen=True, forbid_unknown_fields=True):
    bookmark: Annotated[Name, Meta(description="A bookmark's full name: dataset#name.")]


class BookmarkCreateResult(Result, frozen=True, kw_only=True):
    snapshot: str
    bookmark: str
    created: Literal[True] = True


class BookmarkListResult(Result, frozen=True, kw_only=True):
    dataset: str
    bookmarks: list[str]


class BookmarkDestroyResult(Result, frozen=True, kw_only=True):
    bookmark: str
    destroyed: Literal[True] = True


@BOOKMARKS.method(Action.CHANGE, carries={"snapshot": DATASET, "bookmark": SNAPSHOT},
             errors=(NotFound, AlreadyExists, InvalidArgument))
async def bookmark_create(uc: CreateBookmark, p: BookmarkCreate, ctx: CallContext) -> BookmarkCreateResult:
    source = parse("snapshot", parse_snapshot_or_bookmark, p.snapshot)
    text = p.bookmark if "#" in p.bookmark else f"{source.dataset}#{p.bookmark}"
    bookmark = parse("bookmark", BookmarkName.parse, text)
    await uc.execute(source=source, bookmark=bookmark)
    return BookmarkCreateResult(snapshot=source.value, bookmark=bookmark.value)


@BOOKMARKS.method(Action.LIST, carries={"dataset": DATASET}, errors=(NotFound,))
async def bookmark_list(uc: ListBookmarks, p: DatasetOnly, ctx: CallContext) -> BookmarkListResult:
    name = dataset_name(p.dataset)
    return BookmarkListResult(dataset=name.value, bookmarks=ctx.visible(await uc.execute(dataset=name)))


@BOOKMARKS.method(Action.DESTROY, carries={"bookmark": DATASET}, errors=(NotFound,))
async def bookmark_destroy(uc: DestroyBookmark, p: BookmarkOnly, ctx: CallContext) -> BookmarkDestroyResult:
    bookmark = parse("bookmark", BookmarkName.parse, p.bookmark)
    await uc.execute(bookmark=bookmark)
    return BookmarkDestroyResult(bookmark=bookmark.value)
