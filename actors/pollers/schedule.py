"""``PollSchedule``: when a poller polls next, and whether its node answers.

RackHD's work-item rules: after a success the next poll is one interval away;
after the n-th failure in a row it is ``min(interval * 2**n, 1 h)`` away. A node
starts accessible; the first failure makes it inaccessible and the next success
accessible again, each change reported once.
"""

from __future__ import annotations

import enum

import attrs

MAX_BACKOFF = 3600.0
"""The longest wait between polls of a failing poller, in seconds."""


class Change(enum.Enum):
    """What a poll's outcome did to the node's reachability."""

    NONE = "none"
    BECAME_ACCESSIBLE = "accessible"
    BECAME_INACCESSIBLE = "inaccessible"


@attrs.define
class PollSchedule:
    """A poller's timing state; ``succeeded``/``failed`` return (next due time, change)."""

    interval: float = attrs.field(validator=attrs.validators.gt(0))
    failures: int = 0
    accessible: bool = True

    def succeeded(self, now: float) -> tuple[float, Change]:
        """The poll answered: back to the plain interval."""
        self.failures = 0
        change = Change.NONE if self.accessible else Change.BECAME_ACCESSIBLE
        self.accessible = True
        return now + self.interval, change

    def failed(self, now: float) -> tuple[float, Change]:
        """The poll failed: wait twice as long as last time, up to ``MAX_BACKOFF``."""
        self.failures += 1
        change = Change.BECAME_INACCESSIBLE if self.accessible else Change.NONE
        self.accessible = False
        return now + self.backoff(), change

    def backoff(self) -> float:
        """The wait after the current run of failures."""
        if self.failures == 0:
            return self.interval
        return min(self.interval * 2.0 ** min(self.failures, 64), MAX_BACKOFF)
