"""The data phase of a transfer, both ends: ``BlockSender`` (DATA out, ACKs in) and
``BlockReceiver`` (DATA in, ACKs out), with windows (RFC 7440), retransmission by deadline and
16-bit block numbers that wrap to 0.

Blocks are counted from 1 with unbounded integers; only the wire carries ``block & 0xFFFF``.
The sender never answers an ACK that acknowledges nothing new, so duplicated ACKs cannot double the
traffic (the Sorcerer's Apprentice bug of RFC 1350): only a deadline retransmits.
"""

from __future__ import annotations

from typing import Protocol

from ._options import TransferOptions

#: What the data phase hands back to send: buffers valid until the next call on the same object.
Datagrams = list[bytes | memoryview]

_NOTHING: Datagrams = []


class BlockSource(Protocol):
    """Where a sender's bytes come from (a file, a rendered template)."""

    def readinto(self, buffer: memoryview, /) -> int:
        """Fill ``buffer``; fewer bytes than its length only at the end."""
        ...


class BlockSink(Protocol):
    """Where a receiver's bytes go."""

    def write(self, data: memoryview, /) -> object:
        """Take one block's payload (the view is only valid during the call)."""
        ...


def ack_packet(block: int) -> bytes:
    """An ACK for ``block`` (any integer; the wire carries the low 16 bits)."""
    return b"\0\4" + (block & 0xFFFF).to_bytes(2, "big")


class BlockSender:
    """Sends a source in blocks, ``windowsize`` at a time, and advances on ACKs.

    Each window slot owns one preallocated buffer, filled in place, so a transfer allocates
    nothing per block beyond a view of its final, short block; a retransmission resends the
    buffers without reading the source again.
    """

    __slots__ = (
        "_acked",
        "_full",
        "_last",
        "_lengths",
        "_payloads",
        "_sent",
        "_slots",
        "_source",
        "_timeout",
        "_tries",
        "_window",
        "blksize",
        "deadline",
        "done",
        "failed",
        "retries",
        "size",
    )

    def __init__(self, source: BlockSource, options: TransferOptions, *, retries: int) -> None:
        self._source = source
        self.blksize = options.blksize
        self._window = options.windowsize
        self._timeout = options.timeout
        self.retries = retries
        self._slots = [bytearray(4 + self.blksize) for _ in range(self._window)]
        full = [memoryview(slot) for slot in self._slots]
        self._full = full
        self._payloads = [view[4:] for view in full]
        self._lengths = [0] * self._window
        self._acked = 0  # every block up to this one is acknowledged
        self._sent = 0  # highest block read from the source
        self._last: int | None = None  # the final (short) block, once read
        self._tries = 0
        self.deadline: float | None = None
        self.done = False
        self.failed = False
        #: bytes read from the source so far
        self.size = 0

    def start(self, now: float) -> Datagrams:
        """The first window."""
        return self._send_window(now)

    def _send_window(self, now: float) -> Datagrams:
        out: Datagrams = []
        window = self._window
        block = self._acked + 1
        stop = self._acked + window if self._last is None else min(self._last, self._acked + window)
        while block <= stop:
            slot = block % window
            if block > self._sent:
                buf = self._slots[slot]
                buf[0] = 0
                buf[1] = 3
                buf[2] = (block >> 8) & 0xFF
                buf[3] = block & 0xFF
                n = self._source.readinto(self._payloads[slot])
                self._lengths[slot] = n
                self._sent = block
                self.size += n
                if n < self.blksize:
                    self._last = block
                    stop = block
            n = self._lengths[slot]
            out.append(self._full[slot] if n == self.blksize else self._full[slot][: 4 + n])
            block += 1
        self.deadline = now + self._timeout
        return out

    def on_ack(self, block: int, now: float) -> Datagrams:
        """An ACK for wire block ``block``: the next window if it acknowledges anything new."""
        if self.done or self.failed:
            return _NOTHING
        advance = (block - self._acked) & 0xFFFF
        if advance == 0 or advance > self._sent - self._acked:
            return _NOTHING  # a duplicate or a stale ACK: never answered
        self._acked += advance
        self._tries = 0
        if self._acked == self._last:
            self.done = True
            self.deadline = None
            return _NOTHING
        return self._send_window(now)

    def on_timeout(self, now: float) -> Datagrams:
        """The deadline passed: resend the unacknowledged window, or give up."""
        if self.done or self.failed or self.deadline is None or now < self.deadline:
            return _NOTHING
        self._tries += 1
        if self._tries > self.retries:
            self.failed = True
            self.deadline = None
            return _NOTHING
        return self._send_window(now)


class BlockReceiver:
    """Takes DATA in order into a sink and acknowledges each window (each block when it is 1).

    A block ahead of the expected one (a loss inside a window) gets one ACK of the last block
    received, so the sender resends from there; a block already received is answered with that
    ACK only at a window boundary, where it means the sender missed the last ACK.
    """

    __slots__ = (
        "_expected",
        "_gap_acked",
        "_in_window",
        "_sink",
        "_timeout",
        "_tries",
        "_window",
        "blksize",
        "deadline",
        "done",
        "failed",
        "retries",
        "size",
    )

    def __init__(
        self, sink: BlockSink, options: TransferOptions, *, retries: int, now: float
    ) -> None:
        self._sink = sink
        self.blksize = options.blksize
        self._window = options.windowsize
        self._timeout = options.timeout
        self.retries = retries
        self._expected = 1
        self._in_window = 0
        self._gap_acked = False
        self._tries = 0
        self.deadline: float | None = now + self._timeout
        self.done = False
        self.failed = False
        #: bytes written to the sink so far
        self.size = 0

    def on_data(self, block: int, payload: memoryview, now: float) -> Datagrams:
        """DATA for wire block ``block``; raises ``ValueError`` if the payload is too long."""
        if self.failed:
            return _NOTHING
        if not self.done and block == self._expected & 0xFFFF:
            if len(payload) > self.blksize:
                raise ValueError(f"DATA of {len(payload)} octets, blksize is {self.blksize}")
            self._sink.write(payload)
            self.size += len(payload)
            self._expected += 1
            self._tries = 0
            self._gap_acked = False
            self.deadline = now + self._timeout
            if len(payload) < self.blksize:
                self.done = True
                self._in_window = 0
                self.deadline = None
                return [ack_packet(self._expected - 1)]
            self._in_window += 1
            if self._in_window >= self._window:
                self._in_window = 0
                return [ack_packet(self._expected - 1)]
            return _NOTHING
        ahead = (block - self._expected) & 0xFFFF
        if not self.done and 0 < ahead < self._window:
            if self._gap_acked:
                return _NOTHING
            self._gap_acked = True
            self._in_window = 0
            return [ack_packet(self._expected - 1)]
        if self._in_window == 0:
            return [ack_packet(self._expected - 1)]
        return _NOTHING

    def on_timeout(self, now: float) -> Datagrams:
        """Nothing arrived in time: acknowledge the last block again, or give up."""
        if self.done or self.failed or self.deadline is None or now < self.deadline:
            return _NOTHING
        self._tries += 1
        if self._tries > self.retries:
            self.failed = True
            self.deadline = None
            return _NOTHING
        self._in_window = 0
        self.deadline = now + self._timeout
        return [ack_packet(self._expected - 1)]
