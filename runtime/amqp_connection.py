"""``AmqpConnection``: one AMQP 0-9-1 connection and channel, native to Trio.

Frames are built and parsed by pamqp (the framing library aiormq uses) and
travel over a Trio TCP or TLS stream: the handshake, one channel in confirm
mode, the synchronous methods ``AmqpBus`` needs, publishes with their
confirms and returns (a returned message is matched by its ``message_id``),
deliveries, multiple acks, heartbeats and the close handshake.

Why not aiormq: it needs an asyncio loop. On trio-asyncio's loop it ran 3-4x
slower; on a stock loop in a thread, every message crossed between the threads
(70-80 us a crossing on a loaded 2-core VM), and a sequential call crossed four
times, twice in each process. Measured per call between two processes, that
design took 1.60 ms, 250 us of it crossing, against about 1.1 ms for plain
asyncio with aiormq: 0.46-0.71 of its call rate, 0.68 with 32 concurrent
callers, 0.59-0.80 publishing then consuming with confirms. Here a call takes
0.91 ms: the reader task settles a waiting call or publish straight from the
frame, and a caller writes straight to the socket while few publishes are in
flight (a writer task's turn cost another 65 us a side); under load the writer
task joins writes into one ``send_all``, and acks into one ``multiple`` ack
(20,000 deliveries took 1,267 socket writes instead of 19,935). In
``benchmarks/bench_amqp.py``, against plain asyncio and aiormq, that gives
1.1-2.3x end to end with confirms, 1.0-1.6x for sequential calls and 1.4-1.9x
with 32 concurrent callers.

The connection is built in layers, one module each: ``amqp_wire`` (frames,
``AmqpMessage``, ``AmqpClosed``), ``amqp_handshake`` (opening), ``amqp_transport``
(reader, writer, joined acks, heartbeats), ``amqp_channel`` (synchronous
methods and consumers), ``amqp_confirms`` (publisher confirms and returns);
this module ties them into the connection's life cycle, says what each
incoming frame means, and publishes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio
from pamqp import frame as amqp_frame
from pamqp.body import ContentBody
from pamqp.commands import Basic, Channel, Connection
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from .amqp_channel import AmqpChannel
from .amqp_confirms import OnConfirm, Outcome, PublisherConfirms
from .amqp_handshake import Handshake, open_stream
from .amqp_url import AmqpAddress
from .amqp_wire import CHANNEL, FRAME_OVERHEAD, AmqpClosed, AmqpMessage, stream_failure

__all__ = ["AmqpClosed", "AmqpConnection", "AmqpMessage", "OnConfirm", "Outcome", "stream_failure"]

log = logging.getLogger("rackbus.amqp")

DIRECT_WRITE_LIMIT = 4
"""With this many publishes unconfirmed or more, new ones wait for the writer task to join them."""


class AmqpConnection(AmqpChannel):
    """One connection with one channel; ``await nursery.start(conn.run, timeout)``."""

    def __init__(self, address: AmqpAddress) -> None:
        super().__init__()
        self.address = address
        query = address.url.query
        self.heartbeat = int(query.get("heartbeat", "60"))
        self.frame_max = 131_072
        self._scope = trio.CancelScope(shield=True)
        self._confirms = PublisherConfirms()
        self._content: AmqpMessage | None = None
        self._content_return = False
        self._content_consumer = ""
        self._content_left = 0
        self._content_parts: list[bytes] = []

    # -- life cycle -----------------------------------------------------------------

    async def run(
        self,
        connect_timeout: float,
        *,
        task_status: trio.TaskStatus[AmqpConnection] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Connect and open the channel, then serve the connection until it ends.

        Errors while connecting are raised; once started, the connection runs
        shielded from outside cancellation until it fails, ``aclose()`` or
        ``abort()``; then ``closed`` is set and ``error`` says why.
        """
        handshake = Handshake(self.address, heartbeat=self.heartbeat, frame_max=self.frame_max)
        with trio.fail_after(connect_timeout):
            stream = await open_stream(self.address)
            try:
                await handshake.run(stream, self._buffer)
            except BaseException as exc:
                await trio.aclose_forcefully(stream)
                if isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError):
                    # an OSError, as for a refused connection: callers retry both alike
                    raise ConnectionError(handshake.failure(exc)) from exc
                raise
            finally:
                self.heartbeat, self.frame_max = handshake.heartbeat, handshake.frame_max
        self._stream = stream
        if isinstance(stream, trio.SocketStream):
            self._fd = stream.socket.fileno()
        self._last_received = self._last_sent = trio.current_time()
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._guard, self._reader)
                    nursery.start_soon(self._guard, self._writer)
                    if self.heartbeat:
                        nursery.start_soon(self._guard, self._beat)
                    task_status.started(self)
        finally:
            self._end(self.error or "connection aborted")
            await trio.aclose_forcefully(stream)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Close politely (``connection.close``), then abort after ``timeout`` seconds."""
        if not self.closed.is_set() and self._end_reason is None:
            self._end_reason = "closed"
            self._send_method(
                Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0),
                channel=0,
            )
            with trio.move_on_after(timeout):
                await self.closed.wait()
        self.abort()

    def abort(self, reason: str = "connection aborted") -> None:
        """End the connection now."""
        if not self.error:
            self.error = reason
        self._scope.cancel()

    async def _guard(self, task: Callable[[], Any]) -> None:
        try:
            await task()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._end(f"connection lost: {stream_failure(exc)}")
        except AmqpClosed as exc:
            self._end(str(exc))
        except Exception as exc:
            log.exception("AMQP connection failed")
            self._end(f"connection failed: {exc!r}")

    def _end(self, reason: str) -> None:
        """Fail everything waiting on this connection and stop its tasks."""
        if self.closed.is_set():
            return
        if not self.error:
            self.error = reason
        self._fd = None  # the descriptor is closed next, and its number may be reused
        self._scope.cancel()
        self._fail_waiters(AmqpClosed(self.error))
        unconfirmed = self._confirms.take_all()
        self.closed.set()
        for on_confirm in unconfirmed:
            on_confirm(Outcome.LOST)

    # -- incoming frames ------------------------------------------------------------

    def _on_frame(self, channel: int, value: Any) -> None:
        if self._content is not None:
            self._on_content(value)
        elif isinstance(value, Basic.Deliver):
            self._content = AmqpMessage(
                value.exchange or "",
                value.routing_key or "",
                Basic.Properties(),
                b"",
                value.delivery_tag or 0,
                bool(value.redelivered),
            )
            self._content_return = False
            self._content_consumer = value.consumer_tag or ""
        elif isinstance(value, Basic.Ack):
            self._confirms.on_confirm(value.delivery_tag, value.multiple, Outcome.ACKED)
        elif isinstance(value, Basic.Nack):
            self._confirms.on_confirm(value.delivery_tag, value.multiple, Outcome.NACKED)
        elif isinstance(value, Basic.Return):
            self._content = AmqpMessage(
                value.exchange or "", value.routing_key or "", Basic.Properties(), b""
            )
            self._content_return = True
        elif isinstance(value, Heartbeat):
            pass
        elif isinstance(value, Connection.Close):
            self._close_from_broker(f"{value.reply_code} {value.reply_text}", channel=0)
        elif isinstance(value, Channel.Close):
            self._fail_waiter(f"{value.reply_code} {value.reply_text}", value.reply_code or 0)
            self._close_from_broker(
                f"channel closed by the broker: {value.reply_code} {value.reply_text}",
                channel=CHANNEL,
            )
        elif isinstance(value, Connection.CloseOk):
            self._end(self.error or "closed")
        elif isinstance(value, Basic.Cancel):
            self._cancelled(value.consumer_tag)
        elif isinstance(value, Channel.Flow):
            self._send_method(Channel.FlowOk(active=value.active))
        elif isinstance(value, Connection.Blocked | Connection.Unblocked):
            log.warning("broker: %s", value.name)
        elif not self._answer(value):
            log.debug("ignored %r", value)

    def _on_content(self, value: Any) -> None:
        message = self._content
        assert message is not None
        if isinstance(value, ContentHeader):
            message.properties = value.properties
            self._content_left = value.body_size
            self._content_parts = []
        elif isinstance(value, ContentBody):
            self._content_parts.append(value.value)
            self._content_left -= len(value.value)
        else:
            raise AmqpClosed(f"unexpected {getattr(value, 'name', value)!r} inside a message")
        if self._content_left > 0:
            return
        parts = self._content_parts
        message.body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._content_parts = []
        self._content = None
        if self._content_return:
            self._confirms.on_return(message.properties.message_id or "")
            return
        callback = self._consumers.get(self._content_consumer)
        if callback is not None:
            callback(message)

    def _close_from_broker(self, reason: str, channel: int) -> None:
        if not self.error:
            self.error = reason
        self._end_reason = reason  # the writer ends the connection once the answer is out
        if channel:
            self._send_method(Channel.CloseOk(), channel)
        else:
            self._send_method(Connection.CloseOk(), 0)
        self._writer_idle.unpark_all()

    # -- publishing -----------------------------------------------------------------

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Basic.Properties,
        *,
        mandatory: bool,
        on_confirm: OnConfirm,
    ) -> None:
        """Send a message; ``on_confirm(outcome)`` runs once the broker settled it. What AMQP
        cannot encode (an exchange or key over 255 octets, an odd header value) raises here,
        with nothing sent."""
        if not self.is_open:
            on_confirm(Outcome.LOST)
            return
        confirms = self._confirms
        tag, message_id = confirms.next_tag(properties, mandatory=mandatory)
        try:
            frames = [
                amqp_frame.marshal(
                    Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
                    CHANNEL,
                ),
                amqp_frame.marshal(ContentHeader(0, len(body), properties), CHANNEL),
            ]
        except BaseException:  # an overlong name, a header value AMQP cannot carry
            confirms.withdraw(tag, message_id)
            raise
        chunk = self.frame_max - FRAME_OVERHEAD
        for offset in range(0, len(body), chunk):
            frames.append(amqp_frame.marshal(ContentBody(body[offset : offset + chunk]), CHANNEL))
        direct = len(confirms) < DIRECT_WRITE_LIMIT
        confirms.add(tag, on_confirm, message_id)
        self._write(b"".join(frames), direct=direct)
