"""``Mailbox``: the bounded queue in front of an actor.

A full mailbox makes senders wait (backpressure) unless the actor opted into
another ``Overflow`` policy. Control messages (stop, cancel) go into their own
lane, ahead of ordinary ones, and are never dropped or rejected. One queue per
mailbox keeps every sender's messages in the order it sent them.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from .errors import MailboxClosed, MailboxFull

CONTROL_CAPACITY = 1024
"""Control messages queued beyond this make their senders wait; they are never dropped."""


class Overflow(enum.Enum):
    """What a full mailbox does with one more message."""

    BLOCK = "block"
    """The sender waits until there is room (the default)."""
    REJECT = "reject"
    """The message is refused at once: an in-process sender gets ``MailboxFull`` (unless
    another consumer took the same publish), a caller ``RemoteError`` 503, and a delivery
    from the broker is counted as refused and acknowledged."""
    DROP_OLDEST = "drop_oldest"
    """The oldest ordinary message is dropped and counted (for telemetry streams)."""


class Mailbox:
    """A bounded FIFO with a control lane; ``on_put`` is called after every put."""

    __slots__ = (
        "_closed",
        "_control",
        "_items",
        "_on_put",
        "_waiting_senders",
        "capacity",
        "dropped",
        "overflow",
        "owner",
        "rejected",
    )

    def __init__(
        self,
        owner: str,
        capacity: int,
        overflow: Overflow,
        on_put: Callable[[], None],
    ) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be at least 1, got {capacity}")
        self.owner = owner
        self.capacity = capacity
        self.overflow = overflow
        self._on_put = on_put
        self._items: deque[Any] | None = None
        self._control: deque[Any] | None = None
        self._waiting_senders: trio.lowlevel.ParkingLot | None = None
        self._closed = False
        self.dropped = 0
        self.rejected = 0

    def __len__(self) -> int:
        return (len(self._items) if self._items else 0) + (
            len(self._control) if self._control else 0
        )

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    async def put(self, item: Any, deadline: float = math.inf) -> None:
        """Queue ``item``; wait while full; ``trio.TooSlowError`` past ``deadline``."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise MailboxClosed(f"mailbox of {self.owner} is closed")
        items = self._items
        if items is None:
            items = self._items = deque()
        if len(items) < self.capacity and not self._waiting_senders:
            items.append(item)
            self._on_put()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        if self.overflow is Overflow.REJECT:
            self.rejected += 1
            raise MailboxFull(self.owner, self.capacity)
        if self.overflow is Overflow.DROP_OLDEST:
            while len(items) >= self.capacity:
                items.popleft()
                self.dropped += 1
            items.append(item)
            self._on_put()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        await self._wait_for_room(lambda: len(items) < self.capacity, deadline)
        items.append(item)
        self._on_put()

    async def put_control(self, item: Any, deadline: float = math.inf) -> None:
        """Queue a control message ahead of ordinary ones; never dropped or rejected."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise MailboxClosed(f"mailbox of {self.owner} is closed")
        control = self._control
        if control is None:
            control = self._control = deque()
        if len(control) >= CONTROL_CAPACITY:
            await self._wait_for_room(lambda: len(control) < CONTROL_CAPACITY, deadline)
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
        control.append(item)
        self._on_put()

    async def _wait_for_room(self, has_room: Callable[[], bool], deadline: float) -> None:
        lot = self._waiting_senders
        if lot is None:
            lot = self._waiting_senders = trio.lowlevel.ParkingLot()
        with trio.fail_at(deadline):
            while True:
                await lot.park()
                if self._closed:
                    raise MailboxClosed(f"mailbox of {self.owner} is closed")
                if has_room():
                    return

    def get_nowait(self) -> Any:
        """Take the next item, control messages first; ``trio.WouldBlock`` when empty."""
        if self._control:
            item = self._control.popleft()
        elif self._items:
            item = self._items.popleft()
        else:
            raise trio.WouldBlock
        if self._waiting_senders:
            self._waiting_senders.unpark()
        return item

    def drain(self) -> list[Any]:
        """Take every queued item at once (control messages first)."""
        taken = list(self._control or ()) + list(self._items or ())
        if self._control:
            self._control.clear()
        if self._items:
            self._items.clear()
        if self._waiting_senders:
            self._waiting_senders.unpark_all()
        return taken

    def close(self) -> None:
        """Refuse new items; senders still waiting get ``MailboxClosed``."""
        self._closed = True
        if self._waiting_senders:
            self._waiting_senders.unpark_all()
