"""The AMQP 0-9-1 wire as ``AmqpConnection`` sees it: frame constants, splitting
frames off a byte buffer, the message record, and the error a connection ends with.

Frames are built and parsed by pamqp (the framing library aiormq uses).
"""

from __future__ import annotations

import re
import ssl
import struct
from typing import Any

from pamqp import frame as amqp_frame
from pamqp.commands import Basic
from pamqp.heartbeat import Heartbeat

CHANNEL = 1
FRAME_PREFIX = struct.Struct(">BHI")
FRAME_OVERHEAD = 8
READ_SIZE = 1 << 16
HEARTBEAT_FRAME = Heartbeat.marshal()


class AmqpClosed(Exception):
    """The connection is gone (or the broker closed the channel); ``str()`` says why."""

    def __init__(self, reason: str, code: int = 0) -> None:
        super().__init__(reason)
        self.code = code


def stream_failure(exc: BaseException) -> str:
    """Why a stream broke, for people: Trio wraps TLS failures in a bare ``BrokenResourceError``,
    so a TLS cause is named instead (``certificate verify failed: ...``)."""
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        detail = re.sub(r"^\[[^]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", str(cause))
        return f"TLS: {detail or cause.reason or type(cause).__name__}"
    return str(exc) or str(cause or "") or type(exc).__name__


class AmqpMessage:
    """A message delivered or returned by the broker."""

    __slots__ = ("body", "delivery_tag", "exchange", "properties", "redelivered", "routing_key")

    def __init__(
        self,
        exchange: str,
        routing_key: str,
        properties: Basic.Properties,
        body: bytes,
        delivery_tag: int = 0,
        redelivered: bool = False,
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.properties = properties
        self.body = body
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered


def next_frame(buffer: bytearray) -> tuple[int, Any] | None:
    """Take the first whole frame off ``buffer``: ``(channel, frame)``, or ``None`` if none is."""
    if len(buffer) < FRAME_OVERHEAD:
        return None
    _, channel, size = FRAME_PREFIX.unpack_from(buffer)
    end = size + FRAME_OVERHEAD
    if len(buffer) < end:
        return None
    _, channel, value = amqp_frame.unmarshal(bytes(buffer[:end]))
    del buffer[:end]
    return channel, value
