"""The server's side of one transfer, sans-I/O: a request in, datagrams and deadlines out.

The caller opens the content (a ``BlockSource`` for a read, a ``BlockSink`` for a write), feeds
every datagram from the client's transfer ID to ``receive`` and calls ``timeout`` when the deadline
it was handed passes. Nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from ._errors import ContentError, ErrorCode, LocalProtocolError, MalformedPacket
from ._options import NegotiationLimits, TransferOptions, negotiate
from ._packets import Ack, Data, Error, OptionAck, ReadRequest, WriteRequest, decode, encode
from ._window import BlockReceiver, BlockSender, BlockSink, BlockSource, Datagrams

try:
    from ._lockstep import LockstepSender
except ImportError:  # built without a C compiler: every read runs on ``BlockSender``
    COMPILED = False
else:
    COMPILED = True

#: What every engine call returns: datagrams to send now, and when to call ``timeout`` next
#: (``None`` once the transfer is over).
Step = tuple[Datagrams, float | None]

SUPPORTED_MODES = frozenset({"octet"})
_DEFAULT_LIMITS = NegotiationLimits()


class TransferState(enum.Enum):
    """Where a transfer stands."""

    NEGOTIATING = "negotiating"  # OACK sent, waiting for the client to take it
    TRANSFERRING = "transferring"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def error_packet(code: ErrorCode | int, message: str) -> bytes:
    """An ERROR datagram; the message is cut to fit the codec's bound."""
    return encode(Error(int(code), message[:200]))


def check_request(request: ReadRequest | WriteRequest) -> None:
    """Refuse modes other than ``octet``, as ``ContentError`` (ILLEGAL_OPERATION).

    ``netascii`` is refused rather than converted: boot files are binary, and a conversion would
    make ``tsize`` wrong. Clients asked for ``octet`` (tftp ``-m binary``) work unchanged.
    """
    mode = request.mode.lower()
    if mode not in SUPPORTED_MODES:
        raise ContentError(
            ErrorCode.ILLEGAL_OPERATION, f"mode {mode!r} not supported, use octet (binary)"
        )


def _sender(
    source: BlockSource, options: TransferOptions, retries: int
) -> BlockSender | LockstepSender:
    """The compiled lock-step sender for a file read one block at a time, else ``BlockSender``."""
    fileno = getattr(source, "fileno", None)
    if not COMPILED or options.windowsize != 1 or fileno is None:
        return BlockSender(source, options, retries=retries)
    return LockstepSender(fileno(), options.blksize, options.timeout, retries)


class ServerTransfer:
    """One read (or, when the caller allows it, write) transfer, as the server runs it."""

    __slots__ = (
        "_oack",
        "_oack_deadline",
        "_oack_tries",
        "_receiver",
        "_retries",
        "_sender",
        "error",
        "filename",
        "malformed",
        "options",
        "state",
    )

    def __init__(
        self,
        request: ReadRequest | WriteRequest,
        *,
        source: BlockSource | None = None,
        size: int | None = None,
        sink: BlockSink | None = None,
        limits: NegotiationLimits = _DEFAULT_LIMITS,
        retries: int = 5,
    ) -> None:
        check_request(request)
        writing = isinstance(request, WriteRequest)
        if (source is None) != writing or (sink is None) == writing:
            raise LocalProtocolError("a read needs a source, a write needs a sink")
        self.filename = request.filename
        self.options, self._oack = negotiate(
            request.options, size=size, writing=writing, limits=limits
        )
        tsize = self.options.tsize
        if (
            writing
            and tsize is not None
            and limits.max_tsize is not None
            and (tsize > limits.max_tsize)
        ):
            raise ContentError(ErrorCode.DISK_FULL, f"{tsize} octets is over the limit")
        self._sender = None if source is None else _sender(source, self.options, retries)
        self._receiver: BlockReceiver | None = None
        if sink is not None:
            self._receiver = BlockReceiver(sink, self.options, retries=retries, now=0.0)
        self._retries = retries
        self._oack_deadline = 0.0
        self._oack_tries = 0
        self.state = TransferState.NEGOTIATING
        #: (code, message) once the transfer failed
        self.error: tuple[int, str] | None = None
        #: datagrams dropped because they did not decode
        self.malformed = 0

    @property
    def size(self) -> int:
        """Bytes sent (read) or received (write) so far."""
        half = self._sender or self._receiver
        assert half is not None
        return half.size

    @property
    def finished(self) -> bool:
        return self.state in (TransferState.SUCCEEDED, TransferState.FAILED)

    def start(self, now: float) -> Step:
        """The first datagrams: an OACK if options were accepted, else DATA 1 or ACK 0."""
        if self._receiver is not None:
            self._receiver.deadline = now + self.options.timeout  # it was built before ``now``
        if self._oack:
            self._oack_deadline = now + self.options.timeout
            return [encode(OptionAck(self._oack))], self._oack_deadline
        self.state = TransferState.TRANSFERRING
        if self._sender is not None:
            return self._sender.start(now), self._sender.deadline
        assert self._receiver is not None
        return [encode(Ack(0))], self._receiver.deadline

    def lane(self) -> Callable[..., int] | None:
        """The compiled sender's ``pump`` while a lock-step read of a file is transferring (see
        ``LockstepSender``), else ``None``; the caller hands every other datagram to ``receive``
        and calls ``settle`` once the pump reports the transfer done."""
        if self.state is TransferState.TRANSFERRING and self.compiled:
            assert isinstance(self._sender, LockstepSender)
            return self._sender.pump
        return None

    @property
    def compiled(self) -> bool:
        """The read runs on the compiled ``LockstepSender`` (see ``lane``)."""
        return COMPILED and isinstance(self._sender, LockstepSender)

    def in_flight(self) -> Datagrams:
        """The compiled sender's block in flight, to send again when ``pump`` could not."""
        assert isinstance(self._sender, LockstepSender)
        return self._sender.current()

    def settle(self) -> Step:
        """After ``pump`` moved blocks: the state and deadline the sender is in now."""
        return self._check([])

    def _fail(self, code: int, message: str, send: bool) -> Step:
        self.state = TransferState.FAILED
        self.error = (code, message)
        return ([error_packet(code, message)] if send else []), None

    def _check(self, out: Datagrams) -> Step:
        half = self._sender or self._receiver
        assert half is not None
        if half.done:
            self.state = TransferState.SUCCEEDED
            return out, None
        if half.failed:
            return self._fail(ErrorCode.NOT_DEFINED, "timed out", send=False)
        return out, half.deadline

    def receive(self, datagram: bytes | bytearray | memoryview, now: float) -> Step:
        """A datagram from the client's transfer ID."""
        sender = self._sender
        if (
            sender is not None
            and self.state is TransferState.TRANSFERRING
            and len(datagram) == 4
            and datagram[1] == 4
            and datagram[0] == 0
        ):  # the hot path: an ACK during a read
            out = sender.on_ack((datagram[2] << 8) | datagram[3], now)
            if sender.done:
                self.state = TransferState.SUCCEEDED
                return out, None
            return out, sender.deadline
        if self.finished:
            if self._receiver is not None and self.state is TransferState.SUCCEEDED:
                return self._receive_data(datagram, now)  # re-ACK a repeated final block
            return [], None
        try:
            packet = decode(datagram)
        except MalformedPacket:
            self.malformed += 1
            return [], self._deadline()
        if isinstance(packet, Error):
            return self._fail(packet.code, f"client error: {packet.message}", send=False)
        if sender is not None and isinstance(packet, Ack):
            if self.state is TransferState.NEGOTIATING:
                if packet.block != 0:
                    return [], self._deadline()
                self.state = TransferState.TRANSFERRING
                return self._check(sender.start(now))
            return self._check(sender.on_ack(packet.block, now))
        if self._receiver is not None and isinstance(packet, Data):
            if self.state is TransferState.NEGOTIATING and packet.block != 1:
                return [], self._oack_deadline  # only DATA 1 acknowledges the OACK (RFC 2347)
            return self._receive_data(datagram, now)
        return self._fail(ErrorCode.ILLEGAL_OPERATION, f"unexpected {type(packet).__name__}", True)

    def _receive_data(self, datagram: bytes | bytearray | memoryview, now: float) -> Step:
        receiver = self._receiver
        assert receiver is not None
        if len(datagram) < 4 or datagram[0] != 0 or datagram[1] != 3:
            return [], None if self.finished else self._deadline()
        self.state = TransferState.SUCCEEDED if self.finished else TransferState.TRANSFERRING
        try:
            out = receiver.on_data((datagram[2] << 8) | datagram[3], memoryview(datagram)[4:], now)
        except ValueError as exc:
            return self._fail(ErrorCode.ILLEGAL_OPERATION, str(exc), send=True)
        except ContentError as exc:
            return self._fail(exc.code, exc.message, send=True)
        except OSError as exc:
            return self._fail(ErrorCode.DISK_FULL, exc.strerror or "write failed", send=True)
        return self._check(out)

    def _deadline(self) -> float | None:
        if self.state is TransferState.NEGOTIATING:
            return self._oack_deadline
        half = self._sender or self._receiver
        return None if half is None else half.deadline

    def timeout(self, now: float) -> Step:
        """Call when the deadline passed: retransmits, or fails the transfer after ``retries``."""
        if self.finished:
            return [], None
        if self.state is TransferState.NEGOTIATING:
            return self._timeout_negotiating(now)
        half = self._sender or self._receiver
        assert half is not None
        return self._check(half.on_timeout(now))

    def _timeout_negotiating(self, now: float) -> Step:
        if now < self._oack_deadline:
            return [], self._oack_deadline
        self._oack_tries += 1
        if self._oack_tries > self._retries:
            return self._fail(ErrorCode.NOT_DEFINED, "timed out waiting for the OACK's ACK", False)
        self._oack_deadline = now + self.options.timeout
        return [encode(OptionAck(self._oack))], self._oack_deadline
