"""The client's side of one transfer, sans-I/O: sends the request, follows the server's answer
(OACK, first DATA or ACK 0) and then runs the data phase.

The caller sends the request to the server's well-known port and everything after it to the
transfer ID (address and port) of the first answer, as RFC 1350 asks.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._errors import ErrorCode, LocalProtocolError, MalformedPacket, RemoteProtocolError
from ._options import TransferOptions, accept_oack
from ._packets import Ack, Data, Error, OptionAck, ReadRequest, WriteRequest, decode, encode
from ._server_transfer import Step, TransferState, error_packet
from ._window import BlockReceiver, BlockSender, BlockSink, BlockSource, ack_packet


class ClientTransfer:
    """One download (``sink=``) or upload (``source=``) as a client runs it."""

    __slots__ = (
        "_answered",
        "_deadline",
        "_receiver",
        "_request",
        "_retries",
        "_sender",
        "_sink",
        "_source",
        "_timeout",
        "_tries",
        "error",
        "malformed",
        "options",
        "state",
    )

    def __init__(
        self,
        filename: str,
        *,
        sink: BlockSink | None = None,
        source: BlockSource | None = None,
        options: Mapping[str, str] | None = None,
        timeout: float = 1.0,
        retries: int = 5,
    ) -> None:
        if (sink is None) == (source is None):
            raise LocalProtocolError("give a sink to read or a source to write, not both")
        cls = ReadRequest if sink is not None else WriteRequest
        self._request = cls(filename, "octet", dict(options or {}))
        encode(self._request)  # refuse what cannot be sent now rather than at start()
        self._sink = sink
        self._source = source
        self._timeout = timeout
        self._retries = retries
        self._tries = 0
        self._deadline = 0.0
        self._answered = False
        self._sender: BlockSender | None = None
        self._receiver: BlockReceiver | None = None
        self.options = TransferOptions(timeout=timeout)
        self.state = TransferState.NEGOTIATING
        #: (code, message) once the transfer failed
        self.error: tuple[int, str] | None = None
        #: datagrams dropped because they did not decode
        self.malformed = 0

    @property
    def finished(self) -> bool:
        return self.state in (TransferState.SUCCEEDED, TransferState.FAILED)

    @property
    def size(self) -> int:
        """Bytes received (read) or sent (write) so far."""
        half = self._sender or self._receiver
        return 0 if half is None else half.size

    def start(self, now: float) -> Step:
        """The request, to send to the server's well-known port."""
        self._deadline = now + self._timeout
        return [encode(self._request)], self._deadline

    def _fail(self, code: int, message: str, send: bool) -> Step:
        self.state = TransferState.FAILED
        self.error = (code, message)
        return ([error_packet(code, message)] if send else []), None

    def _check(self, out: list[bytes | memoryview]) -> Step:
        half = self._sender or self._receiver
        assert half is not None
        if half.done:
            self.state = TransferState.SUCCEEDED
            return out, None
        if half.failed:
            return self._fail(ErrorCode.NOT_DEFINED, "timed out", send=False)
        return out, half.deadline

    def _begin(self, options: TransferOptions, now: float) -> None:
        self.options = options
        self.state = TransferState.TRANSFERRING
        if self._sink is not None:
            self._receiver = BlockReceiver(self._sink, options, retries=self._retries, now=now)
        else:
            assert self._source is not None
            self._sender = BlockSender(self._source, options, retries=self._retries)

    def receive(self, datagram: bytes | bytearray | memoryview, now: float) -> Step:
        """A datagram from the server's transfer ID."""
        try:
            packet = decode(datagram)
        except MalformedPacket:
            self.malformed += 1
            return [], None if self.finished else self._current_deadline()
        if self.state is TransferState.FAILED:
            return [], None
        if isinstance(packet, Error):
            if self.finished:
                return [], None
            return self._fail(packet.code, f"server error: {packet.message}", send=False)
        if self.state is TransferState.NEGOTIATING:
            return self._first_answer(packet, now)
        if self._receiver is not None:
            if isinstance(packet, Data):
                try:
                    out = self._receiver.on_data(packet.block, memoryview(packet.data), now)
                except ValueError as exc:
                    return self._fail(ErrorCode.ILLEGAL_OPERATION, str(exc), send=True)
                self._answered = True
                return self._check(out)
            if isinstance(packet, OptionAck) and not self._answered:
                return [ack_packet(0)], self._receiver.deadline  # our ACK of the OACK was lost
        elif self._sender is not None and isinstance(packet, Ack):
            return self._check(self._sender.on_ack(packet.block, now))
        if self.finished:
            return [], None
        return [], self._current_deadline()

    def _first_answer(self, packet: object, now: float) -> Step:
        reading = self._sink is not None
        if isinstance(packet, OptionAck):
            try:
                options = accept_oack(
                    self._request.options, packet.options, default_timeout=self._timeout
                )
            except RemoteProtocolError as exc:
                return self._fail(ErrorCode.OPTION_NEGOTIATION_FAILED, str(exc), send=True)
            self._begin(options, now)
            if reading:
                assert self._receiver is not None
                return [ack_packet(0)], self._receiver.deadline
            assert self._sender is not None
            return self._check(self._sender.start(now))
        defaults = TransferOptions(timeout=self._timeout)
        if reading and isinstance(packet, Data):
            self._begin(defaults, now)
            return self.receive(encode(packet), now)
        if not reading and isinstance(packet, Ack) and packet.block == 0:
            self._begin(defaults, now)
            assert self._sender is not None
            return self._check(self._sender.start(now))
        return [], self._deadline

    def _current_deadline(self) -> float | None:
        if self.state is TransferState.NEGOTIATING:
            return self._deadline
        half = self._sender or self._receiver
        return None if half is None else half.deadline

    def timeout(self, now: float) -> Step:
        """Call when the deadline passed: retransmits, or fails after ``retries``."""
        if self.finished:
            return [], None
        if self.state is TransferState.NEGOTIATING:
            if now < self._deadline:
                return [], self._deadline
            self._tries += 1
            if self._tries > self._retries:
                return self._fail(ErrorCode.NOT_DEFINED, "no answer from the server", False)
            self._deadline = now + self._timeout
            return [encode(self._request)], self._deadline
        half = self._sender or self._receiver
        assert half is not None
        return self._check(half.on_timeout(now))
