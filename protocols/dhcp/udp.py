"""The Trio adapter: UDP sockets that feed the DHCP engines and send what they return.

Thin by design: a receive loop hands each datagram to an engine (``DhcpServer.receive``
or ``ProxyDhcp.receive``) and sends the datagrams it returns. Datagrams that are
already waiting are handled as one batch inside ``batch()`` (the lease store's
transaction: one commit per batch), and replies go out only after it, so an ACK is
never sent for a lease the store does not hold. The store is SQLite on local disk
(WAL, no fsync per commit), so its calls stay in the loop: a thread hop would cost
more than the commit.

A socket bound to an interface (``SO_BINDTODEVICE``) on ``0.0.0.0`` sees the
broadcasts of clients on that link only; without an interface, the socket is bound
to the configured address and sees only unicast (relayed) traffic.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from ipaddress import IPv4Address
from typing import NoReturn

import trio

from .datagram import Datagram
from .packet import MAX_PACKET_SIZE

log = logging.getLogger("rackbus.dhcp")

Handler = Callable[[bytes, tuple[str, int], float], list[Datagram]]
"""An engine's receive: ``(data, source, now) -> datagrams to send``."""

MAX_BATCH = 64
"""Datagrams handled per batch (per store commit)."""

RECEIVE_BUFFER = 4 << 20
"""Bytes of datagrams the kernel may queue for us: a burst of clients (a rack powering on)
waits there instead of being dropped while a batch is handled."""


def open_udp_socket(address: IPv4Address, port: int, *, interface: str | None) -> socket.socket:
    """A non-blocking UDP socket for a DHCP engine, allowed to broadcast.

    With ``interface``, bound to ``0.0.0.0:port`` on that interface only (broadcast
    clients); without, bound to ``address:port`` (relayed clients only).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        # The kernel caps this at net.core.rmem_max.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        where = f"{address}:{port}" if interface is None else f"0.0.0.0:{port} on {interface}"
        try:
            if interface is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
                sock.bind(("0.0.0.0", port))
            else:
                sock.bind((str(address), port))
        except OSError as exc:
            raise OSError(exc.errno, f"DHCP cannot listen on {where}: {exc.strerror}") from exc
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class DatagramServer:
    """Runs one engine on one socket; ``after_batch`` is called after each batch is sent
    (to drain the engine's events).

    An exception raised by the engine on one datagram is logged (its type and message,
    never the datagram) and counted in ``dropped``; the server goes on with the next one.
    ``send_errors`` counts replies the socket refused.
    """

    def __init__(
        self,
        sock: socket.socket,
        handle: Handler,
        *,
        batch: Callable[[], AbstractContextManager[object]] = nullcontext,
        after_batch: Callable[[], object] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.handle = handle
        self.batch = batch
        self.after_batch = after_batch
        self.clock = clock
        self.send_errors = 0
        self.dropped = 0

    async def serve(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Receive, handle and answer until cancelled."""
        task_status.started()
        while True:
            await trio.lowlevel.wait_readable(self.sock)
            replies = self._handle_waiting()
            for datagram in replies:
                await self._send(datagram)
            self.after_batch()

    def _handle_waiting(self) -> list[Datagram]:
        replies: list[Datagram] = []
        with self.batch():
            for _ in range(MAX_BATCH):
                try:
                    data, source = self.sock.recvfrom(MAX_PACKET_SIZE + 1)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # an ICMP error queued on the socket, say
                    log.debug("DHCP receive error: %s", exc)
                    continue
                try:
                    replies.extend(self.handle(data, source[:2], self.clock()))
                except Exception as exc:  # a bug in the engine must not stop the service
                    self.dropped += 1
                    log.error(
                        "DHCP datagram from %s:%d dropped: %s: %s",
                        *source[:2],
                        type(exc).__name__,
                        exc,
                    )
        return replies

    async def _send(self, datagram: Datagram) -> None:
        while True:
            try:
                self.sock.sendto(datagram.data, datagram.destination)
                return
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.sock)
            except OSError as exc:
                # An unreachable relay or network must not stop the server.
                self.send_errors += 1
                if exc.errno != errno.EINTR:
                    log.warning("DHCP reply to %s:%d not sent: %s", *datagram.destination, exc)
                    return


async def run_deadlines(
    next_deadline: Callable[[], float | None],
    expire: Callable[[float], object],
    *,
    batch: Callable[[], AbstractContextManager[object]] = nullcontext,
    after: Callable[[], object] = lambda: None,
    clock: Callable[[], float] = time.time,
    longest_sleep: float = 60.0,
) -> NoReturn:
    """Apply an engine's deadlines when they fall due, also while no packet arrives.

    Deadlines are wall-clock times (what ``clock`` returns); the sleep is capped so
    that a clock step is noticed within ``longest_sleep`` seconds.
    """
    while True:
        deadline = next_deadline()
        delay = longest_sleep if deadline is None else deadline - clock()
        await trio.sleep(max(0.0, min(delay, longest_sleep)))
        with batch():
            expire(clock())
        after()
