"""The Trio server: a listening UDP socket, and one task with its own socket (a fresh transfer ID,
as RFC 1350 asks) per transfer, each driving a sans-I/O ``ServerTransfer``.

File opening runs in a worker thread; block reads happen in the loop (buffered reads of a regular
file from the page cache take microseconds, a thread hop per block would cost more).
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable

import attrs
import trio

from ._content import Content, ReadHandle, WritableRoot, WriteHandle
from ._errors import ContentError, ErrorCode, MalformedPacket
from ._events import Direction, TransferEvent, TransferFailed, TransferSucceeded
from ._options import NegotiationLimits
from ._packets import MAX_REQUEST, ReadRequest, WriteRequest, decode
from ._server_transfer import ServerTransfer, TransferState, check_request, error_packet
from ._window import Datagrams


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
            sock.bind((self.host, self.port))
            task_status.started(sock.getsockname()[1])
            async with trio.open_nursery() as nursery:
                while True:
                    await trio.lowlevel.wait_readable(sock)
                    try:
                        data, remote = sock.recvfrom(MAX_REQUEST + 1)
                    except (BlockingIOError, ConnectionRefusedError):
                        continue
                    self._accept(nursery, sock, data, remote[:2])

    def _accept(
        self, nursery: trio.Nursery, sock: socket.socket, data: bytes, remote: tuple[str, int]
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
        nursery.start_soon(self._session, request, remote)

    def _report_refusal(
        self, request: ReadRequest | WriteRequest, remote: tuple[str, int], code: int, message: str
    ) -> None:
        self._counts["refused"] += 1
        direction: Direction = "write" if isinstance(request, WriteRequest) else "read"
        self._emit(TransferFailed(request.filename, *remote, code, message, 0, 0.0, direction))

    def _emit(self, event: TransferEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    async def _session(self, request: ReadRequest | WriteRequest, remote: tuple[str, int]) -> None:
        try:
            with socket.socket(self._family, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.bind((self.host, 0))
                sock.connect(remote)
                await self._transfer(sock, request, remote)
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
        self, sock: socket.socket, request: ReadRequest | WriteRequest, remote: tuple[str, int]
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
            await _drive(sock, engine, max(1024, engine.options.blksize + 8))
            if direction == "write" and engine.state is TransferState.SUCCEEDED:
                await trio.to_thread.run_sync(handle.commit)  # type: ignore[union-attr]
                with trio.move_on_after(engine.options.timeout):
                    await _drive(sock, engine, engine.options.blksize + 8, dally=True)
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


async def _send_all(sock: socket.socket, out: Datagrams) -> None:
    for datagram in out:
        while True:
            try:
                sock.send(datagram)
                break
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
            except ConnectionRefusedError:
                break  # an ICMP error left by an earlier send; timeouts judge the peer


async def _drive(
    sock: socket.socket, engine: ServerTransfer, size: int, dally: bool = False
) -> None:
    """Feed the engine every datagram from the peer, and its timeouts, until it is done.

    The cancel scope that wakes us for a timeout is re-armed only when it fires, not per packet:
    deadlines only move later as the transfer progresses, so a scope armed at an earlier deadline
    just wakes once, finds the engine's deadline not reached, and is re-armed.
    """
    buffer = bytearray(size)
    view = memoryview(buffer)
    recv_into = sock.recv_into
    send = sock.send
    receive = engine.receive
    clock = trio.current_time
    wait_readable = trio.lowlevel.wait_readable
    out, deadline = ([], None) if dally else engine.start(clock())
    while True:
        await _send_all(sock, out)
        out = []
        if deadline is None and not dally:
            return
        with trio.CancelScope(deadline=math.inf if deadline is None else deadline):
            while True:
                # what we just sent is being answered: wait first, saving a failing recv per block
                await wait_readable(sock)
                try:
                    n = recv_into(buffer)
                except BlockingIOError:
                    continue
                except ConnectionRefusedError:
                    if not dally:
                        engine.state = TransferState.FAILED
                        engine.error = (ErrorCode.NOT_DEFINED, "client port unreachable")
                    return
                out, deadline = receive(view[:n], clock())
                sent = 0
                try:
                    for datagram in out:
                        send(datagram)
                        sent += 1
                except BlockingIOError:
                    pass  # the rest goes out through _send_all
                except ConnectionRefusedError:
                    sent += 1
                out = out[sent:] if sent < len(out) else []
                if out or (deadline is None and not dally):
                    break
        if out:
            continue  # a send would block: finish it outside the fast loop
        now = clock()
        if deadline is not None and now >= deadline:
            out, deadline = engine.timeout(now)
