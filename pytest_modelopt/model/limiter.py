"""How many requests the generator keeps in flight: as many as the server takes, no more.

A gateway with a concurrency quota answers 429 at once to every request beyond it. Halving
the limit on each 429 turns one burst into a collapse: 64 requests against a quota of 16
meet 48 refusals within milliseconds, and 48 halvings leave one request in flight, which
then takes hundreds of successes to grow back. So the limiter reads a refusal for what it
says, "I hold as many as you still have in flight", and sets the limit to that count: the
burst settles at the quota itself, in one round trip.

Growth probes the quota again. Below ``threshold`` (half the limit the last burst of
refusals started at) the limit grows by one per success, doubling each round trip, so a
limit driven low by an outage comes back quickly; above it, by one per ``limit``
successes: one probe per round trip, which the server refuses at once if the quota has
not moved, at the cost of one retried request.

Every attempt takes a slot (retries too, so a request waiting out its backoff holds none),
and waiting attempts are served in priority order (the generator's: a test waiting first,
then item order), so a retried request goes out before requests queued after it.

It belongs to one event loop (the generator's) and is not thread-safe.
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Ticket:
    """One attempt's slot: the limiter's epoch and success count when it was granted."""

    epoch: int
    successes: int


class AdaptiveLimiter:
    """At most ``limit`` attempts in flight; ``limit`` follows the server's quota, never
    above ``maximum``."""

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.threshold = self.maximum
        self.active = 0
        self.peak = 0
        self.successes = 0  # ever: a request refused while others succeed met a busy server
        self.refusals = 0
        self.epoch = 0  # one more each time a burst of refusals starts
        self._grown = 0  # successes since the limit last grew, above the threshold
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = 0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def acquire(self, priority: float = 0.0) -> Ticket:
        """Wait for a slot; lower ``priority`` first, then first come first served."""
        if self.active < self.limit and not self._waiting:
            self._take()
            return Ticket(self.epoch, self.successes)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._order += 1
        heapq.heappush(self._waiting, (priority, self._order, future))
        self._dispatch()  # a free slot behind cancelled waiters only: nobody would wake us
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted as it was cancelled
                self.release()
            raise
        return Ticket(self.epoch, self.successes)

    def release(self) -> None:
        """The attempt is over (whatever its outcome): its slot goes to the next waiter."""
        self.active -= 1
        self._dispatch()

    def succeeded(self) -> None:
        self.successes += 1
        if self.limit >= self.maximum:
            return
        if self.limit < self.threshold:
            self.limit += 1
        else:
            self._grown += 1
            if self._grown >= self.limit:
                self.limit += 1
                self._grown = 0
        self._dispatch()

    def refused(self, ticket: Ticket) -> None:
        """A 429 for the attempt holding ``ticket`` (before it releases its slot, so that
        no waiter takes it first): the server holds the others still in flight, so that
        many is the limit now."""
        self.refusals += 1
        if ticket.epoch == self.epoch:  # the first refusal of attempts made at this limit
            self.epoch += 1
            self.threshold = max(1, self.limit // 2)
        self.limit = max(1, min(self.limit, self.active - 1))
        self._grown = 0

    def refused_elsewhere(self) -> None:
        """A 429 for a call that took no slot (a test's own): the server is full with what
        is in flight here, and that call."""
        self.refusals += 1
        self.limit = max(1, min(self.limit, self.active))
        self._grown = 0

    def _take(self) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)

    def _dispatch(self) -> None:
        while self._waiting and self.active < self.limit:
            _, _, future = heapq.heappop(self._waiting)
            if future.cancelled():
                continue
            self._take()
            future.set_result(None)
