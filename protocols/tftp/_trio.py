"""The Trio server, the control plane: a listening UDP socket, and one task per transfer that
opens the content (in a worker thread), negotiates, makes a socket with a fresh transfer ID (as
RFC 1350 asks) and reports the end as an event.

The blocks themselves go through the data plane (``_dataplane``): one worker thread, started and
joined by ``serve``'s nursery, runs every transfer's ``ServerTransfer`` over an ``epoll`` set,
because a trip through Trio's scheduler per block was the server's main cost (``_dataplane``
has the measurements). Nothing outlives ``serve``: cancelling it stops the thread, and every
session task waits until the thread has let go of its socket before closing it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import attrs
import trio

from ._content import Content, ReadHandle, WritableRoot, WriteHandle
from ._dataplane import DataPlane
from ._errors import ContentError, ErrorCode, MalformedPacket
from ._events import Direction, TransferEvent, TransferFailed, TransferSucceeded
from ._options import NegotiationLimits
from ._packets import MAX_REQUEST, ReadRequest, WriteRequest, decode
from ._server_transfer import ServerTransfer, TransferState, check_request, error_packet


@attrs.frozen
class ServerConfig:
    """Bounds and timing of a server.

    ``timeout`` is the retransmission timeout when the client does not ask for one; a transfer
    with no progress for ``(retries + 1) * timeout`` fails (the idle timeout).
    """

    max_sessions: int = 512
    max_sessions_per_client: int = 16
    timeout: float = 1.0
    retries: int = 5
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
            max_tsize=writable.max_size if writable else None,
        )
        self._active: dict[tuple[str, int], int] = {}  # remote -> 1, one session per transfer ID
        self._per_address: dict[str, int] = {}
        self._counts = {"succeeded": 0, "failed": 0, "refused": 0, "malformed": 0}

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(active=len(self._active), **self._counts)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; ``task_status.started`` gets the bound port."""
        with socket.socket(self._family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
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
                            data, remote = sock.recvfrom(MAX_REQUEST + 1)
                        except (BlockingIOError, ConnectionRefusedError):
                            continue
                        self._accept(nursery, plane, sock, data, remote[:2])
                finally:
                    plane.stop()

    def _accept(
        self,
        nursery: trio.Nursery,
        plane: DataPlane,
        sock: socket.socket,
        data: bytes,
        remote: tuple[str, int],
    ) -> None:
        try:
            request = decode(data)
        except MalformedPacket as exc:
            self._counts["malformed"] += 1
            if data[:2] in (b"\0\1", b"\0\2"):
                _send_quietly(sock, error_packet(ErrorCode.ILLEGAL_OPERATION, str(exc)), remote)
            return
        if not isinstance(request, ReadRequest | WriteRequest) or remote in self._active:
            return  # not a request, or a retransmitted request of a running transfer
        address = remote[0]
        if (
            len(self._active) >= self.config.max_sessions
            or self._per_address.get(address, 0) >= self.config.max_sessions_per_client
        ):
            _send_quietly(sock, error_packet(ErrorCode.NOT_DEFINED, "server busy"), remote)
            self._report_refusal(request, remote, ErrorCode.NOT_DEFINED, "server busy")
            return
        self._active[remote] = 1
        self._per_address[address] = self._per_address.get(address, 0) + 1
        nursery.start_soon(self._session, plane, request, remote)

    def _report_refusal(
        self, request: ReadRequest | WriteRequest, remote: tuple[str, int], code: int, message: str
    ) -> None:
        self._counts["refused"] += 1
        direction: Direction = "write" if isinstance(request, WriteRequest) else "read"
        self._emit(TransferFailed(request.filename, *remote, code, message, 0, 0.0, direction))

    def _emit(self, event: TransferEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    async def _session(
        self, plane: DataPlane, request: ReadRequest | WriteRequest, remote: tuple[str, int]
    ) -> None:
        try:
            with socket.socket(self._family, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.bind((self.host, 0))
                sock.connect(remote)
                await self._transfer(plane, sock, request, remote)
        finally:
            del self._active[remote]
            left = self._per_address[remote[0]] - 1
            if left:
                self._per_address[remote[0]] = left
            else:
                del self._per_address[remote[0]]

    async def _open(
        self, request: ReadRequest | WriteRequest, remote: tuple[str, int]
    ) -> tuple[ServerTransfer, ReadHandle | WriteHandle]:
        check_request(request)
        if isinstance(request, ReadRequest):
            handle: ReadHandle = await trio.to_thread.run_sync(
                self.content.open_read, request.filename, remote
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
            self.writable.open_write, request.filename, remote, size
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
        remote: tuple[str, int],
    ) -> None:
        started = trio.current_time()
        direction: Direction = "write" if isinstance(request, WriteRequest) else "read"
        try:
            engine, handle = await self._open(request, remote)
        except ContentError as exc:
            _send_quietly(sock, error_packet(exc.code, exc.message), None)
            self._report_refusal(request, remote, exc.code, exc.message)
            return
        window_bytes = engine.options.windowsize * (engine.options.blksize + 64)
        if window_bytes > 64 * 1024:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * window_bytes)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * window_bytes)
        try:
            if direction == "read":
                await plane.drive(sock, engine)
            else:
                # the last ACK waits for the commit: once the client has it, the file is there
                last_ack = await plane.drive(sock, engine, hold=True)
                if engine.state is TransferState.SUCCEEDED:
                    try:
                        await trio.to_thread.run_sync(handle.commit)  # type: ignore[union-attr]
                    except ContentError as exc:
                        _send_quietly(sock, error_packet(exc.code, exc.message), None)
                        raise
                    # dally: if the client missed the last ACK, its resent last block is re-ACKed
                    await plane.drive(sock, engine, linger=engine.options.timeout, first=last_ack)
        except ContentError as exc:
            engine.state = TransferState.FAILED
            engine.error = (exc.code, exc.message)
        finally:
            if direction == "write":
                if engine.state is not TransferState.SUCCEEDED:
                    with trio.CancelScope(shield=True):
                        await trio.to_thread.run_sync(handle.abort)  # type: ignore[union-attr]
            else:
                handle.close()  # type: ignore[union-attr]
        duration = trio.current_time() - started
        if engine.state is TransferState.SUCCEEDED:
            self._counts["succeeded"] += 1
            self._emit(
                TransferSucceeded(request.filename, *remote, engine.size, duration, direction)
            )
        else:
            self._counts["failed"] += 1
            code, message = engine.error or (ErrorCode.NOT_DEFINED, "aborted")
            self._emit(
                TransferFailed(
                    request.filename, *remote, code, message, engine.size, duration, direction
                )
            )


def _send_quietly(sock: socket.socket, datagram: bytes, remote: tuple[str, int] | None) -> None:
    """Send one datagram when losing it is acceptable (errors, refusals)."""
    try:
        if remote is None:
            sock.send(datagram)
        else:
            sock.sendto(datagram, remote)
    except OSError:
        pass


async def _run_plane(plane: DataPlane) -> None:
    """The data plane's thread, owned by ``serve``'s nursery: it ends when ``serve`` does."""
    try:
        await trio.to_thread.run_sync(plane.run, limiter=trio.CapacityLimiter(1))
    finally:
        plane.abandon()  # a no-op once ``run`` returned; frees everything if it never started
