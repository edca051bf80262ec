"""The data plane: one worker thread moves the blocks of every running transfer, over an
``epoll`` set of all transfer sockets, while the Trio loop keeps the control plane (requests,
content, negotiation, bounds, events).

Why a thread: with a Trio task per transfer, every block paid for a trip through Trio's scheduler
(``wait_readable``, a task switch, a cancel scope); here a block costs a ``recv_into``, the engine
call and a ``send``, plus a share of one ``poll``. Server CPU per 1468-octet block and MB/s,
measured in the same runs on the 2-core machine (other work running, so MB/s spread widely; the
CPU figures are the steady ones):

    ================================  ====================  ====================  ==========
    benchmark (two runs)              Trio task each        this thread           tftpd-hpa
    ================================  ====================  ====================  ==========
    one 64 MiB, pinned to one CPU     17-18 us; 44-49 MB/s  10-11 us; 46-66 MB/s  76 MB/s
    100 concurrent curl x 4 MiB       21-22 us; 42-44 MB/s  12-16 us; 43-58 MB/s  68-82 MB/s
    ================================  ====================  ====================  ==========

(tftpy: 19-20 us and 24-29 us per block.) About three quarters of what is left is the kernel:
loopback ``send``/``recv`` and the two context switches every lock-step block costs, which
tftpd-hpa pays too.

Guessed receives: right after sending a block the worker tries ``recv_into`` again, up to
``BURST`` blocks in a row, before going back to ``poll``. When client and server share a CPU the
client has answered by the time ``send`` returns, so this saves the ``epoll_wait`` per block
(16 MiB pinned, three runs: 46-59 MB/s without, 63-65 with); when a guess misses, the session
stops guessing for ``CALM`` blocks, so many concurrent clients cost one failed ``recv`` per
``CALM`` blocks.

A lone transfer waits in ``recv`` instead: while the worker holds a socket it is blocking, with a
``LONE_WAIT`` receive timeout, and every other call passes ``MSG_DONTWAIT``. When only one session
is registered, the guessed receive after a send blocks in the kernel until the ACK comes, one
system call where a missed guess cost three (the failed ``recv``, ``epoll_wait``, ``recv``); about
half the guesses missed, the client not having run yet. Server CPU per block, 16 MiB pinned, runs
alternated in one session: 10.6-13.5 us before, 8.9-10.3 us after (55-66 MB/s before, 67-78
after); many clients are unchanged. The price: while the lone client is silent, a new session, a
cancel or ``stop`` waits up to ``LONE_WAIT`` (the timeout then counts as a missed guess).

The compiled sender: a lock-step read of a file (windowsize 1, the PXE and curl case) runs on
``LockstepSender`` (``_lockstep.c``), whose ``pump`` receives, answers plain ACKs (reading the
file with ``pread``) and sends, guessing receives as above, without the interpreter; whatever is
not a plain ACK, a full send buffer, the end and the timers come back here and to the engine.
100 concurrent curl clients, same runs, alternating: 14.8 us of server CPU per block with
``BlockSender``, 10.1-11.2 us with it.

The engines (``ServerTransfer``) are the same objects the property tests check; the thread only
moves datagrams between them and the sockets, so no protocol logic is repeated here (the compiled
sender is checked against ``BlockSender`` event for event). ``send`` and the engine's block reads
release the GIL, and the Trio thread is idle while blocks flow.

Ownership: once handed over, a session's socket is used only by the worker until the worker
reports the session finished (``finished``, set through ``TrioToken.run_sync_soon``, batched);
only then does the Trio side close it, so a descriptor is never closed under the worker.
``stop`` finishes every session and ends ``run``.
"""

from __future__ import annotations

import collections
import heapq
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence

import trio

from ._errors import ErrorCode
from ._server_transfer import ServerTransfer, TransferState
from ._window import Datagrams

try:
    from ._lockstep import PUMP_IDLE, PUMP_READ_FAILED, PUMP_SEND_BLOCKED
except ImportError:  # no compiled sender: ``ServerTransfer.lane`` is always ``None``
    PUMP_IDLE = PUMP_READ_FAILED = PUMP_SEND_BLOCKED = 0

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_NOWAIT = socket.MSG_DONTWAIT
#: seconds a lone session's guessed receive may block (see the module docstring)
LONE_WAIT = 0.002
_LONE_TIMEVAL = struct.pack("@ll", 0, int(LONE_WAIT * 1_000_000))  # SO_RCVTIMEO's timeval
#: blocks one session may move in a row on guessed receives before the others get a turn
BURST = 16
#: blocks to wait, after a guessed receive found nothing, before guessing again for a session
CALM = 64


class Session:
    """One transfer handed to the worker: its connected socket and engine.

    ``linger`` (seconds) asks for a dally instead of a transfer: ``first`` is sent, then datagrams
    are fed to the finished engine (which re-ACKs a repeated last block of an upload) until the
    time is up. ``hold`` keeps a successful engine's last datagrams in ``held`` instead of sending
    them, so an upload's final ACK goes out only once the file is committed. When a full send
    buffer refuses an ended engine's last datagrams, the session is ``closing``: it finishes once
    they are sent, or after one timeout if the socket never becomes writable.
    """

    __slots__ = (
        "awaits_lane",
        "calm",
        "closing",
        "deadline",
        "engine",
        "fd",
        "finished",
        "first",
        "held",
        "hold",
        "linger",
        "pending",
        "pump",
        "receive",
        "recv_into",
        "send",
        "sock",
        "stopped",
    )

    def __init__(
        self,
        sock: socket.socket,
        engine: ServerTransfer,
        *,
        linger: float | None,
        first: Sequence[bytes | memoryview],
        hold: bool,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.engine = engine
        #: blocks left before the next guessed receive (see ``DataPlane._loop``)
        self.calm = 0
        self.recv_into = sock.recv_into
        self.send = sock.send
        self.receive = engine.receive
        #: the compiled sender's ``pump`` once a lock-step file read transfers (see ``lane``)
        self.pump: Callable[..., int] | None = None
        self.awaits_lane = engine.compiled
        self.linger = linger
        self.first = first
        self.hold = hold
        self.held: Datagrams = []
        self.finished = trio.Event()
        #: when the engine (or the dally) next needs ``timeout``; ``None`` when done
        self.deadline: float | None = None
        #: datagrams a full send buffer refused; sent when the socket is writable again
        self.pending: Datagrams = []
        #: the engine is done, only ``pending`` is left to send before the session finishes
        self.closing = False
        #: the worker no longer uses the socket (set in the worker, read after ``finished``)
        self.stopped = False


class DataPlane:
    """The worker's state; ``run`` is the thread's body, the other methods are called by Trio."""

    def __init__(self, token: trio.lowlevel.TrioToken, size: int) -> None:
        self._token = token
        self._buffer = bytearray(size)
        self._lock = threading.Lock()
        self._incoming: collections.deque[Session] = collections.deque()
        self._done: list[Session] = []
        self._delivery_scheduled = False
        self._closed = False
        self._released = False
        self._cancels: list[Session] = []
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll = select.epoll()
        self._epoll.register(self._wake, _IN)
        self._sessions: dict[int, Session] = {}
        self._timers: list[tuple[float, int, Session]] = []
        self._order = 0

    # -- called from Trio ------------------------------------------------------------------------

    async def drive(
        self,
        sock: socket.socket,
        engine: ServerTransfer,
        *,
        linger: float | None = None,
        first: Sequence[bytes | memoryview] = (),
        hold: bool = False,
    ) -> Datagrams:
        """Run ``engine`` over ``sock`` in the worker until it is done (or ``linger`` is up);
        returns the datagrams held back (see ``Session``).

        If cancelled, the session is stopped, and this returns once the worker let go of it.
        """
        session = Session(sock, engine, linger=linger, first=first, hold=hold)
        with self._lock:
            if self._closed:
                return []
            self._incoming.append(session)
            self._wake_worker()
        try:
            await session.finished.wait()
        finally:
            if not session.finished.is_set():
                with self._lock:
                    if not self._closed:  # else ``abandon`` finishes it, if it did not yet
                        self._cancels.append(session)
                        self._wake_worker()
                with trio.CancelScope(shield=True):
                    await session.finished.wait()
        return session.held

    def stop(self) -> None:
        """End ``run``: every session is finished and reported (thread-safe, idempotent)."""
        with self._lock:
            self._closed = True
            self._wake_worker()

    def _wake_worker(self) -> None:
        """Called with the lock held: the descriptor is closed only under it, by ``abandon``."""
        if not self._released:
            os.eventfd_write(self._wake, 1)

    def abandon(self) -> None:
        """After the worker thread ended, or if it never started: finish what is left, close."""
        with self._lock:
            if self._released:
                return
            self._released = True
            self._closed = True
            registered = list(self._sessions.values())
            leftover = [*registered, *self._incoming]
            self._sessions.clear()
            self._incoming.clear()
            self._epoll.close()
            os.close(self._wake)
        for session in registered:  # as ``_finish`` does for a session it unregisters
            session.sock.setblocking(False)
        for session in leftover:
            self._fail(session, "server stopped")

    # -- the worker thread -----------------------------------------------------------------------

    def run(self) -> None:
        """The worker's loop; returns after ``stop``, with every session finished."""
        try:
            self._loop()
        finally:
            self.abandon()

    def _loop(self) -> None:
        """Poll, then per ready socket: one ``recv_into``, the engine, ``send``.

        The common case (a transfer's datagram, one datagram to answer) stays inline: every
        attribute and call saved here is saved per block. ``now`` is read once per poll, and the
        poll timeout is computed from the previous ``now`` (a few microseconds stale, far below
        any TFTP timeout).
        """
        buffer = self._buffer
        view = memoryview(buffer)
        sessions = self._sessions
        get = sessions.get
        timers = self._timers
        poll = self._epoll.poll
        clock = time.monotonic
        now = clock()
        while True:
            if timers:
                wait = timers[0][0] - now
                ready = poll(wait if wait > 0.0 else 0.0)
            else:
                ready = poll()
            now = clock()
            for fd, mask in ready:
                session = get(fd)
                if session is None or mask & _OUT or session.linger is not None:
                    if self._other_event(fd, mask, session, now):
                        return
                    continue
                pump = session.pump
                if pump is not None:  # the compiled sender answers plain ACKs itself
                    try:
                        code = pump(fd, buffer, len(sessions) == 1, BURST, CALM)
                    except OSError as exc:
                        self._recv_failed(session, exc)
                        continue
                    if code != PUMP_IDLE:
                        self._pumped(session, code, now)
                    continue
                burst = BURST
                while True:
                    try:
                        if burst < BURST and len(sessions) == 1:
                            n = session.recv_into(buffer)  # a lone session: wait in the kernel
                        else:
                            n = session.recv_into(buffer, 0, _NOWAIT)
                    except BlockingIOError:
                        if burst < BURST:  # a guess that missed: do not guess for a while
                            session.calm = CALM
                        break
                    except OSError as exc:
                        self._recv_failed(session, exc)
                        break
                    try:
                        out, deadline = session.receive(view[:n], now)
                    except Exception as exc:  # a source that failed to read: fail this one only
                        self._fail(session, exc)
                        break
                    if deadline is None:
                        self._ended(session, out)
                        break
                    session.deadline = deadline
                    if session.awaits_lane:  # a compiled sender, past the OACK now?
                        self._take_lane(session)
                    if out:
                        if len(out) == 1:
                            try:
                                session.send(out[0], _NOWAIT)
                            except OSError:
                                self._send(session, out)
                                if session.pending:
                                    break
                        else:
                            self._send(session, out)
                            if session.pending:
                                break
                    burst -= 1
                    if session.calm:
                        session.calm -= 1
                        break
                    if not burst:
                        break
                    now = clock()
            while timers and timers[0][0] <= now:
                _, _, session = heapq.heappop(timers)
                if get(session.fd) is session:
                    self._expire(session, now)

    @staticmethod
    def _take_lane(session: Session) -> None:
        if session.awaits_lane and (pump := session.engine.lane()) is not None:
            session.pump = pump
            session.awaits_lane = False

    def _pumped(self, session: Session, code: int, now: float) -> None:
        """What the compiled sender's ``pump`` handed back: a datagram for the engine (its
        length), the end of the transfer, a block a full send buffer refused, a failed read."""
        if code >= 0:
            self._received(session, memoryview(self._buffer)[:code], now)
            return
        if code == PUMP_READ_FAILED:
            self._fail(session, "server error: OSError")
            return
        out, session.deadline = session.engine.settle()
        if session.deadline is None:
            self._ended(session, out)
        elif code == PUMP_SEND_BLOCKED:
            self._send(session, session.engine.in_flight())

    def _received(self, session: Session, datagram: memoryview, now: float) -> None:
        """One datagram through the engine, off the hot path."""
        try:
            out, deadline = session.receive(datagram, now)
        except Exception as exc:
            self._fail(session, exc)
            return
        if deadline is None:
            self._ended(session, out)
            return
        session.deadline = deadline
        self._send(session, out)
        self._take_lane(session)

    def _other_event(self, fd: int, mask: int, session: Session | None, now: float) -> bool:
        """Off the hot path: the wake-up descriptor, a writable socket, a dallying session.
        ``True`` once the plane is closed."""
        if session is None:
            return fd == self._wake and self._take_incoming(now)
        if mask & _OUT:
            self._flush(session)
            return False
        try:
            n = session.recv_into(self._buffer, 0, _NOWAIT)
        except OSError as exc:
            self._recv_failed(session, exc)
            return False
        try:
            out, _ = session.receive(memoryview(self._buffer)[:n], now)
        except Exception as exc:
            self._fail(session, exc)
            return False
        self._send(session, out)  # a dally: re-ACK a resent last block until the time is up
        return False

    def _recv_failed(self, session: Session, exc: OSError) -> None:
        if isinstance(exc, BlockingIOError):
            return
        refused = isinstance(exc, ConnectionRefusedError)
        self._fail(session, "client port unreachable" if refused else f"receive failed: {exc}")

    def _ended(self, session: Session, out: Sequence[bytes | memoryview]) -> None:
        """The engine is done: send its last datagrams (or hold them), then let go; what a full
        send buffer refused is sent first, when the socket is writable (or given up after one
        timeout)."""
        session.pump = None  # from here on ``session.deadline`` is the session's own
        if session.hold and session.engine.state is TransferState.SUCCEEDED:
            session.held = [bytes(datagram) for datagram in out]
        else:
            self._send(session, out)
        if session.pending and self._sessions.get(session.fd) is session:
            session.closing = True
            session.deadline = time.monotonic() + session.engine.options.timeout
            self._arm(session, session.deadline)  # the first entry to fire finishes it
            return
        self._finish(session)

    def _take_incoming(self, now: float) -> bool:
        """Register the sessions Trio handed over, drop those it cancelled; ``True`` once the
        plane is closed."""
        os.eventfd_read(self._wake)
        with self._lock:
            if self._closed:
                return True
            incoming = list(self._incoming)
            self._incoming.clear()
            cancels, self._cancels = self._cancels, []
        for session in incoming:
            self._sessions[session.fd] = session
            # blocking while the worker holds it, for the lone session's wait; ``_finish`` undoes it
            session.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _LONE_TIMEVAL)
            session.sock.setblocking(True)
            self._epoll.register(session.fd, _IN)
            if session.linger is not None:
                session.deadline = now + session.linger
                self._send(session, session.first)
                self._arm(session, session.deadline)
            else:
                self._step(session, session.engine.start, now)
                self._take_lane(session)
        for session in cancels:
            if not session.stopped:
                self._fail(session, "cancelled")
        return False

    def _arm(self, session: Session, deadline: float) -> None:
        self._order += 1
        heapq.heappush(self._timers, (deadline, self._order, session))

    def _expire(self, session: Session, now: float) -> None:
        """A timer fired: one heap entry per session, re-armed lazily to the current deadline
        (deadlines only move later while a transfer progresses, so no entry is pushed per block)."""
        if session.pump is not None:  # ``pump`` moves the sender's deadline without telling
            _, session.deadline = session.engine.settle()
        deadline = session.deadline
        if deadline is not None and deadline > now:
            self._arm(session, deadline)
            return
        if session.linger is not None or deadline is None or session.closing:
            self._finish(session)
            return
        if session.pending:
            self._arm(session, now + session.engine.options.timeout)
            return
        self._step(session, session.engine.timeout, now)

    def _step(
        self, session: Session, step: Callable[[float], tuple[Datagrams, float | None]], now: float
    ) -> None:
        """Off the hot path, an engine ``start`` or ``timeout``: fail the session if it raises,
        end it if the engine is done, else send what it gave and arm its next deadline."""
        try:
            out, session.deadline = step(now)
        except Exception as exc:
            self._fail(session, exc)
            return
        if session.deadline is None:
            self._ended(session, out)
            return
        if out:
            self._send(session, out)
        self._arm(session, session.deadline)

    def _send(self, session: Session, out: Sequence[bytes | memoryview]) -> None:
        """Send in order; what a full send buffer refuses waits in ``pending`` (copied: the
        engine reuses its buffers on the next call) until the socket is writable."""
        send = session.sock.send
        for i, datagram in enumerate(out):
            try:
                send(datagram, _NOWAIT)
            except BlockingIOError:
                session.pending = [bytes(d) for d in out[i:]]
                self._epoll.modify(session.fd, _OUT)
                return
            except OSError:
                pass  # e.g. an ICMP error left by an earlier send; timeouts judge the peer

    def _flush(self, session: Session) -> None:
        pending, session.pending = session.pending, []
        self._epoll.modify(session.fd, _IN)
        self._send(session, pending)
        if session.closing and not session.pending:
            self._finish(session)

    def _fail(self, session: Session, reason: str | Exception) -> None:
        """End a session that did not complete (a dally ends quietly: its transfer succeeded)."""
        engine = session.engine
        if session.linger is None and not engine.finished:
            if isinstance(reason, Exception):
                reason = f"server error: {type(reason).__name__}"
            engine.state = TransferState.FAILED
            engine.error = (ErrorCode.NOT_DEFINED, reason)
        self._finish(session)

    def _finish(self, session: Session) -> None:
        """Stop using the session's socket and report it to Trio (deliveries are batched)."""
        if self._sessions.get(session.fd) is session:
            del self._sessions[session.fd]
            self._epoll.unregister(session.fd)
            session.sock.setblocking(False)
        session.deadline = None
        session.stopped = True
        with self._lock:
            self._done.append(session)
            if self._delivery_scheduled:
                return
            self._delivery_scheduled = True
        self._token.run_sync_soon(self._deliver)

    def _deliver(self) -> None:
        """In Trio: wake every session task whose transfer the worker finished."""
        with self._lock:
            done, self._done = self._done, []
            self._delivery_scheduled = False
        for session in done:
            session.finished.set()
