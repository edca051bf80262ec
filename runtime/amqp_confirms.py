"""Publisher confirms: which publishes the broker has yet to settle, and how each ended.

The broker numbers the publishes on a confirm-mode channel and settles them
with ``basic.ack`` / ``basic.nack`` (one at a time or ``multiple`` up to a
tag). A mandatory publish nobody receives comes back first as ``basic.return``;
it is matched by its ``message_id``, and its confirm then reports ``RETURNED``.
"""

from __future__ import annotations

import enum
import uuid
from collections import OrderedDict
from collections.abc import Callable

from pamqp.commands import Basic


class Outcome(enum.Enum):
    """What became of a publish."""

    ACKED = "acked"
    RETURNED = "returned"
    NACKED = "nacked"
    LOST = "lost"


OnConfirm = Callable[[Outcome], None]


class PublisherConfirms:
    """The unconfirmed publishes of one channel, by delivery tag, in publish order."""

    __slots__ = ("_message_ids", "_publish_tag", "_returned", "unconfirmed")

    def __init__(self) -> None:
        self.unconfirmed: OrderedDict[int, OnConfirm] = OrderedDict()
        self._message_ids: dict[str, int] = {}
        self._returned: set[int] = set()
        self._publish_tag = 0

    def __len__(self) -> int:
        return len(self.unconfirmed)

    def next_tag(self, properties: Basic.Properties, *, mandatory: bool) -> tuple[int, str]:
        """Number the next publish; a mandatory one gets a ``message_id`` (unless it has one)
        to match a return by. Returns the tag and that id (``""`` when not mandatory)."""
        self._publish_tag += 1
        tag = self._publish_tag
        message_id = ""
        if mandatory:
            message_id = properties.message_id = properties.message_id or uuid.uuid4().hex
            self._message_ids[message_id] = tag
        return tag, message_id

    def withdraw(self, tag: int, message_id: str) -> None:
        """Take back the tag ``next_tag`` just gave, for a publish that was never sent (the
        broker numbers only what it receives, so a gap would shift every later confirm)."""
        assert tag == self._publish_tag, "only the latest tag can be withdrawn"
        self._publish_tag -= 1
        if message_id and self._message_ids.get(message_id) == tag:
            del self._message_ids[message_id]

    def add(self, tag: int, on_confirm: OnConfirm, message_id: str) -> None:
        """Wait for the broker to settle publish ``tag``; then ``on_confirm(outcome)`` runs."""
        self.unconfirmed[tag] = on_confirm
        if message_id:
            self._track_return(tag, message_id)

    def _track_return(self, tag: int, message_id: str) -> None:
        # forget the message id once confirmed: wrap the callback
        on_confirm = self.unconfirmed[tag]
        message_ids = self._message_ids

        def confirmed(outcome: Outcome) -> None:
            if message_ids.get(message_id) == tag:
                del message_ids[message_id]
            on_confirm(outcome)

        self.unconfirmed[tag] = confirmed

    def on_return(self, message_id: str) -> None:
        """The broker returned a mandatory publish: its confirm reports ``RETURNED``."""
        tag = self._message_ids.pop(message_id, None)
        if tag is not None and tag in self.unconfirmed:
            self._returned.add(tag)

    def on_confirm(self, tag: int, multiple: bool, outcome: Outcome) -> None:
        """The broker settled ``tag`` (and every one before it, if ``multiple``)."""
        unconfirmed = self.unconfirmed
        if multiple:
            settled = []
            while unconfirmed:
                first = next(iter(unconfirmed))
                if first > tag:
                    break
                settled.append((first, unconfirmed.popitem(last=False)[1]))
        else:
            on_confirm = unconfirmed.pop(tag, None)
            settled = [] if on_confirm is None else [(tag, on_confirm)]
        for done, on_confirm in settled:
            if self._returned and done in self._returned:
                self._returned.discard(done)
                on_confirm(Outcome.RETURNED)
            else:
                on_confirm(outcome)

    def take_all(self) -> list[OnConfirm]:
        """Forget every unconfirmed publish (the channel is gone); their callbacks, in order."""
        unconfirmed, self.unconfirmed = self.unconfirmed, OrderedDict()
        return list(unconfirmed.values())
