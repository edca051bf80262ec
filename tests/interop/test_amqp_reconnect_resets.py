"""A reconnect that the broker's side resets mid-handshake is retried, not fatal to the bus.

The bus reaches RabbitMQ through a small TCP relay. The relay drops the bus's connection, then
resets the next attempts as soon as their first bytes arrive (as a broker that is starting up,
or a load balancer without a healthy backend, does), then relays again.
"""

from __future__ import annotations

import socket
import struct
import uuid

import attrs
import trio

from runtime import Actor, Address, Runtime, handler, message
from runtime.amqp_bus import AmqpBus
from runtime.supervisor import Backoff

BROKER = ("127.0.0.1", 5672)
RESETS = 3


@message("RelayPing")
@attrs.frozen
class Ping:
    n: int


class Echo(Actor):
    @handler("on.relay", "methods.echo.{key}")
    async def echo(self, ping: Ping) -> int:
        return ping.n + 1


@attrs.define
class Relay:
    """Relays TCP to the broker; ``drop()`` ends every relayed connection and arms resets."""

    resets_left: int = 0
    resets_done: int = 0
    accepted: int = 0
    _scopes: list[trio.CancelScope] = attrs.Factory(list)

    async def serve(self, listener: trio.SocketListener) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                client = await listener.accept()
                self.accepted += 1
                nursery.start_soon(self._handle, client)

    async def _handle(self, client: trio.SocketStream) -> None:
        if self.resets_left:
            self.resets_left -= 1
            await client.receive_some(8)
            client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.socket.close()
            self.resets_done += 1
            return
        with trio.CancelScope() as scope:
            self._scopes.append(scope)
            broker = await trio.open_tcp_stream(*BROKER)
            async with client, broker, trio.open_nursery() as nursery:
                nursery.start_soon(self._pipe, client, broker, nursery.cancel_scope)
                nursery.start_soon(self._pipe, broker, client, nursery.cancel_scope)

    @staticmethod
    async def _pipe(
        source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope
    ) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

    def drop(self, resets: int) -> None:
        self.resets_left = resets
        for scope in self._scopes:
            scope.cancel()
        self._scopes.clear()


async def test_the_bus_retries_reconnects_that_are_reset_during_the_handshake() -> None:
    key = uuid.uuid4().hex[:8]
    relay = Relay()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    fast = Backoff(initial=0.05, factor=1.5, maximum=0.2, jitter=0.1)
    with trio.fail_after(60):
        async with listeners[0], trio.open_nursery() as nursery:
            nursery.start_soon(relay.serve, listeners[0])
            url = f"amqp://guest:guest@127.0.0.1:{port}/"
            bus = AmqpBus(url, name=f"relay-{key}", reconnect=fast, heartbeat=5)
            async with Runtime(bus) as rt:
                await rt.spawn(Echo, key=key)
                echo = Address("on.relay", f"methods.echo.{key}")
                assert await rt.call(echo, Ping(1)) == 2

                relay.drop(RESETS)
                while bus.statistics().reconnects < 1:
                    await trio.sleep(0.05)
                assert relay.resets_done == RESETS
                assert await rt.call(echo, Ping(41)) == 42
            nursery.cancel_scope.cancel()
