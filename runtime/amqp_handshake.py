"""Opening an AMQP connection: the TCP or TLS stream, the login and tuning,
and the one channel, in confirm mode, that ``AmqpConnection`` then serves.

``Handshake`` remembers how far it got, so that a failure can say why in
words a person can act on (a broker that drops the client certificate says
nothing else).
"""

from __future__ import annotations

from typing import Any

import trio
from pamqp import frame as amqp_frame
from pamqp.commands import Channel, Confirm, Connection
from pamqp.common import FieldTable
from pamqp.header import ProtocolHeader
from pamqp.heartbeat import Heartbeat

from .amqp_url import AmqpAddress
from .amqp_wire import CHANNEL, READ_SIZE, AmqpClosed, next_frame, stream_failure

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


async def open_stream(address: AmqpAddress) -> trio.abc.Stream:
    """A TCP stream to the broker, or a TLS one for ``amqps``."""
    url = address.url
    host = url.host or "localhost"
    if url.scheme == "amqps":
        return await trio.open_ssl_over_tcp_stream(
            host,
            url.explicit_port or 5671,
            ssl_context=address.ssl_context,
        )
    return await trio.open_tcp_stream(host, url.explicit_port or 5672)


class Handshake:
    """Logs in on an open stream, agrees ``frame_max`` and ``heartbeat``, opens the channel."""

    def __init__(self, address: AmqpAddress, *, heartbeat: int, frame_max: int) -> None:
        self.address = address
        self.heartbeat = heartbeat
        self.frame_max = frame_max
        #: how far the handshake got: the TLS handshake (amqps), the broker's ``Connection.Start``
        self.tls_done = False
        self.greeted = False

    def failure(self, exc: BaseException) -> str:
        """Why the handshake failed, for people."""
        reason = stream_failure(exc)
        if self.tls_done and not self.greeted and "TLS:" not in reason:
            # TLS 1.3 brokers refuse a client certificate after the client's side of the TLS
            # handshake is done, by closing the connection: no TLS error reaches the client
            reason += (
                " (the broker closed the connection before greeting: it may not accept the"
                " client certificate, see certfile and keyfile)"
            )
        return reason

    async def run(self, stream: trio.abc.Stream, buffer: bytearray) -> None:
        """Shake hands over ``stream``; bytes read past the last answer stay in ``buffer``."""
        url = self.address.url
        if isinstance(stream, trio.SSLStream):
            await stream.do_handshake()
            self.tls_done = True
        await stream.send_all(ProtocolHeader().marshal())
        start = await self._expect(stream, buffer, Connection.Start)
        self.greeted = True
        mechanisms = start.mechanisms.split() if start.mechanisms else []
        if "PLAIN" not in mechanisms:
            raise AmqpClosed(f"the broker offers no PLAIN login ({start.mechanisms})")
        login = f"\0{url.user or 'guest'}\0{url.password or 'guest'}"
        ok = Connection.StartOk(client_properties=CLIENT_PROPERTIES, response=login)
        await stream.send_all(amqp_frame.marshal(ok, 0))
        tune = await self._expect(stream, buffer, Connection.Tune)
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
        await self._expect(stream, buffer, Connection.OpenOk)
        await stream.send_all(amqp_frame.marshal(Channel.Open(), CHANNEL))
        await self._expect(stream, buffer, Channel.OpenOk)
        await stream.send_all(amqp_frame.marshal(Confirm.Select(), CHANNEL))
        await self._expect(stream, buffer, Confirm.SelectOk)

    async def _expect(self, stream: trio.abc.Stream, buffer: bytearray, kind: type[Any]) -> Any:
        """The next method frame during the handshake, which must be a ``kind``."""
        while True:
            parsed = next_frame(buffer)
            if parsed is None:
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    raise AmqpClosed("the broker closed the connection during the handshake")
                buffer += data
                continue
            _, value = parsed
            if isinstance(value, kind):
                return value
            if isinstance(value, Connection.Close | Channel.Close):
                raise AmqpClosed(f"{value.reply_code} {value.reply_text}", value.reply_code or 0)
            if not isinstance(value, Heartbeat):
                raise AmqpClosed(f"unexpected {value.name} during the handshake")
