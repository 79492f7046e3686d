"""Identical reads in flight share one child, and a caller never gets data older than its own request.

The children are fakes the test releases one by one, so every interleaving below is exact (no timing).
"""

from __future__ import annotations

import asyncio

import pytest

from zfsapi.adapters.outbound.zfs.executor import Coalescer, Completed
from zfsapi.domain.errors import ZfsCommandFailed

LIST = ["zfs", "list", "-H", "-p", "-o", "name", "tank/a b"]


class FakeChildren:
    """`run` starts a child that ends when the test releases it."""

    def __init__(self) -> None:
        self.started: list[tuple[list[str], asyncio.Future[Completed]]] = []
        self.killed: list[list[str]] = []

    async def run(self, argv: list[str]) -> Completed:
        child: asyncio.Future[Completed] = asyncio.get_running_loop().create_future()
        self.started.append((argv, child))
        try:
            return await child
        except asyncio.CancelledError:
            self.killed.append(argv)
            raise

    def release(self, index: int, stdout: bytes) -> Completed:
        argv, child = self.started[index]
        done = Completed(argv, 0, stdout, "")
        child.set_result(done)
        return done


async def settle() -> None:
    """Let every runnable task run until all wait on something the test controls."""
    for _ in range(20):
        await asyncio.sleep(0)


def reads(coalescer: Coalescer, n: int, argv: list[str] = LIST) -> list[asyncio.Task[Completed]]:
    return [asyncio.create_task(coalescer.run(argv)) for _ in range(n)]


async def test_identical_reads_arriving_together_share_one_child():
    children = FakeChildren()
    coalescer = Coalescer(children.run)
    waiting = reads(coalescer, 5)
    await settle()
    assert [argv for argv, _ in children.started] == [LIST]
    done = children.release(0, b"tank/a b\n")
    assert await asyncio.gather(*waiting) == [done] * 5


async def test_a_read_arriving_while_one_runs_gets_the_next_child_not_the_running_one():
    children = FakeChildren()
    coalescer = Coalescer(children.run)
    [first] = reads(coalescer, 1)
    await settle()
    later = reads(coalescer, 3)  # arrive after the first child started: its output may predate them
    await settle()
    assert len(children.started) == 1  # the next read waits for the running one: one child per key at a time
    old = children.release(0, b"before\n")
    assert await first == old
    await settle()
    assert len(children.started) == 2 and not any(task.done() for task in later)
    new = children.release(1, b"after\n")
    assert await asyncio.gather(*later) == [new] * 3


async def test_different_commands_do_not_share():
    children = FakeChildren()
    coalescer = Coalescer(children.run)
    other = [*LIST[:-1], "tank/c"]
    a, b = reads(coalescer, 1) + reads(coalescer, 1, other)
    await settle()
    assert [argv for argv, _ in children.started] == [LIST, other]
    done_a, done_b = children.release(0, b"tank/a b\n"), children.release(1, b"tank/c\n")  # before the awaits
    assert (await a, await b) == (done_a, done_b)


async def test_an_error_reaches_every_sharer():
    children = FakeChildren()
    coalescer = Coalescer(children.run)
    waiting = reads(coalescer, 3)
    await settle()
    children.started[0][1].set_exception(ZfsCommandFailed(LIST, -9, "timed out after 300 s and was killed"))
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert [(type(r), r.stderr) for r in results] == [  # type: ignore[union-attr]
        (ZfsCommandFailed, "timed out after 300 s and was killed")] * 3


async def test_one_sharer_cancelled_leaves_the_read_to_the_others():
    children = FakeChildren()
    coalescer = Coalescer(children.run)
    gone, *staying = reads(coalescer, 3)
    await settle()
    gone.cancel()
    await settle()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert children.killed == []
    done = children.release(0, b"tank\n")
    assert await asyncio.gather(*staying) == [done, done]


async def test_the_last_sharer_cancelled_kills_the_child_and_the_next_read_starts_afresh():
    children = FakeChildren()
    coalescer = Coalescer(children.run)
    waiting = reads(coalescer, 2)
    await settle()
    for task in waiting:
        task.cancel()
    await settle()
    assert children.killed == [LIST]
    [again] = reads(coalescer, 1)
    await settle()
    assert len(children.started) == 2
    fresh = children.release(1, b"fresh\n")
    assert await again == fresh


async def test_a_gathering_read_whose_callers_all_left_never_starts():
    children = FakeChildren()
    coalescer = Coalescer(children.run)
    [first] = reads(coalescer, 1)
    await settle()
    [next_one] = reads(coalescer, 1)
    await settle()
    next_one.cancel()
    await settle()
    children.release(0, b"tank\n")
    await first
    await settle()
    assert len(children.started) == 1 and children.killed == []


async def test_sharers_asking_again_at_once_share_the_next_child():
    """Eight callers each asking again as soon as they have their result: one child per round for all eight (the
    next read waits until the hand-out is over), not one for the first and one for the other seven."""
    children = FakeChildren()
    coalescer = Coalescer(children.run)

    async def twice() -> tuple[Completed, Completed]:
        first = await coalescer.run(LIST)
        return first, await coalescer.run(LIST)

    callers = [asyncio.create_task(twice()) for _ in range(8)]
    await settle()
    # each child runs a second (wall clock): the hand-out of 8 results never lasts that long, so the next child
    # waits for the hand-out's end, not for its timer (a child that ran for microseconds lets a loaded machine's
    # hand-out outlast it)
    await asyncio.sleep(1.0)
    old = children.release(0, b"before\n")
    await settle()
    assert len(children.started) == 2
    await asyncio.sleep(1.0)
    new = children.release(1, b"after\n")
    await settle()
    assert len(children.started) == 2 and all(task.done() for task in callers)
    assert [task.result() for task in callers] == [(old, new)] * 8


async def test_a_long_hand_out_lets_the_next_child_start_before_it_ends():
    """The next read does not wait for the whole hand-out when handing out lasts longer than the child ran: with
    500 sharers (one resumed per loop turn) the next child starts while some still wait for their result."""
    children = FakeChildren()
    coalescer = Coalescer(children.run)
    first = reads(coalescer, 500)  # a hand-out of 500 loop turns outlasts the child (a few) by far
    await settle()
    children.release(0, b"before\n")
    late = reads(coalescer, 1)
    for _ in range(5000):  # loop turns, checking after each one
        await asyncio.sleep(0)
        if len(children.started) == 2:
            break
    assert len(children.started) == 2 and not all(task.done() for task in first)
    children.release(1, b"after\n")
    await asyncio.gather(*first, *late)
