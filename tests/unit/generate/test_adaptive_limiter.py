"""The limiter that follows a server's concurrency quota (``model/limiter.py``), driven by
hand: which attempts hold slots, which wait, and where the limit settles."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.model.failures import classify, retry_after
from pytest_modelopt.model.limiter import AdaptiveLimiter

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

    from pytest_modelopt.model.limiter import Ticket


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_a_burst_of_refusals_settles_at_what_the_server_holds_not_at_one() -> None:
    """64 sent against a quota of 16: 48 refusals within one round trip leave the limit at
    16, where halving on each would have left 1."""

    async def burst() -> None:
        limiter = AdaptiveLimiter(64)
        tickets = [await limiter.acquire() for _ in range(64)]
        assert limiter.active == 64
        for ticket in tickets[16:]:  # the server refuses all but the first 16 at once
            limiter.refused(ticket)
            limiter.release()
        assert limiter.limit == 16
        assert limiter.active == 16
        assert limiter.refusals == 48

    run(burst())


def test_a_refused_slot_is_not_handed_to_a_waiter_beyond_the_new_limit() -> None:
    async def waiters() -> None:
        limiter = AdaptiveLimiter(4)
        held = [await limiter.acquire() for _ in range(4)]
        waiting = [asyncio.ensure_future(limiter.acquire()) for _ in range(3)]
        await asyncio.sleep(0)
        assert limiter.waiting == 3
        limiter.refused(held[3])  # the server holds the 3 others
        limiter.release()
        await asyncio.sleep(0)
        assert limiter.limit == 3
        assert limiter.active == 3
        assert not any(w.done() for w in waiting)
        limiter.succeeded()  # the one success above the threshold does not grow it yet
        limiter.release()
        await asyncio.sleep(0)
        assert sum(w.done() for w in waiting) == 1
        for w in waiting:
            w.cancel()

    run(waiters())


def test_after_an_outage_the_limit_doubles_per_round_up_to_half_then_probes_by_one() -> None:
    async def outage() -> None:
        limiter = AdaptiveLimiter(32)
        tickets = [await limiter.acquire() for _ in range(32)]
        for ticket in tickets:  # everything refused: the server took none
            limiter.refused(ticket)
            limiter.release()
        assert limiter.limit == 1
        assert limiter.threshold == 16

        async def round_trip() -> None:
            granted = [await limiter.acquire() for _ in range(limiter.limit)]
            for _ in granted:
                limiter.succeeded()
                limiter.release()

        limits = []
        for _ in range(6):
            await round_trip()
            limits.append(limiter.limit)
        assert limits[:4] == [2, 4, 8, 16]  # one per success below the threshold
        assert limits[4:] == [17, 18]  # one per round above it

    run(outage())


def test_one_burst_moves_the_threshold_once() -> None:
    """Refusals of attempts made before the limit fell are the same burst: the first one
    sets the threshold, the rest only bring the limit down to what is in flight."""

    async def burst() -> None:
        limiter = AdaptiveLimiter(64)
        tickets = [await limiter.acquire() for _ in range(64)]
        for ticket in tickets[16:]:
            limiter.refused(ticket)
            limiter.release()
        assert limiter.epoch == 1
        assert limiter.threshold == 32

    run(burst())


def test_waiters_are_served_by_priority_then_in_order() -> None:
    async def served() -> None:
        limiter = AdaptiveLimiter(1)
        await limiter.acquire()
        order: list[str] = []

        async def wait(name: str, priority: float) -> None:
            await limiter.acquire(priority)
            order.append(name)
            limiter.release()

        tasks = [
            asyncio.ensure_future(wait(name, priority))
            for name, priority in (("late", 9.0), ("retry", 2.0), ("urgent", -1.0), ("next", 9.0))
        ]
        await asyncio.sleep(0)
        limiter.release()
        await asyncio.gather(*tasks)
        assert order == ["urgent", "retry", "late", "next"]

    run(served())


def test_a_cancelled_waiter_leaks_no_slot() -> None:
    async def cancelled() -> None:
        limiter = AdaptiveLimiter(1)
        await limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        limiter.release()  # granted to the waiter...
        waiter.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert limiter.active == 0
        ticket: Ticket = await limiter.acquire()
        assert ticket.epoch == 0
        assert limiter.active == 1

    run(cancelled())


def test_a_waiter_cancelled_before_its_turn_blocks_no_later_one() -> None:
    async def behind_a_cancelled_waiter() -> None:
        limiter = AdaptiveLimiter(1)
        await limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        waiter.cancel()  # still queued: its slot was never granted
        with pytest.raises(asyncio.CancelledError):
            await waiter
        limiter.release()  # nothing in flight now, and only a cancelled waiter queued
        await asyncio.wait_for(limiter.acquire(), timeout=5)
        assert limiter.active == 1

    run(behind_a_cancelled_waiter())


def test_retry_after_ms_wins_over_retry_after_and_is_read_exactly() -> None:
    assert retry_after({"retry-after-ms": "150", "retry-after": "1"}) == pytest.approx(0.15)
    assert retry_after({"retry-after": "0.1"}) == pytest.approx(0.1)


def test_a_429_from_the_sdk_carries_its_retry_after_ms() -> None:
    import httpx2
    import openai

    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx2.Response(
        429, headers={"Retry-After-Ms": "40", "Retry-After": "3"}, request=request
    )
    failure = classify(openai.RateLimitError("slow down", response=response, body=None))
    assert failure.kind == "rate_limit"
    assert failure.retryable
    assert failure.retry_after == pytest.approx(0.04)
