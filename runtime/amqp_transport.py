"""The bytes of an AMQP connection: frames split off the stream by a reader task,
frames written straight from the caller or joined by a writer task, delivery
acks joined into one ``multiple`` ack, and heartbeats both ways.

``AmqpTransport`` is the base of ``AmqpConnection``, which says what a frame
means (``_on_frame``) and how the connection ends (``_end``).
"""

from __future__ import annotations

import os
from typing import Any

import trio
from pamqp import frame as amqp_frame
from pamqp.base import Frame
from pamqp.commands import Basic

from .amqp_wire import (
    CHANNEL,
    FRAME_OVERHEAD,
    FRAME_PREFIX,
    HEARTBEAT_FRAME,
    READ_SIZE,
    AmqpClosed,
)

ACK_DELAY = 0.002
"""Seconds a lone ack waits for more deliveries to settle, so that one frame acks them all."""


class AmqpTransport:
    """The reader, writer and heartbeat tasks of one connection, and its end state."""

    heartbeat: int
    """Seconds between heartbeats, as agreed with the broker (0: none); set by the connection."""

    def __init__(self) -> None:
        self.closed = trio.Event()
        self.error = ""
        """Why the connection ended, once ``closed`` is set."""
        self._end_reason: str | None = None
        self._stream: trio.abc.Stream | None = None
        self._fd: int | None = None
        """The socket, for writes straight from the caller (plain TCP only)."""
        self._writing = False
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._writer_idle = trio.lowlevel.ParkingLot()
        self._ack_upto = 0
        self._acks_waiting = 0
        self.ack_batch = 64
        """Settled deliveries that make an ack go out without waiting ``ACK_DELAY``."""
        self._last_received = 0.0
        self._last_sent = 0.0

    @property
    def is_open(self) -> bool:
        """Whether publishes and methods can still go out."""
        return self._end_reason is None and not self.closed.is_set()

    def _on_frame(self, channel: int, value: Any) -> None:
        """Handle a frame from the broker (in the reader task)."""
        raise NotImplementedError

    def _end(self, reason: str) -> None:
        """Fail everything waiting on this connection and stop its tasks."""
        raise NotImplementedError

    # -- writing --------------------------------------------------------------------

    def _send_method(self, method: Frame, channel: int = CHANNEL) -> None:
        self._write(amqp_frame.marshal(method, channel))

    def _write(self, data: bytes, *, direct: bool = True) -> None:
        """Send ``data`` now if the socket takes it, else leave (the rest) to the writer task.

        A write straight from the caller saves the writer task's turn, a good
        part of a call's round trip; it is only tried while the writer has
        nothing queued, so bytes never overtake each other. Under load
        (``direct=False``) one write per writer turn costs less than one each.
        """
        if direct and self._fd is not None and not self._writing and not self._out:
            try:
                sent = os.write(self._fd, data)
            except OSError:  # would block, or broken: the writer finds out which
                sent = 0
            if sent == len(data):
                self._last_sent = trio.current_time()
                return
            data = data[sent:]
        self._out.append(data)
        self._writer_idle.unpark_all()

    async def _writer(self) -> None:
        stream = self._stream
        assert stream is not None
        out = self._out
        while True:
            if self._ack_upto and not out and self._acks_waiting < self.ack_batch:
                with trio.move_on_after(ACK_DELAY):
                    await self._writer_idle.park()
            if self._ack_upto:
                out.append(
                    amqp_frame.marshal(
                        Basic.Ack(delivery_tag=self._ack_upto, multiple=True), CHANNEL
                    )
                )
                self._ack_upto = 0
                self._acks_waiting = 0
            if not out:
                if self._end_reason is not None and self._end_reason != "closed":
                    self._end(self._end_reason)
                await self._writer_idle.park()
                continue
            data = b"".join(out) if len(out) > 1 else out[0]
            out.clear()
            self._writing = True
            await stream.send_all(data)
            self._writing = False
            self._last_sent = trio.current_time()

    async def _beat(self) -> None:
        interval = self.heartbeat / 2
        while True:
            await trio.sleep(interval)
            now = trio.current_time()
            if now - self._last_received > 2 * self.heartbeat:
                raise AmqpClosed(f"no heartbeat from the broker for {2 * self.heartbeat} s")
            if now - self._last_sent >= interval:
                self._write(HEARTBEAT_FRAME)

    def ack(self, delivery_tag: int) -> None:
        """Acknowledge every delivery up to ``delivery_tag``.

        Acks are joined: one ``multiple`` ack goes out once ``ack_batch``
        deliveries settled, with other writes, or ``ACK_DELAY`` after the first.
        """
        if self.closed.is_set():
            return
        self._ack_upto = max(self._ack_upto, delivery_tag)
        self._acks_waiting += 1
        if self._acks_waiting == 1 or self._acks_waiting >= self.ack_batch:
            self._writer_idle.unpark_all()

    # -- reading --------------------------------------------------------------------

    async def _reader(self) -> None:
        stream = self._stream
        assert stream is not None
        buffer = self._buffer
        unpack = FRAME_PREFIX.unpack_from
        unmarshal = amqp_frame.unmarshal
        while True:
            start = 0
            length = len(buffer)
            while length - start >= FRAME_OVERHEAD:
                _, channel, size = unpack(buffer, start)
                end = start + size + FRAME_OVERHEAD
                if end > length:
                    break
                _, channel, value = unmarshal(bytes(buffer[start:end]))
                start = end
                self._on_frame(channel, value)
            if start:
                del buffer[:start]
            data = await stream.receive_some(READ_SIZE)
            if not data:
                raise AmqpClosed("the broker closed the connection")
            self._last_received = trio.current_time()
            buffer += data
