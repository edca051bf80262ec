"""The Trio server, the control plane: a listening UDP socket, and one task per transfer that
opens the content (in a worker thread), negotiates, makes a socket with a fresh transfer ID (as
RFC 1350 asks) and reports the end as an event.

Each transfer's socket is bound to the address the request was sent to (the listening socket
asks for it with ``IP_PKTINFO`` / ``IPV6_RECVPKTINFO``), so on a host with several addresses the
client gets its answers from the address it asked, and a link-local client is answered on its
link. A request that fails, whatever the cause (content that raises, a commit that fails, a
socket that cannot be bound), ends that transfer with an ERROR and a ``TransferFailed``; it never
ends ``serve``.

The blocks themselves go through the data plane (``_dataplane``): one worker thread, started and
joined by ``serve``'s nursery, runs every transfer's ``ServerTransfer`` over an ``epoll`` set,
because a trip through Trio's scheduler per block was the server's main cost (``_dataplane``
has the measurements). Nothing outlives ``serve``: cancelling it stops the thread, and every
session task waits until the thread has let go of its socket before closing it, then reports
its transfer, if it had not completed, as failed ("server stopped").
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any, cast

import attrs
import trio

from ._content import Content, ReadHandle, WritableRoot, WriteHandle
from ._dataplane import DataPlane
from ._errors import ContentError, ErrorCode, MalformedPacket
from ._events import Direction, TransferEvent, TransferFailed, TransferSucceeded
from ._options import NegotiationLimits
from ._packets import MAX_REQUEST, ReadRequest, WriteRequest, decode
from ._server_transfer import ServerTransfer, TransferState, check_request, error_packet

log = logging.getLogger("rackbus.tftp")

#: a socket address as the ``socket`` module gives it: ``(host, port)`` for IPv4,
#: ``(host, port, flowinfo, scope_id)`` for IPv6
Endpoint = tuple[Any, ...]
#: what tells one client transfer ID from another: host, port and IPv6 scope (0 for IPv4)
TransferId = tuple[str, int, int]
#: what tells one client from another: host and IPv6 scope
Client = tuple[str, int]

_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's value; the module lacks it before 3.13
_ANCILLARY = socket.CMSG_SPACE(20)  # one in6_pktinfo (20 octets) or in_pktinfo (12)


@attrs.frozen
class ServerConfig:
    """Bounds and timing of a server.

    ``timeout`` is the retransmission timeout when the client does not ask for one; a transfer
    with no progress for ``(retries + 1) * timeout`` fails (the idle timeout). A client may ask
    for up to ``max_timeout`` seconds; a longer one is declined.
    """

    max_sessions: int = 512
    max_sessions_per_client: int = 16
    timeout: float = 1.0
    retries: int = 5
    max_timeout: int = 30
    max_blksize: int = 65464
    max_windowsize: int = 64
    max_window_bytes: int = 128 * 1024


@attrs.frozen
class ServerStatistics:
    """Counters since the server started."""

    active: int
    succeeded: int
    failed: int
    refused: int
    malformed: int


class TftpServer:
    """Serves ``content`` over TFTP; uploads only into ``writable``, if one is given.

    Run it with ``port = await nursery.start(server.serve)``. ``on_event`` is called (in the
    loop, so it must not block; ``send_channel.send_nowait`` fits) with a ``TransferSucceeded``
    or ``TransferFailed`` when each transfer ends, refusals included.
    """

    def __init__(
        self,
        content: Content,
        *,
        host: str = "0.0.0.0",
        port: int = 69,
        writable: WritableRoot | None = None,
        config: ServerConfig = ServerConfig(),
        on_event: Callable[[TransferEvent], object] | None = None,
    ) -> None:
        self.content = content
        self.host = host
        self.port = port
        self.writable = writable
        self.config = config
        self.on_event = on_event
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._limits = NegotiationLimits(
            max_blksize=config.max_blksize,
            max_windowsize=config.max_windowsize,
            max_window_bytes=config.max_window_bytes,
            timeout=config.timeout,
            max_timeout=config.max_timeout,
            max_tsize=writable.max_size if writable else None,
        )
        self._active: set[TransferId] = set()  # one session per client transfer ID
        self._per_client: dict[Client, int] = {}
        self._counts = {"succeeded": 0, "failed": 0, "refused": 0, "malformed": 0}

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(active=len(self._active), **self._counts)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; ``task_status.started`` gets the bound port."""
        with socket.socket(self._family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            if self._family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
            try:
                sock.bind((self.host, self.port))
            except OSError as exc:
                where = f"{self.host}:{self.port}"
                raise OSError(exc.errno, f"TFTP cannot listen on {where}: {exc.strerror}") from exc
            plane = DataPlane(trio.lowlevel.current_trio_token(), 1 << 16)  # any datagram
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_run_plane, plane)
                task_status.started(sock.getsockname()[1])
                try:
                    while True:
                        await trio.lowlevel.wait_readable(sock)
                        try:
                            data, ancillary, _, remote = sock.recvmsg(MAX_REQUEST + 1, _ANCILLARY)
                        except (BlockingIOError, ConnectionRefusedError):
                            continue
                        local = self._local_address(ancillary)
                        self._accept(nursery, plane, sock, data, remote, local)
                finally:
                    plane.stop()

    def _local_address(self, ancillary: list[tuple[int, int, bytes]]) -> Endpoint:
        """Where a transfer's socket is bound: the address the request was sent to (for IPv4,
        the kernel's choice of reply address, which is that address unless it was a broadcast),
        with the receiving interface as the scope of an IPv6 address that needs one."""
        for level, kind, data in ancillary:
            if level == socket.IPPROTO_IP and kind == _IP_PKTINFO and len(data) >= 12:
                return (socket.inet_ntop(socket.AF_INET, data[4:8]), 0)  # ipi_spec_dst
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 20:
                if data[0] == 0xFF:
                    break  # sent to a multicast group: let the kernel pick the source
                scope = int.from_bytes(data[16:20], sys.byteorder)  # ignored unless link-local
                return (socket.inet_ntop(socket.AF_INET6, data[:16]), 0, 0, scope)
        return (self.host, 0)

    def _accept(
        self,
        nursery: trio.Nursery,
        plane: DataPlane,
        sock: socket.socket,
        data: bytes,
        remote: Endpoint,
        local: Endpoint,
    ) -> None:
        try:
            request = decode(data)
        except MalformedPacket as exc:
            self._counts["malformed"] += 1
            if data[:2] in (b"\0\1", b"\0\2"):
                error = error_packet(ErrorCode.ILLEGAL_OPERATION, str(exc))
                _send_from(sock, error, remote, local)
            return
        tid = _transfer_id(remote)
        if not isinstance(request, ReadRequest | WriteRequest) or tid in self._active:
            return  # not a request, or a retransmitted request of a running transfer
        client = (tid[0], tid[2])
        if (
            len(self._active) >= self.config.max_sessions
            or self._per_client.get(client, 0) >= self.config.max_sessions_per_client
        ):
            _send_from(sock, error_packet(ErrorCode.NOT_DEFINED, "server busy"), remote, local)
            self._report_refusal(request, remote, ErrorCode.NOT_DEFINED, "server busy")
            return
        self._active.add(tid)
        self._per_client[client] = self._per_client.get(client, 0) + 1
        nursery.start_soon(self._session, plane, request, remote, local)

    def _report_refusal(
        self, request: ReadRequest | WriteRequest, remote: Endpoint, code: int, message: str
    ) -> None:
        self._counts["refused"] += 1
        direction: Direction = "write" if isinstance(request, WriteRequest) else "read"
        self._emit(
            TransferFailed(request.filename, remote[0], remote[1], code, message, 0, 0.0, direction)
        )

    def _report_end(
        self,
        request: ReadRequest | WriteRequest,
        remote: Endpoint,
        engine: ServerTransfer | None,
        started: float,
        error: tuple[int, str] = (ErrorCode.NOT_DEFINED, "aborted"),
    ) -> None:
        """Count and report a transfer that was accepted (``engine`` is ``None`` when it ended
        before one was made); ``error`` is used when the engine has none."""
        direction: Direction = "write" if isinstance(request, WriteRequest) else "read"
        duration = trio.current_time() - started
        size = 0 if engine is None else engine.size
        if engine is not None and engine.state is TransferState.SUCCEEDED:
            self._counts["succeeded"] += 1
            self._emit(
                TransferSucceeded(request.filename, remote[0], remote[1], size, duration, direction)
            )
            return
        self._counts["failed"] += 1
        code, message = error if engine is None or engine.error is None else engine.error
        self._emit(
            TransferFailed(
                request.filename, remote[0], remote[1], code, message, size, duration, direction
            )
        )

    def _emit(self, event: TransferEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    async def _session(
        self,
        plane: DataPlane,
        request: ReadRequest | WriteRequest,
        remote: Endpoint,
        local: Endpoint,
    ) -> None:
        tid = _transfer_id(remote)
        try:
            with socket.socket(self._family, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                try:
                    sock.bind(local)
                    sock.connect(remote)
                except OSError as exc:  # e.g. the address was removed since the request came
                    log.warning(
                        "TFTP: cannot answer %s from %s: %s", remote[0], local[0], exc.strerror
                    )
                    message = f"cannot answer: {exc.strerror}"
                    self._report_end(
                        request, remote, None, trio.current_time(), (ErrorCode.NOT_DEFINED, message)
                    )
                    return
                await self._transfer(plane, sock, request, remote)
        finally:
            self._active.discard(tid)
            client = (tid[0], tid[2])
            left = self._per_client[client] - 1
            if left:
                self._per_client[client] = left
            else:
                del self._per_client[client]

    async def _open(
        self, request: ReadRequest | WriteRequest, remote: Endpoint
    ) -> tuple[ServerTransfer, ReadHandle | WriteHandle]:
        check_request(request)
        client: tuple[str, int] = (remote[0], remote[1])
        if isinstance(request, ReadRequest):
            handle: ReadHandle = await trio.to_thread.run_sync(
                self.content.open_read, request.filename, client
            )
            try:
                engine = ServerTransfer(
                    request,
                    source=handle,
                    size=handle.size,
                    limits=self._limits,
                    retries=self.config.retries,
                )
                return engine, handle
            except BaseException:
                handle.close()
                raise
        if self.writable is None:
            raise ContentError(ErrorCode.ACCESS_VIOLATION, "uploads are not allowed")
        tsize = request.options.get("tsize")
        size = int(tsize) if tsize and tsize.isdigit() and len(tsize) < 20 else None
        sink = await trio.to_thread.run_sync(
            self.writable.open_write, request.filename, client, size
        )
        try:
            engine = ServerTransfer(
                request, sink=sink, limits=self._limits, retries=self.config.retries
            )
            return engine, sink
        except BaseException:
            sink.abort()
            raise

    async def _transfer(
        self,
        plane: DataPlane,
        sock: socket.socket,
        request: ReadRequest | WriteRequest,
        remote: Endpoint,
    ) -> None:
        started = trio.current_time()
        try:
            engine, handle = await self._open(request, remote)
        except ContentError as exc:
            _send_quietly(sock, error_packet(exc.code, exc.message), None)
            self._report_refusal(request, remote, exc.code, exc.message)
            return
        except trio.Cancelled:
            self._report_end(request, remote, None, started, _STOPPED)
            raise
        except Exception as exc:  # content that failed (a bug, a lookup): this request only
            log.error(
                "TFTP: opening %r for %s failed: %s: %s",
                request.filename,
                remote[0],
                type(exc).__name__,
                exc,
            )
            message = f"server error: {type(exc).__name__}"
            _send_quietly(sock, error_packet(ErrorCode.NOT_DEFINED, message), None)
            self._report_end(request, remote, None, started, (ErrorCode.NOT_DEFINED, message))
            return
        window_bytes = engine.options.windowsize * (engine.options.blksize + 64)
        if window_bytes > 64 * 1024:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * window_bytes)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * window_bytes)
        reading = isinstance(request, ReadRequest)
        committed = False
        try:
            if reading:
                await plane.drive(sock, engine)
            else:
                # the last ACK waits for the commit: once the client has it, the file is there
                last_ack = await plane.drive(sock, engine, hold=True)
                if engine.state is TransferState.SUCCEEDED:
                    await self._commit(sock, cast(WriteHandle, handle), request)
                    committed = True
                    # dally: if the client missed the last ACK, its resent last block is re-ACKed
                    await plane.drive(sock, engine, linger=engine.options.timeout, first=last_ack)
        except ContentError as exc:
            engine.state = TransferState.FAILED
            engine.error = (exc.code, exc.message)
        except trio.Cancelled:
            # ``serve`` stops: the worker has let go of the socket (``drive`` waits for that)
            if not committed and not (reading and engine.state is TransferState.SUCCEEDED):
                engine.state = TransferState.FAILED
                engine.error = _STOPPED
                _send_quietly(sock, error_packet(*_STOPPED), None)
            raise
        finally:
            with trio.CancelScope(shield=True):
                await _release(handle, reading, keep=committed)
            self._report_end(request, remote, engine, started)

    async def _commit(
        self, sock: socket.socket, handle: WriteHandle, request: ReadRequest | WriteRequest
    ) -> None:
        """Make an upload visible; a failure is raised as ``ContentError``, after the client
        was sent the ERROR (instead of the held final ACK)."""
        try:
            await trio.to_thread.run_sync(handle.commit)
        except ContentError as exc:
            error = exc
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
            code = ErrorCode.DISK_FULL if full else ErrorCode.ACCESS_VIOLATION
            error = ContentError(code, f"cannot store the file: {exc.strerror or exc}")
            log.warning("TFTP: storing %r failed: %s", request.filename, exc)
        except Exception as exc:
            error = ContentError(ErrorCode.NOT_DEFINED, f"server error: {type(exc).__name__}")
            log.error("TFTP: storing %r failed: %s: %s", request.filename, type(exc).__name__, exc)
        else:
            return
        _send_quietly(sock, error_packet(error.code, error.message), None)
        raise error


#: the error of a transfer cut short because ``serve`` was cancelled
_STOPPED = (ErrorCode.NOT_DEFINED, "server stopped")


def _transfer_id(remote: Endpoint) -> TransferId:
    """What identifies a client's transfer ID: flowinfo is left out, the IPv6 scope kept."""
    return (remote[0], remote[1], remote[3] if len(remote) > 3 else 0)


async def _release(handle: ReadHandle | WriteHandle, reading: bool, *, keep: bool) -> None:
    """Close a source, or discard an upload unless ``keep`` (committed); failures are logged."""
    try:
        if reading:
            cast(ReadHandle, handle).close()
        elif not keep:
            await trio.to_thread.run_sync(cast(WriteHandle, handle).abort)
    except Exception as exc:
        log.error("TFTP: releasing a transfer's file failed: %s: %s", type(exc).__name__, exc)


def _send_quietly(sock: socket.socket, datagram: bytes, remote: Endpoint | None) -> None:
    """Send one datagram when losing it is acceptable (errors, refusals)."""
    try:
        if remote is None:
            sock.send(datagram)
        else:
            sock.sendto(datagram, remote)
    except OSError:
        pass


def _send_from(sock: socket.socket, datagram: bytes, remote: Endpoint, local: Endpoint) -> None:
    """Send a refusal from the listening socket with ``local`` (the address the request was
    sent to) as its source, as the transfers' own sockets do; when the kernel refuses that,
    as ``_send_quietly`` does."""
    try:
        if sock.family == socket.AF_INET6:
            scope = local[3] if len(local) > 3 else 0
            info = socket.inet_pton(socket.AF_INET6, local[0]) + scope.to_bytes(4, sys.byteorder)
            ancillary = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info)]  # in6_pktinfo
        else:
            info = bytes(4) + socket.inet_aton(local[0]) + bytes(4)  # in_pktinfo: ipi_spec_dst
            ancillary = [(socket.IPPROTO_IP, _IP_PKTINFO, info)]
        sock.sendmsg([datagram], ancillary, 0, remote)
    except (OSError, ValueError):
        _send_quietly(sock, datagram, remote)


async def _run_plane(plane: DataPlane) -> None:
    """The data plane's thread, owned by ``serve``'s nursery: it ends when ``serve`` does."""
    try:
        await trio.to_thread.run_sync(plane.run, limiter=trio.CapacityLimiter(1))
    finally:
        plane.abandon()  # a no-op once ``run`` returned; frees everything if it never started
