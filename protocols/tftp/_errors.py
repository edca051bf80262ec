"""Errors split by who is at fault (as in h11), and the TFTP error codes of RFC 1350/2347."""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """The error codes an ERROR packet carries (RFC 1350, 8 from RFC 2347)."""

    NOT_DEFINED = 0
    FILE_NOT_FOUND = 1
    ACCESS_VIOLATION = 2
    DISK_FULL = 3
    ILLEGAL_OPERATION = 4
    UNKNOWN_TRANSFER_ID = 5
    FILE_EXISTS = 6
    NO_SUCH_USER = 7
    OPTION_NEGOTIATION_FAILED = 8


class ProtocolError(Exception):
    """Base of every TFTP protocol error."""


class LocalProtocolError(ProtocolError):
    """The caller misused the API (for example, encoded a packet that cannot exist)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol."""


class MalformedPacket(RemoteProtocolError):
    """A datagram that does not decode as a TFTP packet: drop it, count it, never crash."""


class ContentError(Exception):
    """A request the content cannot serve; ``code`` and ``message`` go into the ERROR packet.

    Raised by content sources (roots, generators) and turned into a TFTP error by the server.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"
