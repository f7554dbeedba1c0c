"""The provider client's places in flight (``providers/engine/limit.py``): a freed place goes to the clip waiting
longest, and a clip cancelled while it waits, or just after it was handed a place, never keeps one."""

from __future__ import annotations

import asyncio

import pytest

from seedance_pipeline.providers.engine.limit import AdaptiveLimit


def _limit(cap: int) -> AdaptiveLimit:
    return AdaptiveLimit(cap, min_interval_s=0.0, max_interval_s=1.0)


async def _held(limit: AdaptiveLimit, entered: list[str], name: str, release: asyncio.Event) -> None:
    async with limit:
        entered.append(name)
        await release.wait()


def test_places_go_to_the_clips_waiting_longest_and_never_more_than_the_cap():
    async def main() -> tuple[list[int], list[int]]:
        limit, order, most = _limit(3), [], []

        async def clip(i: int) -> None:
            async with limit:
                order.append(i)
                most.append(limit.in_flight)
                await asyncio.sleep(0.001 * (i % 4))

        await asyncio.gather(*(clip(i) for i in range(40)))
        assert limit.in_flight == 0
        return order, most

    order, most = asyncio.run(main())
    assert order == list(range(40))  # first come, first served
    assert max(most) == 3


def test_a_clip_cancelled_while_it_waits_or_once_handed_its_place_leaves_the_place_to_the_next():
    async def main() -> None:
        limit, entered = _limit(1), []
        go = {name: asyncio.Event() for name in "bcd"}
        await limit.__aenter__()  # this test holds the one place
        b, c, d = (asyncio.create_task(_held(limit, entered, n, go[n])) for n in "bcd")
        await asyncio.sleep(0)
        b.cancel()  # still waiting: it leaves the queue
        with pytest.raises(asyncio.CancelledError):
            await b
        await limit.__aexit__(None, None, None)  # the place is handed to c, which has not run yet...
        assert limit.in_flight == 1 and entered == []
        c.cancel()  # ...and is cancelled before it wakes: the place passes on to d
        with pytest.raises(asyncio.CancelledError):
            await c
        for _ in range(3):
            await asyncio.sleep(0)
        assert entered == ["d"] and limit.in_flight == 1
        go["d"].set()
        await d
        assert limit.in_flight == 0

    asyncio.run(main())


def test_places_freed_by_an_accepted_submit_go_to_the_waiting_clips_at_once():
    async def main() -> None:
        limit, entered = _limit(2), []
        assert limit.throttled(retry_after=True)  # a 429: one place for now
        go = {name: asyncio.Event() for name in "ab"}
        a = asyncio.create_task(_held(limit, entered, "a", go["a"]))
        b = asyncio.create_task(_held(limit, entered, "b", go["b"]))
        for _ in range(3):
            await asyncio.sleep(0)
        assert entered == ["a"]
        await limit.accepted()  # back up to two places: b goes in while a still holds its own
        for _ in range(3):
            await asyncio.sleep(0)
        assert entered == ["a", "b"] and limit.in_flight == 2
        go["a"].set()
        go["b"].set()
        await asyncio.gather(a, b)
        assert limit.in_flight == 0

    asyncio.run(main())


def test_a_clip_arriving_just_after_the_one_handed_a_place_was_cancelled_gets_that_place():
    """The cancelled clip gives its place back only when it next runs: the clip that arrived meanwhile waits for
    that, not for a task's end that may never come."""

    async def main() -> None:
        limit, entered = _limit(1), []
        go = {name: asyncio.Event() for name in "bc"}
        await limit.__aenter__()
        b = asyncio.create_task(_held(limit, entered, "b", go["b"]))
        await asyncio.sleep(0)  # b waits in the queue
        await limit.__aexit__(None, None, None)  # the place is handed to b...
        b.cancel()  # ...cancelled before it wakes, and c arrives before b has given the place back
        c = asyncio.create_task(_held(limit, entered, "c", go["c"]))
        await asyncio.wait_for(_until(lambda: entered == ["c"]), timeout=5)
        go["c"].set()
        await c
        with pytest.raises(asyncio.CancelledError):
            await b
        assert limit.in_flight == 0

    asyncio.run(main())


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0)
