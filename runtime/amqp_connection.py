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
"""

from __future__ import annotations

import enum
import logging
import os
import re
import ssl
import struct
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import trio
from pamqp import frame as amqp_frame
from pamqp.base import Frame
from pamqp.body import ContentBody
from pamqp.commands import Basic, Channel, Confirm, Connection, Exchange, Queue
from pamqp.common import FieldTable
from pamqp.header import ContentHeader, ProtocolHeader
from pamqp.heartbeat import Heartbeat

from .amqp_url import AmqpAddress

log = logging.getLogger("rackbus.amqp")

CHANNEL = 1
FRAME_PREFIX = struct.Struct(">BHI")
FRAME_OVERHEAD = 8
READ_SIZE = 1 << 16
HEARTBEAT_FRAME = Heartbeat.marshal()
ACK_DELAY = 0.002
"""Seconds a lone ack waits for more deliveries to settle, so that one frame acks them all."""
DIRECT_WRITE_LIMIT = 4
"""With this many publishes unconfirmed or more, new ones wait for the writer task to join them."""
CLIENT_PROPERTIES: FieldTable = {
    "product": "rackbus",
    "capabilities": {
        "publisher_confirms": True,
        "basic.nack": True,
        "consumer_cancel_notify": True,
        "connection.blocked": True,
        "authentication_failure_close": True,
    },
}


class AmqpClosed(Exception):
    """The connection is gone (or the broker closed the channel); ``str()`` says why."""

    def __init__(self, reason: str, code: int = 0) -> None:
        super().__init__(reason)
        self.code = code


def stream_failure(exc: BaseException) -> str:
    """Why a stream broke, for people: Trio wraps TLS failures in a bare ``BrokenResourceError``,
    so a TLS cause is named instead (``certificate verify failed: ...``)."""
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        detail = re.sub(r"^\[[^]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", str(cause))
        return f"TLS: {detail or cause.reason or type(cause).__name__}"
    return str(exc) or str(cause or "") or type(exc).__name__


class Outcome(enum.Enum):
    """What became of a publish."""

    ACKED = "acked"
    RETURNED = "returned"
    NACKED = "nacked"
    LOST = "lost"


OnConfirm = Callable[[Outcome], None]


class AmqpMessage:
    """A message delivered or returned by the broker."""

    __slots__ = ("body", "delivery_tag", "exchange", "properties", "redelivered", "routing_key")

    def __init__(
        self,
        exchange: str,
        routing_key: str,
        properties: Basic.Properties,
        body: bytes,
        delivery_tag: int = 0,
        redelivered: bool = False,
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.properties = properties
        self.body = body
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered


class _Waiter:
    """A synchronous method waiting for the broker's answer."""

    __slots__ = ("error", "event", "replies", "result")

    def __init__(self, replies: tuple[type[Frame], ...]) -> None:
        self.replies = replies
        self.event = trio.Event()
        self.result: Frame | None = None
        self.error: AmqpClosed | None = None


class AmqpConnection:
    """One connection with one channel; ``await nursery.start(conn.run, timeout)``."""

    def __init__(self, address: AmqpAddress) -> None:
        self.address = address
        query = address.url.query
        self.heartbeat = int(query.get("heartbeat", "60"))
        self.frame_max = 131_072
        #: how far the handshake got: the TLS handshake (amqps), the broker's ``Connection.Start``
        self._tls_done = False
        self._greeted = False
        self.closed = trio.Event()
        self.error = ""
        """Why the connection ended, once ``closed`` is set."""
        self._stream: trio.abc.Stream | None = None
        self._fd: int | None = None
        """The socket, for writes straight from the caller (plain TCP only)."""
        self._writing = False
        self._scope = trio.CancelScope(shield=True)
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._writer_idle = trio.lowlevel.ParkingLot()
        self._ack_upto = 0
        self._acks_waiting = 0
        self.ack_batch = 64
        """Settled deliveries that make an ack go out without waiting ``ACK_DELAY``."""
        self._end_reason: str | None = None
        self._waiters: deque[_Waiter] = deque()
        self._consumers: dict[str, Callable[[AmqpMessage], None]] = {}
        self._on_cancel: dict[str, Callable[[], None]] = {}
        self._unconfirmed: OrderedDict[int, OnConfirm] = OrderedDict()
        self._message_ids: dict[str, int] = {}
        self._returned: set[int] = set()
        self._publish_tag = 0
        self._consumer_count = 0
        self._last_received = 0.0
        self._last_sent = 0.0
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
        with trio.fail_after(connect_timeout):
            stream = await self._open_stream()
            try:
                await self._handshake(stream)
            except BaseException as exc:
                await trio.aclose_forcefully(stream)
                if isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError):
                    # an OSError, as for a refused connection: callers retry both alike
                    raise ConnectionError(self._handshake_failure(exc)) from exc
                raise
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

    @property
    def is_open(self) -> bool:
        """Whether publishes and methods can still go out."""
        return self._end_reason is None and not self.closed.is_set()

    def abort(self, reason: str = "connection aborted") -> None:
        """End the connection now."""
        if not self.error:
            self.error = reason
        self._scope.cancel()

    async def _open_stream(self) -> trio.abc.Stream:
        url = self.address.url
        host = url.host or "localhost"
        if url.scheme == "amqps":
            return await trio.open_ssl_over_tcp_stream(
                host,
                url.explicit_port or 5671,
                ssl_context=self.address.ssl_context,
            )
        return await trio.open_tcp_stream(host, url.explicit_port or 5672)

    def _handshake_failure(self, exc: BaseException) -> str:
        reason = stream_failure(exc)
        if self._tls_done and not self._greeted and "TLS:" not in reason:
            # TLS 1.3 brokers refuse a client certificate after the client's side of the TLS
            # handshake is done, by closing the connection: no TLS error reaches the client
            reason += (
                " (the broker closed the connection before greeting: it may not accept the"
                " client certificate, see certfile and keyfile)"
            )
        return reason

    async def _handshake(self, stream: trio.abc.Stream) -> None:
        url = self.address.url
        if isinstance(stream, trio.SSLStream):
            await stream.do_handshake()
            self._tls_done = True
        await stream.send_all(ProtocolHeader().marshal())
        start = await self._expect(stream, Connection.Start)
        self._greeted = True
        mechanisms = start.mechanisms.split() if start.mechanisms else []
        if "PLAIN" not in mechanisms:
            raise AmqpClosed(f"the broker offers no PLAIN login ({start.mechanisms})")
        login = f"\0{url.user or 'guest'}\0{url.password or 'guest'}"
        ok = Connection.StartOk(client_properties=CLIENT_PROPERTIES, response=login)
        await stream.send_all(amqp_frame.marshal(ok, 0))
        tune = await self._expect(stream, Connection.Tune)
        if tune.frame_max:
            self.frame_max = min(self.frame_max, tune.frame_max)
        if not self.heartbeat or not tune.heartbeat:
            self.heartbeat = self.heartbeat or tune.heartbeat
        else:
            self.heartbeat = min(self.heartbeat, tune.heartbeat)
        vhost = url.path[1:] or "/"
        await stream.send_all(
            amqp_frame.marshal(
                Connection.TuneOk(
                    channel_max=CHANNEL, frame_max=self.frame_max, heartbeat=self.heartbeat
                ),
                0,
            )
            + amqp_frame.marshal(Connection.Open(virtual_host=vhost), 0)
        )
        await self._expect(stream, Connection.OpenOk)
        await stream.send_all(amqp_frame.marshal(Channel.Open(), CHANNEL))
        await self._expect(stream, Channel.OpenOk)
        await stream.send_all(amqp_frame.marshal(Confirm.Select(), CHANNEL))
        await self._expect(stream, Confirm.SelectOk)

    async def _expect(self, stream: trio.abc.Stream, kind: type[Any]) -> Any:
        """The next method frame during the handshake, which must be a ``kind``."""
        while True:
            parsed = self._next_frame()
            if parsed is None:
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    raise AmqpClosed("the broker closed the connection during the handshake")
                self._buffer += data
                continue
            _, value = parsed
            if isinstance(value, kind):
                return value
            if isinstance(value, Connection.Close | Channel.Close):
                raise AmqpClosed(f"{value.reply_code} {value.reply_text}", value.reply_code or 0)
            if not isinstance(value, Heartbeat):
                raise AmqpClosed(f"unexpected {value.name} during the handshake")

    def _next_frame(self) -> tuple[int, Any] | None:
        buffer = self._buffer
        if len(buffer) < FRAME_OVERHEAD:
            return None
        _, channel, size = FRAME_PREFIX.unpack_from(buffer)
        end = size + FRAME_OVERHEAD
        if len(buffer) < end:
            return None
        _, channel, value = amqp_frame.unmarshal(bytes(buffer[:end]))
        del buffer[:end]
        return channel, value

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
        error = AmqpClosed(self.error)
        while self._waiters:
            waiter = self._waiters.popleft()
            waiter.error = error
            waiter.event.set()
        unconfirmed, self._unconfirmed = self._unconfirmed, OrderedDict()
        self.closed.set()
        for on_confirm in unconfirmed.values():
            on_confirm(Outcome.LOST)

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
                    amqp_frame.marshal(Basic.Ack(delivery_tag=self._ack_upto, multiple=True), 1)
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
            self._on_confirm(value.delivery_tag, value.multiple, Outcome.ACKED)
        elif isinstance(value, Basic.Nack):
            self._on_confirm(value.delivery_tag, value.multiple, Outcome.NACKED)
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
            self._consumers.pop(value.consumer_tag or "", None)
            on_cancel = self._on_cancel.pop(value.consumer_tag or "", None)
            log.info("the broker cancelled consumer %s", value.consumer_tag)
            if on_cancel is not None:
                on_cancel()
        elif isinstance(value, Channel.Flow):
            self._send_method(Channel.FlowOk(active=value.active))
        elif isinstance(value, Connection.Blocked | Connection.Unblocked):
            log.warning("broker: %s", value.name)
        elif self._waiters:
            waiter = self._waiters.popleft()
            if isinstance(value, waiter.replies):
                waiter.result = value
            else:
                waiter.error = AmqpClosed(f"unexpected answer {value.name}")
            waiter.event.set()
        else:
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
            self._on_return(message)
            return
        callback = self._consumers.get(self._content_consumer)
        if callback is not None:
            callback(message)

    def _on_return(self, message: AmqpMessage) -> None:
        tag = self._message_ids.pop(message.properties.message_id or "", None)
        if tag is not None and tag in self._unconfirmed:
            self._returned.add(tag)

    def _on_confirm(self, tag: int, multiple: bool, outcome: Outcome) -> None:
        unconfirmed = self._unconfirmed
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

    def _fail_waiter(self, reason: str, code: int) -> None:
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.error = AmqpClosed(reason, code)
            waiter.event.set()

    def _close_from_broker(self, reason: str, channel: int) -> None:
        if not self.error:
            self.error = reason
        self._end_reason = reason  # the writer ends the connection once the answer is out
        if channel:
            self._send_method(Channel.CloseOk(), channel)
        else:
            self._send_method(Connection.CloseOk(), 0)
        self._writer_idle.unpark_all()

    # -- the channel ----------------------------------------------------------------

    async def _call(self, method: Frame, *replies: type[Frame]) -> Any:
        if not self.is_open:
            raise AmqpClosed(self.error or "the connection is closing")
        waiter = _Waiter(replies)
        self._waiters.append(waiter)
        self._send_method(method)
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def exchange_declare(self, exchange: str) -> None:
        """Declare a durable topic exchange."""
        await self._call(
            Exchange.Declare(exchange=exchange, exchange_type="topic", durable=True),
            Exchange.DeclareOk,
        )

    async def queue_declare(
        self,
        queue: str = "",
        *,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> str:
        """Declare a queue; returns its name (the broker names it when ``queue`` is empty)."""
        ok = await self._call(
            Queue.Declare(
                queue=queue,
                durable=durable,
                exclusive=exclusive,
                auto_delete=auto_delete,
                arguments=arguments,
            ),
            Queue.DeclareOk,
        )
        return str(ok.queue)

    async def queue_bind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Bind ``queue`` to ``exchange`` with a pattern."""
        await self._call(
            Queue.Bind(queue=queue, exchange=exchange, routing_key=routing_key), Queue.BindOk
        )

    async def queue_unbind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Remove a binding."""
        await self._call(
            Queue.Unbind(queue=queue, exchange=exchange, routing_key=routing_key), Queue.UnbindOk
        )

    async def queue_delete(self, queue: str) -> None:
        """Delete a queue."""
        await self._call(Queue.Delete(queue=queue), Queue.DeleteOk)

    async def basic_qos(self, prefetch_count: int) -> None:
        """Bound the unacknowledged deliveries on the channel."""
        await self._call(Basic.Qos(prefetch_count=prefetch_count), Basic.QosOk)

    async def basic_consume(
        self,
        queue: str,
        callback: Callable[[AmqpMessage], None],
        *,
        no_ack: bool,
        on_cancel: Callable[[], None] | None = None,
    ) -> str:
        """Consume ``queue``; returns the consumer tag.

        ``callback(message)`` runs in the reader task, so must not block;
        ``on_cancel()`` runs if the broker cancels the consumer (say, the queue
        was deleted).
        """
        self._consumer_count += 1
        tag = f"rackbus.{self._consumer_count}.{uuid.uuid4().hex[:8]}"
        self._consumers[tag] = callback
        if on_cancel is not None:
            self._on_cancel[tag] = on_cancel
        try:
            await self._call(
                Basic.Consume(queue=queue, consumer_tag=tag, no_ack=no_ack), Basic.ConsumeOk
            )
        except BaseException:
            self._consumers.pop(tag, None)
            self._on_cancel.pop(tag, None)
            raise
        return tag

    async def basic_cancel(self, consumer_tag: str) -> None:
        """Stop a consumer."""
        await self._call(Basic.Cancel(consumer_tag=consumer_tag), Basic.CancelOk)
        self._consumers.pop(consumer_tag, None)
        self._on_cancel.pop(consumer_tag, None)

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
        """Send a message; ``on_confirm(outcome)`` runs once the broker settled it."""
        if not self.is_open:
            on_confirm(Outcome.LOST)
            return
        self._publish_tag += 1
        tag = self._publish_tag
        message_id = ""
        if mandatory:
            message_id = properties.message_id = properties.message_id or uuid.uuid4().hex
            self._message_ids[message_id] = tag
        frames = [
            amqp_frame.marshal(
                Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
                CHANNEL,
            ),
            amqp_frame.marshal(ContentHeader(0, len(body), properties), CHANNEL),
        ]
        chunk = self.frame_max - FRAME_OVERHEAD
        for offset in range(0, len(body), chunk):
            frames.append(amqp_frame.marshal(ContentBody(body[offset : offset + chunk]), CHANNEL))
        direct = len(self._unconfirmed) < DIRECT_WRITE_LIMIT
        self._unconfirmed[tag] = on_confirm
        if mandatory:
            self._track_return(tag, message_id)
        self._write(b"".join(frames), direct=direct)

    def _track_return(self, tag: int, message_id: str) -> None:
        # forget the message id once confirmed: wrap the callback
        on_confirm = self._unconfirmed[tag]
        message_ids = self._message_ids

        def confirmed(outcome: Outcome) -> None:
            if message_ids.get(message_id) == tag:
                del message_ids[message_id]
            on_confirm(outcome)

        self._unconfirmed[tag] = confirmed

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
